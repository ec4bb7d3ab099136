"""Data tab: upload, pick a sample or name a hub dataset, see the detected format, map the
file's columns onto the format's fields with dropdowns, and see the rows as the trainer will,
their errors and stats."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr
import pandas as pd
import plotly.graph_objects as go

from studio.common import DEMO_SAMPLE, SAMPLES_DIR, DataSource, DatasetChoice, recall_dataset, remember_dataset
from studio.context import StudioContext, user_of
from studio.i18n import say, t
from studio.preview import PreviewReport
from studio.quota import NoRoom, check_room
from studio.space import UserSpace, user_space
from studio.uploads import UploadError
from trainer_backend.data import DataError, LoadedDataset, dataset_columns, load_dataset
from trainer_backend.data.formats import FORMAT_FIELDS
from trainer_backend.data.readers import HUB_ID
from trainer_backend.messages import msg

FORMATS = ["auto", *FORMAT_FIELDS]
# One dropdown per field any format reads, shown for the format in use.
FIELDS = tuple(dict.fromkeys(name for fields in FORMAT_FIELDS.values() for name in fields))
TABLE_ROWS = 20
ROW_COLUMNS = ("row", "turns", "system", "user", "assistant")
ERROR_COLUMNS = ("row", "field", "message")


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
    loaded: Any          # events fired after a load, to chain the preview on
    restore: Any         # fn(request) -> outputs of a load; a reloaded page shows the user's last dataset
    restore_outputs: list


@dataclass(frozen=True)
class Inspection:
    """What one read of a file shows: the status line, the tables, and the dataset it yields (None
    when no row is usable) with the format the mapping dropdowns are drawn for."""
    status: str
    rows: pd.DataFrame
    errors: pd.DataFrame
    dataset: DatasetChoice | None
    format: str | None


def mapping_from(fields_values: list[str | None]) -> dict[str, str]:
    """The dropdowns (one per FIELDS entry, holding the column that fills it) as the config's
    {your column: field} mapping; a column already named like its field needs no entry."""
    return {column: name for name, column in zip(FIELDS, fields_values) if column and column != name}


def table_frame(rows: list[dict], columns: tuple[str, ...], lang: str) -> pd.DataFrame:
    """A table with translated headers, also when it has no row (no placeholder headers)."""
    frame = pd.DataFrame(rows, columns=list(columns))
    return frame.rename(columns={c: t(lang, f"data.col.{c}") for c in columns})


# Preference rows show their last user turn and chosen completion, plus the rejected one or the label.
EXTRA_COLUMN = {"preference": "rejected", "kto": "desirable"}


def conversations_table(data: LoadedDataset, lang: str) -> pd.DataFrame:
    rows = []
    extra = EXTRA_COLUMN.get(data.format)
    for conv in data.conversations[:TABLE_ROWS]:
        first = {m.role: m.content for m in reversed(conv.messages)}
        rows.append({"row": conv.row, "turns": len(conv.messages), "system": first.get("system", ""),
                     "user": first.get("user", conv.text or ""), "assistant": first.get("assistant", ""),
                     **({extra: getattr(conv, extra)} if extra else {})})
    return table_frame(rows, (*ROW_COLUMNS, *([extra] if extra else [])), lang)


def errors_table(data: LoadedDataset, lang: str) -> pd.DataFrame:
    return table_frame([{"row": e.row, "field": e.field, "message": say(lang, e.message)} for e in data.errors],
                       ERROR_COLUMNS, lang)


def inspect(source: DataSource, fmt: str, columns: dict[str, str], drop_trailing_user: bool, lang: str,
            space: UserSpace) -> Inspection:
    """One read of the file. Messages name it as uploaded, and any server path a library's own
    error carries (pyarrow names the file it could not open) as the user knows it."""
    try:
        data = load_dataset(source.path, format=fmt, columns=columns or None, drop_trailing_user=drop_trailing_user)
    except DataError as err:
        status = t(lang, "data.load_failed", name=source.name, error=space.shown(say(lang, err.notice)))
        if source.columns:
            status += "\n\n" + t(lang, "data.map_below")
        return Inspection(status, table_frame([], ROW_COLUMNS, lang), table_frame([], ERROR_COLUMNS, lang), None,
                          None if fmt == "auto" else fmt)
    status = t(lang, "data.loaded", name=source.name, format=data.format,
               reason=say(lang, data.reason), rows=data.rows, valid=data.valid_rows,
               invalid=data.invalid_rows)
    if data.trimmed_rows:
        status += " " + t(lang, "data.trimmed", n=len(data.trimmed_rows))
    choice = None
    if data.conversations:
        choice = DatasetChoice(source.path, source.name, data.format, tuple(columns.items()), drop_trailing_user,
                               data.valid_rows, requested=fmt)
    else:
        status += "\n\n" + t(lang, "data.no_valid_rows")
    return Inspection(status, conversations_table(data, lang), errors_table(data, lang), choice, data.format)


def mapping_updates(source: DataSource | None, shown_format: str | None, columns: dict[str, str]) -> list:
    """The dropdowns for the fields of `shown_format` (alpaca's when nothing is known yet), listing
    the file's columns, set to the mapping in use or to the column named like the field."""
    visible = FORMAT_FIELDS.get(shown_format or "alpaca", ())
    file_columns = list(source.columns) if source else []
    by_field = {name: column for column, name in columns.items()}
    updates = []
    for name in FIELDS:
        value = by_field.get(name) or (name if name in file_columns else None)
        updates.append(gr.update(choices=[("—", "")] + [(c, c) for c in file_columns], value=value or "",
                                 visible=name in visible and bool(file_columns)))
    return updates


def histogram(analysis: PreviewReport | None, lang: str) -> go.Figure | None:
    """Token lengths on an axis that fits the data; the max_seq_len line only when it is in view."""
    if not analysis or not analysis.lengths:
        return None
    lengths, limit = list(analysis.lengths), analysis.max_seq_len
    longest = max(lengths)
    fig = go.Figure(go.Histogram(x=lengths, nbinsx=40, name=t(lang, "data.tokens")))
    title = t(lang, "data.histogram_title")
    if limit <= longest * 1.5:
        fig.add_vline(x=limit, line_dash="dash", annotation_text=f"max_seq_len {limit}")
    else:
        title += " · " + t(lang, "data.limit_off_chart", max=limit)
    fig.update_layout(height=280, margin=dict(l=40, r=10, t=40, b=40), xaxis_title=t(lang, "data.tokens"),
                      yaxis_title=t(lang, "data.rows"), title=title,
                      xaxis_range=[0, max(longest, limit if limit <= longest * 1.5 else 0) * 1.05])
    return fig


def stats_text(analysis: PreviewReport | None, lang: str) -> str:
    if not analysis:
        return t(lang, "data.stats_pending")
    rep = analysis.counts
    lines = [t(lang, "data.stats", rows=analysis.rows, valid=analysis.valid_rows, kept=rep.kept,
               truncated=rep.truncated, cut=rep.cut_tokens, model=analysis.model, max=analysis.max_seq_len)]
    if rep.split:
        lines.append(t(lang, "data.split", n=rep.split))
    lines += [t(lang, "data.dropped", n=n, reason=say(lang, msg(reason))) for reason, n in rep.dropped]
    return "\n".join(f"- {line}" for line in lines)


def build(ctx: StudioContext, lang: gr.Dropdown, dataset_state: gr.State, analysis_state: gr.State) -> DataTab:
    L = ctx.labels
    # The demo's sample first and preselected; the others (e.g. one with broken rows) follow.
    samples = sorted((p.name for p in SAMPLES_DIR.glob("*.json*")), key=lambda n: (n != DEMO_SAMPLE, n))
    source_state = gr.State(None)      # DataSource: the file on screen, also when it did not load
    with gr.Row():
        upload = L.add(gr.File(file_types=[".json", ".jsonl", ".csv", ".parquet"], elem_id="data-upload",
                               scale=2), label="data.upload")
        with gr.Column(scale=1):
            sample = L.add(gr.Dropdown(samples, value=samples[0] if samples else None, elem_id="data-sample"),
                           label="data.sample")
            load_sample = L.add(gr.Button(variant="primary", elem_id="data-load-sample"), value="data.load_sample")
        with gr.Column(scale=1):
            hub_id = L.add(gr.Textbox(elem_id="data-hub-id"), label="data.hub_id", info="data.hub_id_info",
                           placeholder="data.hub_id_ph")
            load_hub = L.add(gr.Button(elem_id="data-load-hub"), value="data.load_hub")
    with gr.Row():
        fmt = L.add(gr.Dropdown(FORMATS, value="auto", elem_id="data-format"), label="data.format",
                    info="data.format_info")
        drop_user = L.add(gr.Checkbox(value=True, elem_id="data-drop-user"), label="data.drop_user",
                          info="data.drop_user_info")
    L.add(gr.Markdown(elem_id="data-mapping-hint"), value="data.mapping_hint")
    with gr.Row():
        mapping = [L.add(gr.Dropdown([("—", "")], value="", visible=False, min_width=140,
                                     elem_id=f"data-map-{name}"), label=f"data.field.{name}")
                   for name in FIELDS]
    apply = L.add(gr.Button(elem_id="data-apply"), value="data.reload")
    status = gr.Markdown(elem_id="data-status")
    table = L.add(gr.Dataframe(table_frame([], ROW_COLUMNS, "en"), interactive=False, wrap=True, max_height=300,
                               elem_id="data-rows"), label="data.table")
    errors = L.add(gr.Dataframe(table_frame([], ERROR_COLUMNS, "en"), interactive=False, wrap=True, max_height=200,
                                elem_id="data-errors"), label="data.errors")
    with gr.Row():
        stats = gr.Markdown(elem_id="data-stats")
        plot = L.add(gr.Plot(elem_id="data-histogram"), label="data.histogram_title")

    def show(source: DataSource | None, fmt_v: str, columns: dict[str, str], drop: bool, lang_v: str,
             request: gr.Request):
        user = user_of(request)
        seen = inspect(source, fmt_v, columns, drop, lang_v, user_space(ctx, user))
        if seen.dataset:
            remember_dataset(ctx.settings.workdir, user, seen.dataset)
        return (seen.status, seen.rows, seen.errors, seen.dataset, source,
                *mapping_updates(source, seen.format, columns))

    def read(path: Path, name: str) -> DataSource:
        try:
            return DataSource(str(path), name, tuple(dataset_columns(path)))
        except DataError:
            return DataSource(str(path), name)    # the load below reports why

    def on_upload(file: str | None, fmt_v: str, drop: bool, lang_v: str, request: gr.Request):
        if not file:
            return [gr.skip()] * len(outs)
        user = user_of(request)
        if ctx.ledger.owner(file) != user:   # a cached file another session sent
            return (t(lang_v, "upload.not_yours"), *[gr.skip()] * (len(outs) - 1))
        try:
            check_room(ctx, user, 0)         # the cached copy already counts; it moves, not grows
            saved = ctx.uploads.save(user, Path(file), Path(file).name)
        except NoRoom as err:
            return (t(lang_v, err.key, **err.params), *[gr.skip()] * (len(outs) - 1))
        except UploadError as err:
            return (t(lang_v, "data.upload_refused", error=str(err)), *[gr.skip()] * (len(outs) - 1))
        finally:
            ctx.ledger.discard(file)
        # A new file starts without a mapping: the old one named another file's columns.
        return show(read(saved, saved.name), fmt_v, {}, drop, lang_v, request)

    def on_sample(name: str, fmt_v: str, drop: bool, lang_v: str, request: gr.Request):
        if name not in samples:
            return (t(lang_v, "data.pick_sample"), *[gr.skip()] * (len(outs) - 1))
        # The upload box is emptied: what it shows must be what is loaded.
        return (*show(read(SAMPLES_DIR / name, name), fmt_v, {}, drop, lang_v, request), None)

    def on_apply(request: gr.Request, *args):  # request first: gradio injects only positional ones
        source, fmt_v, drop, lang_v, *fields = args
        if source is None:
            return (t(lang_v, "data.nothing_loaded"), *[gr.skip()] * (len(outs) - 1))
        return show(source, fmt_v, mapping_from(list(fields)), drop, lang_v, request)

    def on_hub(name: str, fmt_v: str, drop: bool, lang_v: str, request: gr.Request):
        name = (name or "").strip()
        if not HUB_ID.match(name):
            return (t(lang_v, "data.bad_hub_id", name=name), *[gr.skip()] * (len(outs) - 1))
        if user_space(ctx, user_of(request)).roots is not None:  # with --auth, data is the user's own files
            return (t(lang_v, "data.hub_refused"), *[gr.skip()] * (len(outs) - 1))
        return show(read(Path(name), name), fmt_v, {}, drop, lang_v, request)

    def restore(request: gr.Request):
        choice = recall_dataset(ctx.settings.workdir, user_of(request))
        if choice is None:
            return [gr.skip()] * (len(outs) + 2)
        seen = show(read(Path(choice.path), choice.name), choice.requested, choice.mapping,
                    choice.drop_trailing_user, "en", request)
        return (*seen, choice.requested, choice.drop_trailing_user)

    def on_format(source: DataSource | None, fmt_v: str, *fields):
        shown = None if fmt_v == "auto" else fmt_v
        return mapping_updates(source, shown, mapping_from(list(fields)))

    outs = [status, table, errors, dataset_state, source_state, *mapping]
    loaded = upload.upload(on_upload, [upload, fmt, drop_user, lang], outs, api_name="upload")
    sample_ev = load_sample.click(on_sample, [sample, fmt, drop_user, lang], [*outs, upload], api_name="load_sample")
    hub_ev = load_hub.click(on_hub, [hub_id, fmt, drop_user, lang], outs, api_name="load_hub")
    apply_ev = apply.click(on_apply, [source_state, fmt, drop_user, lang, *mapping], outs, api_name="apply")
    fmt.input(on_format, [source_state, fmt, *mapping], mapping)
    # Redrawn on a language switch too: a chart keeps the words it was drawn with.
    gr.on([analysis_state.change, lang.change], lambda a, lg: (stats_text(a, lg), histogram(a, lg)),
          [analysis_state, lang], [stats, plot])
    return DataTab(upload, sample, load_sample, status, table, errors, stats, plot, [loaded, sample_ev, hub_ev, apply_ev],
                   restore, [*outs, fmt, drop_user])
