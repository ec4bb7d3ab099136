"""Template tab: each row rendered with the model's chat template, tokens colored trained vs masked
(the trainer's own render_and_mask, run in a subprocess), row navigation and dataset-wide checks.
It previews the run the Train tab prepares (model, template, lengths): what it shows is what trains."""
from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any, Callable

import gradio as gr

from studio.common import DatasetChoice
from studio.context import StudioContext, user_of
from studio.i18n import say, t
from studio.space import PathRefused, refusal_text, user_space
from studio.preview import PreviewError, PreviewReport, PreviewRequest, PreviewTimeout, run_preview, runs_html
from trainer_backend.config import RunConfig
from trainer_backend.messages import NO_TRAINED, NO_TRAINED_AFTER_TRUNCATION, msg

NO_TRAINED_REASONS = (NO_TRAINED, NO_TRAINED_AFTER_TRUNCATION)


@dataclass
class TemplateTab:
    status: gr.Markdown
    checks: gr.Markdown
    tokens: gr.HTML
    row: gr.Number
    attach: Callable[[Any], Any]     # chain a preview run after an event


def checks(analysis: PreviewReport, lang: str) -> list[str]:
    """Dataset-wide facts a user must see before training, worst first."""
    rep = analysis.counts
    out = []
    if analysis.trained_tokens == 0:
        out.append("✖ " + t(lang, "tpl.check_nothing_trained"))
    dropped = dict(rep.dropped)
    no_trained = sum(dropped.get(r, 0) for r in NO_TRAINED_REASONS)
    if no_trained:
        rows = rep.dropped_rows(NO_TRAINED_REASONS)[:10]
        out.append("⚠ " + t(lang, "tpl.check_no_trained_rows", n=no_trained, rows=", ".join(map(str, rows))))
    for reason, n in rep.dropped:
        if reason not in NO_TRAINED_REASONS:
            rows = rep.dropped_rows((reason,))[:10]
            out.append("⚠ " + t(lang, "tpl.check_dropped", n=n, reason=say(lang, msg(reason)),
                                 rows=", ".join(map(str, rows))))
    if rep.truncated:
        out.append("⚠ " + t(lang, "tpl.check_truncated", n=rep.truncated, max=analysis.max_seq_len, cut=rep.cut_tokens))
    if analysis.unlike_inference_rows:
        out.append("⚠ " + t(lang, "tpl.check_unlike_inference", n=analysis.unlike_inference_rows))
    if rep.kept and analysis.eot_trained_rows == 0:
        out.append("⚠ " + t(lang, "tpl.check_eot_never"))
    elif rep.kept:
        out.append("✔ " + t(lang, "tpl.check_eot_ok", n=analysis.eot_trained_rows, kept=rep.kept))
    if not out or all(c.startswith("✔") for c in out):
        out.append("✔ " + t(lang, "tpl.check_all_ok", kept=rep.kept, rows=rep.rows_in))
    return out


def row_view(analysis: PreviewReport | None, index: int, lang: str) -> tuple[str, str]:
    """(info line, tokens HTML) of the index-th previewed row."""
    if not analysis or not analysis.examples:
        return t(lang, "tpl.no_preview"), ""
    examples = analysis.examples
    i = max(0, min(int(index or 0), len(examples) - 1))
    ex = examples[i]
    if ex.error:
        return t(lang, "tpl.row_error", i=i, shown=len(examples), row=ex.row, error=say(lang, ex.error)), ""
    info = t(lang, "tpl.row_info", i=i, shown=len(examples), row=ex.row, n=ex.n_tokens, trained=ex.n_trained)
    if ex.truncated:
        info += " · " + t(lang, "tpl.truncated")
    if ex.dropped:
        info += " · " + t(lang, "tpl.dropped", reason=say(lang, msg(ex.dropped)))
    if ex.rejected_runs is not None:   # a preference pair: both sequences, the shared prompt masked in each
        return info, (md_html(t(lang, "tpl.chosen")) + runs_html(ex.runs) +
                      md_html(t(lang, "tpl.rejected")) + runs_html(ex.rejected_runs))
    if ex.desirable is not None:
        return info, md_html(t(lang, "tpl.desirable" if ex.desirable else "tpl.undesirable")) + runs_html(ex.runs)
    return info, runs_html(ex.runs)


def md_html(text: str) -> str:
    """A caption above a token view: the strings' **bold** as <b>, the rest escaped."""
    parts = html.escape(text).split("**")
    return "<p>" + "".join(f"<b>{p}</b>" if i % 2 else p for i, p in enumerate(parts)) + "</p>"



def basis_text(run: RunConfig, analysis: PreviewReport | None, lang: str) -> str:
    """Which run the preview is for: the one the Train tab prepares (the job trains the same), and
    a warning when the run changed since the preview shown was made."""
    tpl = run.template
    text = t(lang, "tpl.basis", model=run.model.name_or_path.rstrip("/").rsplit("/", 1)[-1], template=tpl.name,
             loss=tpl.loss, max=tpl.max_seq_len, overflow=tpl.overflow)
    made_for = (run.model.name_or_path, tpl.name, tpl.max_seq_len)
    if analysis and (analysis.model, analysis.template, analysis.max_seq_len) != made_for:
        text += "\n\n⚠ " + t(lang, "tpl.stale")
    return text


def build(ctx: StudioContext, lang: gr.Dropdown, dataset_state: gr.State, analysis_state: gr.State,
          run_state: gr.State, initial: RunConfig) -> TemplateTab:
    L = ctx.labels
    basis = gr.Markdown(basis_text(initial, None, "en"), elem_id="tpl-basis")
    with gr.Row():
        run = L.add(gr.Button(variant="primary", elem_id="tpl-run"), value="tpl.run")
        jump = L.add(gr.Number(value=None, precision=0, minimum=0, elem_id="tpl-jump"), label="tpl.jump",
                     info="tpl.jump_info")
    status = gr.Markdown(elem_id="tpl-status")
    checks_md = gr.Markdown(elem_id="tpl-checks")
    with gr.Row():
        prev = L.add(gr.Button(size="sm", elem_id="tpl-prev"), value="tpl.prev")
        row = L.add(gr.Number(value=0, precision=0, minimum=0, elem_id="tpl-row"), label="tpl.row")
        nxt = L.add(gr.Button(size="sm", elem_id="tpl-next"), value="tpl.next")
    L.add(gr.Markdown(), value="tpl.legend")
    info = gr.Markdown(elem_id="tpl-row-info")
    tokens = gr.HTML(elem_id="tpl-tokens")

    def analyze(request: gr.Request, dataset: DatasetChoice | None, cfg: RunConfig, lang_v: str, start_row: int):
        if dataset is None:
            return t(lang_v, "tpl.load_data_first"), "", None, 0
        # The dataset just loaded wins over the run's data keys, which follow it a moment later.
        cfg = cfg.with_overrides(dataset.overrides())
        space = user_space(ctx, user_of(request))
        try:
            cfg = space.confine_config(cfg)
        except PathRefused as err:
            return refusal_text(err, lang_v), "", None, 0
        try:
            result = run_preview(PreviewRequest.for_run(cfg, start_row=start_row), ctx.settings.python)
        except PreviewTimeout:
            return t(lang_v, "tpl.timeout"), "", None, 0
        except PreviewError as err:
            return t(lang_v, "tpl.failed", error=space.shown(say(lang_v, err.notice))), "", None, 0
        done = t(lang_v, "tpl.done", model=space.shown(result.model), template=cfg.template.name,
                 rows=result.counts.rows_in)
        if result.stand_in:
            done += "\n\n" + t(lang_v, "tpl.stand_in", tokenizer=space.shown(result.stand_in),
                                model=space.shown(result.model))
        if cfg.template.name == "mistral-v3":
            done += "\n\n" + t(lang_v, "tpl.note_mistral_v3")
        return done, "\n".join(f"- {c}" for c in checks(result, lang_v)), result, 0

    def preview(request: gr.Request, dataset: DatasetChoice | None, cfg: RunConfig, lang_v: str):
        return analyze(request, dataset, cfg, lang_v, 0)

    def preview_from(request: gr.Request, dataset: DatasetChoice | None, cfg: RunConfig, lang_v: str,
                     start: float | None):
        return analyze(request, dataset, cfg, lang_v, int(start or 0))

    def attach(event):
        return event.then(preview, [dataset_state, run_state, lang], [status, checks_md, analysis_state, row],
                          show_progress="minimal")

    run.click(preview, [dataset_state, run_state, lang], [status, checks_md, analysis_state, row], api_name="preview")
    jump.submit(preview_from, [dataset_state, run_state, lang, jump], [status, checks_md, analysis_state, row])
    gr.on([run_state.change, analysis_state.change, lang.change], basis_text, [run_state, analysis_state, lang], basis)
    show = lambda a, i, lg: row_view(a, i, lg)  # noqa: E731
    analysis_state.change(show, [analysis_state, row, lang], [info, tokens])
    row.change(show, [analysis_state, row, lang], [info, tokens], api_name="show_row")
    prev.click(lambda i: max(0, int(i or 0) - 1), row, row)
    nxt.click(lambda i, a: min(int(i or 0) + 1, max(0, len(a.examples if a else ()) - 1)),
              [row, analysis_state], row)
    return TemplateTab(status, checks_md, tokens, row, attach)
