"""Data tab: upload or pick a sample, see the detected format, the rows, their errors and stats."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr
import pandas as pd
import plotly.graph_objects as go

from studio.context import StudioContext, user_of
from studio.i18n import t
from studio.quota import NoRoom, check_room
from studio.space import SAMPLES_DIR, UserSpace, user_space
from studio.uploads import UploadError
from trainer_backend.config import DataConfig
from trainer_backend.data import DataError, LoadedDataset, load_dataset

DEMO_SAMPLE = "demo_alpaca.jsonl"      # the demo preset's data: "Load sample" is one click
FORMATS = list(DataConfig.model_fields["format"].annotation.__args__)
TABLE_ROWS = 20


@dataclass
class DataTab:
    upload: gr.File
    sample: gr.Dropdown
    load_sample: gr.Button
    status: gr.Markdown
    table: gr.Dataframe
    errors: gr.Dataframe
    stats: gr.Markdown
    histogram: gr.Plot
    loaded: Any          # event fired after a successful load, to chain the preview on


def parse_columns(text: str) -> dict[str, str]:
    """`prompt=instruction, response=output` -> {"prompt": "instruction", "response": "output"}."""
    pairs = [p.strip() for p in text.replace("\n", ",").split(",") if p.strip()]
    mapping = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise ValueError(pair)
        mapping[key.strip()] = value.strip()
    return mapping


# Preference rows show their last user turn and chosen completion, plus the rejected one or the label.
EXTRA_COLUMN = {"preference": "rejected", "kto": "desirable"}


def conversations_table(data: LoadedDataset) -> pd.DataFrame:
    rows = []
    extra = EXTRA_COLUMN.get(data.format)
    for conv in data.conversations[:TABLE_ROWS]:
        first = {m.role: m.content for m in reversed(conv.messages)}
        rows.append({"row": conv.row, "turns": len(conv.messages), "system": first.get("system", ""),
                     "user": first.get("user", conv.text or ""), "assistant": first.get("assistant", ""),
                     **({extra: getattr(conv, extra)} if extra else {})})
    return pd.DataFrame(rows, columns=["row", "turns", "system", "user", "assistant", *([extra] if extra else [])])


def errors_table(data: LoadedDataset) -> pd.DataFrame:
    return pd.DataFrame([{"row": e.row, "field": e.field, "message": e.message} for e in data.errors],
                        columns=["row", "field", "message"])


def inspect(path: str, fmt: str, columns_text: str, lang: str, space: UserSpace):
    """Load the dataset; returns status, table, errors and the dataset state (None on failure).
    Messages name files as the user knows them (`uploads/x.jsonl`), never by server paths."""
    empty = pd.DataFrame()
    try:
        columns = parse_columns(columns_text or "")
    except ValueError as bad:
        return t(lang, "data.bad_columns", pair=str(bad)), empty, empty, None
    try:
        data = load_dataset(path, format=fmt, columns=columns or None)
    except (DataError, ValueError, OSError) as err:
        return t(lang, "data.load_failed", name=Path(path).name, error=space.shown(str(err))), empty, empty, None
    status = t(lang, "data.loaded", name=Path(path).name, format=data.format, reason=data.reason,
               rows=data.rows, valid=data.valid_rows, invalid=len(data.errors))
    if not data.conversations:
        status += "\n\n" + t(lang, "data.no_valid_rows")
    state = {"path": str(path), "format": data.format if fmt == "auto" else fmt, "columns": columns,
             "valid_rows": data.valid_rows} if data.conversations else None
    return status, conversations_table(data), errors_table(data), state


def histogram(analysis: dict[str, Any] | None, lang: str) -> go.Figure | None:
    if not analysis:
        return None
    fig = go.Figure(go.Histogram(x=analysis["lengths"], nbinsx=40, name=t(lang, "data.tokens")))
    fig.add_vline(x=analysis["max_seq_len"], line_dash="dash", annotation_text="max_seq_len")
    fig.update_layout(height=280, margin=dict(l=40, r=10, t=30, b=40), xaxis_title=t(lang, "data.tokens"),
                      yaxis_title=t(lang, "data.rows"), title=t(lang, "data.histogram_title"))
    return fig


def stats_text(analysis: dict[str, Any] | None, lang: str) -> str:
    if not analysis:
        return t(lang, "data.stats_pending")
    rep = analysis["report"]
    lines = [t(lang, "data.stats", rows=analysis["rows"], valid=analysis["valid_rows"], kept=rep["kept"],
               truncated=rep["truncated"], cut=rep["cut_tokens"], model=analysis["model"])]
    if rep["split"]:
        lines.append(t(lang, "data.split", n=rep["split"]))
    lines += [t(lang, "data.dropped", n=n, reason=reason) for reason, n in sorted(rep["dropped"].items())]
    return "\n".join(f"- {line}" for line in lines)


def build(ctx: StudioContext, lang: gr.Dropdown, dataset_state: gr.State, analysis_state: gr.State) -> DataTab:
    L = ctx.labels
    # The demo's sample first and preselected; the others (e.g. one with broken rows) follow.
    samples = sorted((p.name for p in SAMPLES_DIR.glob("*.json*")), key=lambda n: (n != DEMO_SAMPLE, n))
    with gr.Row():
        upload = L.add(gr.File(file_types=[".json", ".jsonl", ".csv", ".parquet"], elem_id="data-upload",
                               scale=2), label="data.upload")
        with gr.Column(scale=1):
            sample = L.add(gr.Dropdown(samples, value=samples[0] if samples else None, elem_id="data-sample"),
                           label="data.sample")
            load_sample = L.add(gr.Button(variant="primary", elem_id="data-load-sample"), value="data.load_sample")
    with gr.Row():
        fmt = L.add(gr.Dropdown(FORMATS, value="auto"), label="data.format", info="data.format_info")
        columns = L.add(gr.Textbox(), label="data.columns", info="data.columns_info", placeholder="data.columns_ph")
        reload = L.add(gr.Button(), value="data.reload")
    status = gr.Markdown(elem_id="data-status")
    table = L.add(gr.Dataframe(interactive=False, wrap=True, max_height=300), label="data.table")
    errors = L.add(gr.Dataframe(interactive=False, wrap=True, max_height=200, elem_id="data-errors"),
                   label="data.errors")
    with gr.Row():
        stats = gr.Markdown(elem_id="data-stats")
        plot = gr.Plot(elem_id="data-histogram")

    def on_upload(file: str | None, fmt_v: str, cols: str, lang_v: str, request: gr.Request):
        if not file:
            return gr.skip(), gr.skip(), gr.skip(), gr.skip()
        user = user_of(request)
        if ctx.ledger.owner(file) != user:   # a cached file another session sent
            return t(lang_v, "upload.not_yours"), pd.DataFrame(), pd.DataFrame(), None
        try:
            check_room(ctx, user, 0)         # the cached copy already counts; it moves, not grows
            saved = ctx.uploads.save(user, Path(file), Path(file).name)
        except NoRoom as err:
            return t(lang_v, err.key, **err.params), pd.DataFrame(), pd.DataFrame(), None
        except UploadError as err:
            return t(lang_v, "data.upload_refused", error=str(err)), pd.DataFrame(), pd.DataFrame(), None
        finally:
            ctx.ledger.discard(file)
        return inspect(str(saved), fmt_v, cols, lang_v, user_space(ctx, user))

    def on_sample(name: str, fmt_v: str, cols: str, lang_v: str, request: gr.Request):
        if name not in samples:
            return t(lang_v, "data.pick_sample"), pd.DataFrame(), pd.DataFrame(), None
        return inspect(str(SAMPLES_DIR / name), fmt_v, cols, lang_v, user_space(ctx, user_of(request)))

    def on_reload(state: dict | None, fmt_v: str, cols: str, lang_v: str, request: gr.Request):
        if not state:
            return t(lang_v, "data.nothing_loaded"), gr.skip(), gr.skip(), None
        return inspect(state["path"], fmt_v, cols, lang_v, user_space(ctx, user_of(request)))

    outs = [status, table, errors, dataset_state]
    loaded = upload.upload(on_upload, [upload, fmt, columns, lang], outs, api_name="upload")
    sample_ev = load_sample.click(on_sample, [sample, fmt, columns, lang], outs, api_name="load_sample")
    reload_ev = reload.click(on_reload, [dataset_state, fmt, columns, lang], outs)
    analysis_state.change(lambda a, lg: (stats_text(a, lg), histogram(a, lg)), [analysis_state, lang], [stats, plot])
    return DataTab(upload, sample, load_sample, status, table, errors, stats, plot, [loaded, sample_ev, reload_ev])
