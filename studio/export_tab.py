"""Export tab: a finished job's adapter as a zip, or the adapter merged into the base model as
safetensors with the tokenizer and chat template (the merge runs `python -m trainer_backend export`
in a subprocess: it needs torch)."""
from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from studio.common import finished_jobs
from studio.context import JOB_ERRORS, StudioContext, user_of
from studio.i18n import t
from studio.quota import NoRoom, check_room
from studio.space import user_space
from studio.uploads import user_dir
from trainer_backend.contracts import last_line

EXPORT_TIMEOUT_S = 3600


@dataclass
class ExportTab:
    job: gr.Dropdown
    refresh: object     # fn(current, request) -> dropdown update


def zip_folder(folder: Path, dest_stem: Path) -> Path:
    dest_stem.parent.mkdir(parents=True, exist_ok=True)
    return Path(shutil.make_archive(str(dest_stem), "zip", root_dir=folder))


def export(ctx: StudioContext, user: str, job_id: str, merge: bool) -> Path:
    """Write the export under the user's folder and zip it; raises RuntimeError with one line."""
    info = ctx.runner.get(job_id, user)
    check_room(ctx, user, 0)   # an export's size is known only once written: a user over quota starts none
    kind = "merged" if merge else "adapter"
    out = user_dir(ctx.settings.workdir, user, "exports") / f"{job_id}-{kind}"
    argv = [ctx.settings.python, "-m", "trainer_backend", "export", str(info.job_dir), "--out", str(out)]
    proc = subprocess.run(argv + (["--merge"] if merge else []), capture_output=True, text=True,
                          timeout=EXPORT_TIMEOUT_S)
    if proc.returncode != 0:
        raise RuntimeError(last_line(proc.stderr) or f"export exited with code {proc.returncode}")
    return zip_folder(out, out)


def build(ctx: StudioContext, lang: gr.Dropdown) -> ExportTab:
    L = ctx.labels
    with gr.Row():
        job = L.add(gr.Dropdown([], value=None, allow_custom_value=True, scale=3, elem_id="export-job"), label="export.job")
        refresh_btn = L.add(gr.Button(size="sm", scale=1), value="export.refresh")
    with gr.Row():
        adapter_btn = L.add(gr.Button(elem_id="export-adapter"), value="export.adapter")
        merge_btn = L.add(gr.Button(variant="primary", elem_id="export-merge"), value="export.merge")
    status = gr.Markdown(elem_id="export-status")
    file = L.add(gr.File(interactive=False, elem_id="export-file"), label="export.file")

    def run(merge: bool):
        def handler(job_id: str | None, lang_v: str, request: gr.Request):
            if not job_id:
                return t(lang_v, "export.pick_first"), None
            user = user_of(request)
            try:
                path = export(ctx, user, job_id, merge)
            except NoRoom as err:
                return t(lang_v, err.key, **err.params), None
            except (*JOB_ERRORS, RuntimeError, subprocess.TimeoutExpired) as err:
                return t(lang_v, "export.failed", error=user_space(ctx, user).shown(str(err))), None
            return t(lang_v, "export.done", name=path.name, mb=path.stat().st_size / 2**20), str(path)
        return handler

    def refresh(current: str | None, request: gr.Request):
        choices = finished_jobs(ctx.runner.list(user_of(request)))
        ids = {c[1] for c in choices}
        return gr.update(choices=choices, value=current if current in ids else (choices[0][1] if choices else None))

    adapter_btn.click(run(False), [job, lang], [status, file], api_name="export_adapter")
    merge_btn.click(run(True), [job, lang], [status, file])
    refresh_btn.click(refresh, job, job)
    return ExportTab(job, refresh)
