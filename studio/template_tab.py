"""Template tab: each row rendered with the model's chat template, tokens colored trained vs masked
(the trainer's own render_and_mask, run in a subprocess), row navigation and dataset-wide checks."""
from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any, Callable

import gradio as gr

from studio.context import StudioContext, user_of
from studio.i18n import t
from studio.space import PathKind, PathRefused, refusal_text, user_space
from studio.preview import PreviewError, PreviewRequest, run_preview, runs_html
from trainer_backend.config import RunConfig, TemplateConfig
from trainer_backend.presets import list_presets, load_preset

TEMPLATES = list(TemplateConfig.model_fields["name"].annotation.__args__)
LOSSES = list(TemplateConfig.model_fields["loss"].annotation.__args__)
NO_TRAINED_REASONS = ("no trained token", "no trained token after truncation")


@dataclass
class TemplateTab:
    preset: gr.Dropdown
    model: gr.Textbox
    status: gr.Markdown
    checks: gr.Markdown
    tokens: gr.HTML
    row: gr.Number
    attach: Callable[[Any], Any]     # chain a preview run after an event


def checks(analysis: dict[str, Any], lang: str) -> list[str]:
    """Dataset-wide facts a user must see before training, worst first."""
    rep = analysis["report"]
    out = []
    if analysis["trained_tokens"] == 0:
        out.append("✖ " + t(lang, "tpl.check_nothing_trained"))
    no_trained = sum(rep["dropped"].get(r, 0) for r in NO_TRAINED_REASONS)
    if no_trained:
        rows = [i["row"] for i in rep["issues"] if "no trained token" in i["message"]][:10]
        out.append("⚠ " + t(lang, "tpl.check_no_trained_rows", n=no_trained, rows=", ".join(map(str, rows))))
    for reason, n in sorted(rep["dropped"].items()):
        if reason not in NO_TRAINED_REASONS:
            rows = [i["row"] for i in rep["issues"] if reason in i["message"]][:10]
            out.append("⚠ " + t(lang, "tpl.check_dropped", n=n, reason=reason, rows=", ".join(map(str, rows))))
    if rep["truncated"]:
        out.append("⚠ " + t(lang, "tpl.check_truncated", n=rep["truncated"], max=analysis["max_seq_len"],
                                 cut=rep["cut_tokens"]))
    if rep["kept"] and analysis["eot_trained_rows"] == 0:
        out.append("⚠ " + t(lang, "tpl.check_eot_never"))
    elif rep["kept"]:
        out.append("✔ " + t(lang, "tpl.check_eot_ok", n=analysis["eot_trained_rows"], kept=rep["kept"]))
    if not out or all(c.startswith("✔") for c in out):
        out.append("✔ " + t(lang, "tpl.check_all_ok", kept=rep["kept"], rows=rep["rows_in"]))
    return out


def row_view(analysis: dict[str, Any] | None, index: int, lang: str) -> tuple[str, str]:
    """(info line, tokens HTML) of the index-th previewed row."""
    if not analysis or not analysis["examples"]:
        return t(lang, "tpl.no_preview"), ""
    examples = analysis["examples"]
    i = max(0, min(int(index or 0), len(examples) - 1))
    ex = examples[i]
    info = t(lang, "tpl.row_info", i=i, shown=len(examples), row=ex["row"], n=ex["n_tokens"], trained=ex["n_trained"])
    if ex["truncated"]:
        info += " · " + t(lang, "tpl.truncated")
    if ex["dropped"]:
        info += " · " + t(lang, "tpl.dropped", reason=ex["dropped"])
    if "rejected_runs" in ex:   # a preference pair: both sequences, the shared prompt masked in each
        return info, (md_html(t(lang, "tpl.chosen")) + runs_html(ex["runs"]) +
                      md_html(t(lang, "tpl.rejected")) + runs_html(ex["rejected_runs"]))
    if "desirable" in ex:
        return info, md_html(t(lang, "tpl.desirable" if ex["desirable"] else "tpl.undesirable")) + runs_html(ex["runs"])
    return info, runs_html(ex["runs"])


def md_html(text: str) -> str:
    """A caption above a token view: the strings' **bold** as <b>, the rest escaped."""
    parts = html.escape(text).split("**")
    return "<p>" + "".join(f"<b>{p}</b>" if i % 2 else p for i, p in enumerate(parts)) + "</p>"


def preset_names() -> list[str]:
    return [p.name for p in list_presets()]


def build(ctx: StudioContext, lang: gr.Dropdown, dataset_state: gr.State, analysis_state: gr.State) -> TemplateTab:
    L = ctx.labels
    default = RunConfig()
    with gr.Row():
        preset = L.add(gr.Dropdown(preset_names(), value=None, elem_id="tpl-preset"), label="tpl.preset",
                       info="tpl.preset_info")
        model = L.add(gr.Textbox(value=default.model.name_or_path, elem_id="tpl-model"), label="tpl.model",
                      info="tpl.model_info")
        template = L.add(gr.Dropdown(TEMPLATES, value=default.template.name), label="tpl.template",
                         info="tpl.template_info")
        loss = L.add(gr.Dropdown(LOSSES, value=default.template.loss), label="tpl.loss", info="tpl.loss_info")
        max_len = L.add(gr.Number(value=default.template.max_seq_len, precision=0, minimum=16), label="tpl.max_len")
    run = L.add(gr.Button(variant="primary", elem_id="tpl-run"), value="tpl.run")
    status = gr.Markdown(elem_id="tpl-status")
    checks_md = gr.Markdown(elem_id="tpl-checks")
    with gr.Row():
        prev = L.add(gr.Button(size="sm", elem_id="tpl-prev"), value="tpl.prev")
        row = L.add(gr.Number(value=0, precision=0, minimum=0, elem_id="tpl-row"), label="tpl.row")
        nxt = L.add(gr.Button(size="sm", elem_id="tpl-next"), value="tpl.next")
    L.add(gr.Markdown(), value="tpl.legend")
    info = gr.Markdown(elem_id="tpl-row-info")
    tokens = gr.HTML(elem_id="tpl-tokens")

    def on_preset(name: str | None):
        if not name:
            return gr.skip(), gr.skip(), gr.skip(), gr.skip()
        cfg = load_preset(name)
        return cfg.model.name_or_path, cfg.template.name, cfg.template.loss, cfg.template.max_seq_len

    def analyze(state: dict | None, model_v: str, tpl: str, loss_v: str, max_v: float, lang_v: str,
                request: gr.Request):
        if not state:
            return t(lang_v, "tpl.load_data_first"), "", None, 0
        space = user_space(ctx, user_of(request))
        try:
            model_path = space.confine("tpl.model", model_v, PathKind.MODEL)
            data_path = space.confine("data.path", state["path"], PathKind.DATA)
        except PathRefused as err:
            return refusal_text(err, lang_v), "", None, 0
        req = PreviewRequest(data_path=data_path, data_format=state["format"], columns=state["columns"],
                             model=model_path, template=tpl, loss=loss_v, max_seq_len=int(max_v or 2048))
        try:
            result = run_preview(req, ctx.settings.python)
        except PreviewError as err:
            return t(lang_v, "tpl.failed", error=space.shown(str(err))), "", None, 0
        done = t(lang_v, "tpl.done", model=space.shown(result["model"]), template=tpl, rows=result["report"]["rows_in"])
        return done, "\n".join(f"- {c}" for c in checks(result, lang_v)), result, 0

    def attach(event):
        return event.then(analyze, [dataset_state, model, template, loss, max_len, lang],
                          [status, checks_md, analysis_state, row], show_progress="minimal")

    preset.change(on_preset, preset, [model, template, loss, max_len])
    run.click(analyze, [dataset_state, model, template, loss, max_len, lang],
              [status, checks_md, analysis_state, row], api_name="preview")
    show = lambda a, i, lg: row_view(a, i, lg)  # noqa: E731
    analysis_state.change(show, [analysis_state, row, lang], [info, tokens])
    row.change(show, [analysis_state, row, lang], [info, tokens], api_name="show_row")
    prev.click(lambda i: max(0, int(i or 0) - 1), row, row)
    nxt.click(lambda i, a: min(int(i or 0) + 1, max(0, len((a or {}).get("examples", [])) - 1)),
              [row, analysis_state], row)
    return TemplateTab(preset, model, status, checks_md, tokens, row, attach)

