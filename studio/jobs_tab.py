"""Jobs tab: the user's jobs (state, duration, final loss, why it failed) with resume and delete."""
from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import gradio as gr
import pandas as pd

from studio.charts import eta_text
from studio.context import JOB_ERRORS, StudioContext, user_of
from studio.evaluation_view import compare_figure, compared_jobs, config_differences
from studio.i18n import t
from studio.common import ended_reason, job_choices
from trainer_backend.jobs import JobInfo

COLUMNS = ("id", "name", "state", "devices", "created", "duration", "final_loss", "reason")


@dataclass
class JobsTab:
    table: gr.Dataframe
    job: gr.Dropdown
    refresh: Any     # fn(current, lang, request) -> (table, dropdown update)


def job_row(j: JobInfo, lang: str) -> dict[str, Any]:
    end = j.ended or time.time()
    return {"id": j.id, "name": j.name, "state": t(lang, f"state.{j.state}"),
            "devices": ", ".join(map(str, j.gpus)) or "cpu",
            "created": datetime.fromtimestamp(j.created).strftime("%Y-%m-%d %H:%M"),
            "duration": eta_text(end - j.started) if j.started else "–",
            "final_loss": round(j.last_loss, 4) if j.last_loss is not None else None,
            "reason": ended_reason(j, lang)}


def build(ctx: StudioContext, lang: gr.Dropdown) -> JobsTab:
    L = ctx.labels
    table = L.add(gr.Dataframe(pd.DataFrame(columns=list(COLUMNS)), interactive=False, wrap=True, elem_id="jobs-table"),
                  label="jobs.table")
    with gr.Row():
        job = L.add(gr.Dropdown([], value=None, allow_custom_value=True, elem_id="jobs-pick", scale=3), label="jobs.pick")
        refresh_btn = L.add(gr.Button(size="sm"), value="jobs.refresh")
        resume = L.add(gr.Button(size="sm", elem_id="jobs-resume"), value="jobs.resume")
        delete = L.add(gr.Button(variant="stop", size="sm", elem_id="jobs-delete"), value="jobs.delete")
    status = gr.Markdown(elem_id="jobs-status")
    with L.add(gr.Accordion(open=False, elem_id="jobs-compare"), label="jobs.compare"):
        with gr.Row():
            picked = L.add(gr.Dropdown([], value=[], multiselect=True, allow_custom_value=True,
                                       elem_id="jobs-compare-pick", scale=4),
                           label="jobs.compare_pick")
            compare_btn = L.add(gr.Button(size="sm", scale=1, elem_id="jobs-compare-run"), value="jobs.compare_run")
        compare_note = gr.Markdown(elem_id="jobs-compare-note")
        compare_plot = gr.Plot(elem_id="jobs-compare-plot")
        differences = L.add(gr.Dataframe(interactive=False, wrap=True, elem_id="jobs-compare-diff"),
                            label="jobs.compare_diff")

    def refresh(current: str | None, lang_v: str, request: gr.Request):
        jobs = ctx.runner.list(user_of(request))
        df = pd.DataFrame([job_row(j, lang_v) for j in sorted(jobs, key=lambda j: j.created, reverse=True)],
                          columns=list(COLUMNS)).rename(columns={c: t(lang_v, f"jobs.col.{c}") for c in COLUMNS})
        ids = {j.id for j in jobs}
        return df, gr.update(choices=job_choices(jobs, lang_v), value=current if current in ids else None)

    def done_text(action: str, job_id: str, checkpoint: str | None, lang_v: str) -> str:
        """Resume says where the job continues: its newest checkpoint, or step 0 when it has none."""
        if action == "resume":
            key = "jobs.resumed" if checkpoint else "jobs.resumed_fresh"
            return t(lang_v, key, job=job_id, checkpoint=checkpoint)
        return t(lang_v, f"jobs.{action}d", job=job_id)

    def act(action: str):
        def run(job_id: str | None, lang_v: str, request: gr.Request):
            if not job_id:
                return (t(lang_v, "jobs.pick_first"), *refresh(None, lang_v, request))
            try:
                checkpoint = getattr(ctx.runner, action)(job_id, user_of(request))
            except JOB_ERRORS as err:
                return (t(lang_v, "jobs.failed", error=str(err)), *refresh(job_id, lang_v, request))
            return (done_text(action, job_id, checkpoint, lang_v), *refresh(job_id, lang_v, request))
        return run

    def compare(job_ids: list[str] | None, lang_v: str, request: gr.Request):
        if not job_ids:
            return t(lang_v, "jobs.compare_need"), None, None
        try:
            curves, configs = compared_jobs(ctx.runner, user_of(request), list(job_ids))
        except JOB_ERRORS as err:
            return t(lang_v, "jobs.failed", error=str(err)), None, None
        diff = config_differences(configs)
        note = t(lang_v, "jobs.compare_same") if diff.empty and len(configs) > 1 else ""
        return note, compare_figure(curves, lang_v), diff

    def compare_choices(current: list[str] | None, lang_v: str, request: gr.Request):
        jobs = ctx.runner.list(user_of(request))
        ids = {j.id for j in jobs}
        return gr.update(choices=job_choices(jobs, lang_v), value=[i for i in current or [] if i in ids])

    refresh_btn.click(refresh, [job, lang], [table, job], api_name="jobs")
    refresh_btn.click(compare_choices, [picked, lang], picked)
    table.change(compare_choices, [picked, lang], picked)
    compare_btn.click(compare, [picked, lang], [compare_note, compare_plot, differences], api_name="compare")
    resume.click(act("resume"), [job, lang], [status, table, job])
    delete.click(act("delete"), [job, lang], [status, table, job])
    return JobsTab(table, job, refresh)
