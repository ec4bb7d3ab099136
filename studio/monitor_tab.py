"""Monitor tab: pick a job, watch its charts, progress, ETA and log refresh every second (a
gr.Timer reading events.jsonl incrementally), stop it. Everything is read from the job files, so a
reload or a studio restart re-attaches."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from studio.charts import (Series, absorb, eta_text, has_preference, loss_figure, new_series, preference_figure,
                           system_figure)
from studio.common import ended_reason, job_choices
from studio.context import JOB_ERRORS, StudioContext, user_of
from studio.evaluation_view import absorb_evaluation, metrics_markdown, samples_frame
from studio.i18n import say, t
from studio.space import relative_paths
from trainer_backend.contracts import Stage
from trainer_backend.jobs import QUEUED, RUNNING, STOPPING, JobInfo

REFRESH_S = 1.0
STAGES = {stage.value for stage in Stage}
LOG_LINES = 15          # the box shows them all, so its end is always in view
LIVE = (QUEUED, RUNNING, STOPPING)


@dataclass
class MonitorTab:
    job: gr.Dropdown
    refresh_choices: Any      # fn(current job, lang, request) -> dropdown update; on page load
    show_job: Any             # fn(job id, lang, request) -> (dropdown update, *outputs): the job at once
    outputs: list             # what show_job fills after the dropdown


def default_job(jobs: list[JobInfo]) -> str | None:
    live = [j for j in jobs if j.state in LIVE]
    pick = max(live or jobs, key=lambda j: j.created, default=None)
    return pick.id if pick else None


def progress_text(info: JobInfo, s: Series, lang: str) -> str:
    step = s.step[-1] if s.step else 0
    total = s.total or info.progress.total
    pct = f" ({100 * step / total:.0f}%)" if total else ""
    loss = f"{s.loss[-1]:.4f}" if s.loss else "–"
    text = t(lang, "mon.progress", state=t(lang, f"state.{info.state}"), step=step, total=total or "?", pct=pct,
             loss=loss, eta=eta_text(s.eta_s) if info.state == RUNNING else "–")
    if s.stage and info.state == RUNNING:  # before the first step, say what the job is doing
        stage, message = s.stage
        named = t(lang, f"stage.{stage}") if stage in STAGES else str(stage)
        text = t(lang, "mon.preparing", state=t(lang, f"state.{info.state}"), stage=named, message=say(lang, message))
    for n, change in enumerate(s.retries, start=1):
        text += "\n\n" + t(lang, "mon.retry", n=n, change=say(lang, change))
    reason = say(lang, s.error) if s.error else ended_reason(info, lang)
    if reason and info.state not in (RUNNING, QUEUED):
        text += "\n\n" + t(lang, "mon.reason", reason=reason)
    return text


def build(ctx: StudioContext, lang: gr.Dropdown) -> MonitorTab:
    L = ctx.labels
    with gr.Row():
        job = L.add(gr.Dropdown([], value=None, allow_custom_value=True, elem_id="mon-job", scale=4), label="mon.job")
        refresh = L.add(gr.Button(size="sm", scale=1), value="mon.refresh")
        stop = L.add(gr.Button(variant="stop", size="sm", scale=1, elem_id="mon-stop"), value="mon.stop")
    summary = gr.Markdown(elem_id="mon-summary")
    loss_plot = L.add(gr.Plot(elem_id="mon-loss"), label="mon.loss")
    system_plot = L.add(gr.Plot(elem_id="mon-system"), label="mon.system")
    preference_plot = gr.Plot(elem_id="mon-preference", visible=False)   # shown for preference objectives
    metrics_md = gr.Markdown(elem_id="mon-metrics")
    samples = L.add(gr.Dataframe(interactive=False, wrap=True, elem_id="mon-samples"), label="mon.samples")
    log = L.add(gr.Textbox(lines=LOG_LINES, max_lines=LOG_LINES, interactive=False, elem_id="mon-log",
                           autoscroll=True), label="mon.log")
    series = gr.State(None)
    shown_choices = gr.State(None)      # the labels the dropdown shows now, to relabel only on a change
    timer = gr.Timer(REFRESH_S)

    def refresh_choices(current: str | None, lang_v: str, request: gr.Request):
        jobs = ctx.runner.list(user_of(request))
        ids = {j.id for j in jobs}
        return gr.update(choices=job_choices(jobs, lang_v), value=current if current in ids else default_job(jobs))

    def relabel(shown: list | None, lang_v: str, request: gr.Request):
        """Keep each job's state in its dropdown label current (queued → running → completed)."""
        choices = [list(c) for c in job_choices(ctx.runner.list(user_of(request)), lang_v)]
        if choices == shown:
            return gr.skip(), gr.skip()
        return gr.update(choices=[tuple(c) for c in choices]), choices

    def tick(job_id: str | None, s: Series | None, lang_v: str, request: gr.Request):
        if not job_id:
            return t(lang_v, "mon.pick_job"), gr.skip(), gr.skip(), gr.skip(), "", None, gr.update(interactive=False,
                                                                                        variant="secondary"), "", None
        user = user_of(request)
        fresh = s is None or s.job != job_id
        s = new_series(job_id) if fresh else s
        relabelled = s.lang != lang_v          # charts are redrawn in the language now chosen
        s.lang = lang_v
        try:
            info = ctx.runner.get(job_id, user)
            events, s.next = ctx.runner.events(job_id, user, s.next)
            log_text = ctx.runner.log_tail(job_id, user, LOG_LINES)
        except JOB_ERRORS as err:
            return t(lang_v, "mon.job_error", error=str(err)), gr.skip(), gr.skip(), gr.skip(), "", None, gr.skip(), "", None
        absorb(s, events)
        evaluated = absorb_evaluation(s, events) or fresh or relabelled
        evaluation = (metrics_markdown(s.metrics, lang_v), samples_frame(s.samples)) if evaluated \
            else (gr.skip(), gr.skip())
        draw = fresh or relabelled or any(e.get("kind") in ("train", "eval") for e in events)
        preference = gr.update(value=preference_figure(s, lang_v), visible=True) if has_preference(s) else \
            gr.update(visible=False)
        charts = (loss_figure(s, lang_v), system_figure(s, lang_v), preference) if draw else (gr.skip(),) * 3
        text = relative_paths(progress_text(info, s, lang_v), ctx.settings.workdir, user)
        log_text = relative_paths(log_text, ctx.settings.workdir, user)
        # Unchanged values are skipped: a tick that brings nothing new costs the browser nothing.
        shown = [text, log_text, info.state]
        same = not fresh and not relabelled and s.shown == shown
        s.shown = shown
        if same:
            return gr.skip(), *charts, gr.skip(), s, gr.skip(), *evaluation
        # Stop only while there is something to stop.
        return text, *charts, log_text, s, gr.update(interactive=info.state in LIVE,
                                                            variant="stop" if info.state in LIVE else "secondary"), *evaluation

    def show_job(job_id: str, lang_v: str, request: gr.Request):
        """Right after Launch: the new job's own (empty) charts and status, not the previous job's;
        after a language switch: everything redrawn in the new language."""
        if not job_id:
            return gr.skip(), *tick(None, None, lang_v, request)
        return refresh_choices(job_id, lang_v, request), *tick(job_id, None, lang_v, request)

    def on_stop(job_id: str | None, lang_v: str, request: gr.Request):
        if not job_id:
            return t(lang_v, "mon.pick_job")
        try:
            ctx.runner.stop(job_id, user_of(request))
        except JOB_ERRORS as err:
            return t(lang_v, "mon.job_error", error=str(err))
        return t(lang_v, "mon.stopping", job=job_id)

    outs = [summary, loss_plot, system_plot, preference_plot, log, series, stop, metrics_md, samples]
    timer.tick(tick, [job, series, lang], outs, show_progress="hidden", queue=False)
    timer.tick(relabel, [shown_choices, lang], [job, shown_choices], show_progress="hidden", queue=False)
    job.change(tick, [job, series, lang], outs, show_progress="hidden", api_name="monitor")
    refresh.click(refresh_choices, [job, lang], job)
    stop.click(on_stop, [job, lang], summary, api_name="stop")
    return MonitorTab(job, refresh_choices, show_job, outs)
