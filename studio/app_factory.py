"""Build the studio: the header, the language switch, one tab per module, and the wiring between
tabs (a loaded dataset feeds the preview and the Train form; Launch jumps to Monitor)."""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import gradio as gr
import psutil
from starlette.middleware import Middleware

from studio import chat_tab, data_tab, export_tab, jobs_tab, monitor_tab, template_tab, train_tab
from studio.auth import UsersFile
from studio.context import StudioContext, StudioSettings, user_of
from studio.guard import StudioGuard
from studio.i18n import LANGUAGES, t
from studio.preview import CSS
from studio.uploads import UploadStore
from trainer_backend.jobs import JobRunner
from trainer_backend.serve.client import ChatPool

TAB_IDS = ("data", "template", "train", "monitor", "jobs", "chat", "export")


def train_command(python: str) -> list[str]:
    """Training is batch work: run it niced so the studio and the browser on the same machine stay
    responsive (a GPU job loses nothing; a CPU job yields only to interactive work)."""
    nice = shutil.which("nice")
    return [*([nice, "-n", "10"] if nice else []), python, "-m", "trainer_backend", "train"]


def make_context(settings: StudioSettings, users: UsersFile | None = None) -> StudioContext:
    workdir = settings.workdir
    runner = JobRunner(workdir, gpus=settings.gpus, train_command=train_command(settings.python),
                       min_free_gib=settings.min_free_gib, oom_retries=settings.oom_retries,
                       stall_s=settings.stall_timeout_s, warm_workers=settings.warm_workers)
    chats = ChatPool(runner, settings.python)
    return StudioContext(settings, runner, UploadStore(workdir, settings.max_upload_bytes), chats, users)


def build_ui(ctx: StudioContext) -> gr.Blocks:
    L = ctx.labels
    # Cached uploads older than an hour go (the Data tab moves each upload out at once).
    with gr.Blocks(title="Fine-tuning studio", delete_cache=(600, 3600)) as demo:
        with gr.Row():
            L.add(gr.Markdown(), value="app.title")
            lang = L.add(gr.Dropdown([(name, code) for code, name in LANGUAGES.items()], value="en", scale=0,
                                     min_width=160, elem_id="lang"), label="app.language")
        who = gr.Markdown(elem_id="who")
        L.add(gr.HTML(elem_id="lang-marker"), value="app.lang_marker")
        # The typed values the tabs share: the dataset chosen in the Data tab (DatasetChoice), the
        # preview's analysis, and the run being prepared (RunConfig) that the Train tab edits and
        # the Template tab previews.
        start = train_tab.initial_run()
        dataset_state, analysis_state, run_state = gr.State(None), gr.State(None), gr.State(start)
        with gr.Tabs(elem_id="tabs") as tabs:
            items = {}
            with L.add(gr.Tab(id="data", elem_id="tab-data"), label="tab.data") as items["data"]:
                data = data_tab.build(ctx, lang, dataset_state, analysis_state)
            with L.add(gr.Tab(id="template", elem_id="tab-template"), label="tab.template") as items["template"]:
                template = template_tab.build(ctx, lang, dataset_state, analysis_state, run_state, start)
            with L.add(gr.Tab(id="train", elem_id="tab-train"), label="tab.train") as items["train"]:
                train = train_tab.build(ctx, lang, dataset_state, run_state)
            with L.add(gr.Tab(id="monitor", elem_id="tab-monitor"), label="tab.monitor") as items["monitor"]:
                monitor = monitor_tab.build(ctx, lang)
            with L.add(gr.Tab(id="jobs", elem_id="tab-jobs"), label="tab.jobs") as items["jobs"]:
                jobs = jobs_tab.build(ctx, lang)
            with L.add(gr.Tab(id="chat", elem_id="tab-chat"), label="tab.chat") as items["chat"]:
                chat = chat_tab.build(ctx, lang)
            with L.add(gr.Tab(id="export", elem_id="tab-export"), label="tab.export") as items["export"]:
                export = export_tab.build(ctx, lang)
        for event in data.loaded:
            template.attach(event)
        def follow_launch(job_id: str, lang_v: str, request: gr.Request):
            return *monitor.show_job(job_id, lang_v, request), gr.Tabs(selected="monitor")

        def relabel(code: str, request: gr.Request):
            return t(code, "app.subtitle", user=user_of(request)), *L.updates(code)

        train.launched.change(follow_launch, [train.launched, lang], [monitor.job, *monitor.outputs, tabs])
        items["jobs"].select(jobs.refresh, [jobs.job, lang], [jobs.table, jobs.job])
        items["chat"].select(chat.refresh, chat.job, chat.job)
        items["export"].select(export.refresh, export.job, export.job)
        lang.change(relabel, lang, [who, *L.components])
        lang.change(monitor.show_job, [monitor.job, lang], [monitor.job, *monitor.outputs])
        lang.change(jobs.refresh, [jobs.job, lang], [jobs.table, jobs.job])
        demo.load(_on_load(ctx, monitor), [monitor.job], [who, monitor.job])
        demo.load(data.restore, None, data.restore_outputs)
    return demo


def _on_load(ctx: StudioContext, monitor: monitor_tab.MonitorTab):
    """A (re)loaded page re-attaches the Monitor to the user's newest live job."""
    def on_load(current: str | None, request: gr.Request):
        return t("en", "app.subtitle", user=user_of(request)), monitor.refresh_choices(current, "en", request)
    return on_load


def launch_kwargs(ctx: StudioContext, auth: Any | None) -> dict[str, Any]:
    guard = Middleware(StudioGuard, ctx=ctx, upload_dir=upload_cache(ctx.settings))
    return {"auth": auth, "max_file_size": ctx.settings.max_upload_bytes, "allowed_paths": [],
            "css": CSS, "footer_links": [], "show_error": False, "app_kwargs": {"middleware": [guard]}}


def upload_cache(settings: StudioSettings) -> Path:
    """One per studio process: who sent a cached file is known only to the studio that received it."""
    return Path(settings.workdir, ".gradio", str(os.getpid())).resolve()


def prepare_workdir(settings: StudioSettings) -> None:
    """Gradio's upload cache goes inside the workdir, so nothing is served from outside it; the
    caches of studios no longer running are removed. Must run before the first upload (gradio
    reads the variable at each upload)."""
    settings.workdir.mkdir(parents=True, exist_ok=True)
    caches = upload_cache(settings).parent
    if caches.is_dir():
        for old in caches.iterdir():
            other_live_studio = old.name.isdigit() and psutil.pid_exists(int(old.name)) and old != upload_cache(settings)
            if not other_live_studio:
                shutil.rmtree(old, ignore_errors=True)
    os.environ["GRADIO_TEMP_DIR"] = str(upload_cache(settings))
