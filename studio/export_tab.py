"""Export tab: a job's adapter as a zip, the adapter merged into the base model as safetensors
with the tokenizer and chat template, or one GGUF file with an Ollama Modelfile (each runs
`python -m trainer_backend export` in a subprocess: it needs torch). A stopped or failed job is
exported from its newest checkpoint; a merge shows its merge check."""
from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from studio.context import JOB_ERRORS, StudioContext, user_of
from studio.i18n import t
from studio.quota import NoRoom, check_room
from studio.space import user_space
from studio.uploads import user_dir
from trainer_backend.contracts import last_line
from trainer_backend.export_contract import GGUF_TYPES, MERGE_DTYPES, MergeCheck, exportable
from trainer_backend.jobs import COMPLETED, FAILED, STOPPED

EXPORT_TIMEOUT_S = 3600


@dataclass
class ExportTab:
    job: gr.Dropdown
    refresh: object     # fn(current, request) -> dropdown update


def zip_folder(folder: Path, dest_stem: Path) -> Path:
    dest_stem.parent.mkdir(parents=True, exist_ok=True)
    return Path(shutil.make_archive(str(dest_stem), "zip", root_dir=folder))


@dataclass(frozen=True)
class ExportRequest:
    kind: str                 # adapter | merged | gguf
    dtype: str = "auto"       # merged: one of MERGE_DTYPES
    gguf: str = "q8_0"        # gguf: one of GGUF_TYPES

    def argv(self) -> list[str]:
        if self.kind == "merged":
            return ["--merge", "--dtype", self.dtype]
        return ["--gguf", self.gguf] if self.kind == "gguf" else []

    def folder(self) -> str:
        return {"merged": f"merged-{self.dtype}", "gguf": f"gguf-{self.gguf}"}.get(self.kind, self.kind)


def exportable_jobs(ctx: StudioContext, user: str) -> list[tuple[str, str]]:
    """Completed jobs, and stopped or failed ones that left a checkpoint, newest first."""
    jobs = [j for j in ctx.runner.list(user)
            if j.state == COMPLETED or (j.state in (STOPPED, FAILED) and exportable(j.job_dir))]
    return [(f"{j.name} · {j.id} · {j.state}", j.id) for j in sorted(jobs, key=lambda j: j.created, reverse=True)]


def export(ctx: StudioContext, user: str, job_id: str, request: ExportRequest) -> tuple[Path, MergeCheck | None]:
    """Write the export under the user's folder and zip it; raises RuntimeError with one line."""
    info = ctx.runner.get(job_id, user)
    check_room(ctx, user, 0)   # an export's size is known only once written: a user over quota starts none
    out = user_dir(ctx.settings.workdir, user, "exports") / f"{job_id}-{request.folder()}"
    argv = [ctx.settings.python, "-m", "trainer_backend", "export", str(info.job_dir), "--out", str(out)]
    proc = subprocess.run(argv + request.argv(), capture_output=True, text=True, timeout=EXPORT_TIMEOUT_S)
    if proc.returncode != 0:
        raise RuntimeError(last_line(proc.stderr) or f"export exited with code {proc.returncode}")
    return zip_folder(out, out), MergeCheck.load(out)


def check_text(lang: str, check: MergeCheck | None) -> str:
    if check is None:
        return ""
    text = t(lang, "export.check", dtype=check.dtype, source=check.source, diff=check.max_logit_diff,
             agree=check.greedy_agree, prompts=check.prompts)
    if check.material and check.dtype != "fp32":
        text += " " + t(lang, "export.check_material", dtype=check.dtype)
    return "\n\n" + text


def build(ctx: StudioContext, lang: gr.Dropdown) -> ExportTab:
    L = ctx.labels
    with gr.Row():
        job = L.add(gr.Dropdown([], value=None, allow_custom_value=True, scale=3, elem_id="export-job"), label="export.job")
        refresh_btn = L.add(gr.Button(size="sm", scale=1), value="export.refresh")
    with gr.Row():
        adapter_btn = L.add(gr.Button(elem_id="export-adapter"), value="export.adapter")
        dtype = L.add(gr.Dropdown(list(MERGE_DTYPES), value="auto", elem_id="export-dtype"),
                      label="export.dtype", info="export.dtype_info")
        merge_btn = L.add(gr.Button(variant="primary", elem_id="export-merge"), value="export.merge")
        gguf = L.add(gr.Dropdown(list(GGUF_TYPES), value="q8_0", elem_id="export-gguf-type"),
                     label="export.gguf_type", info="export.gguf_info")
        gguf_btn = L.add(gr.Button(variant="primary", elem_id="export-gguf"), value="export.gguf")
    status = gr.Markdown(elem_id="export-status")
    file = L.add(gr.File(interactive=False, elem_id="export-file"), label="export.file")

    def run(kind: str):
        def handler(job_id: str | None, dtype_v: str, gguf_v: str, lang_v: str, request: gr.Request):
            if not job_id:
                return t(lang_v, "export.pick_first"), None
            user = user_of(request)
            try:
                path, check = export(ctx, user, job_id, ExportRequest(kind, dtype_v, gguf_v))
            except NoRoom as err:
                return t(lang_v, err.key, **err.params), None
            except (*JOB_ERRORS, RuntimeError, subprocess.TimeoutExpired) as err:
                return t(lang_v, "export.failed", error=user_space(ctx, user).shown(str(err))), None
            done = t(lang_v, "export.done", name=path.name, mb=path.stat().st_size / 2**20)
            return done + check_text(lang_v, check), str(path)
        return handler

    def refresh(current: str | None, request: gr.Request):
        choices = exportable_jobs(ctx, user_of(request))
        ids = {c[1] for c in choices}
        return gr.update(choices=choices, value=current if current in ids else (choices[0][1] if choices else None))

    inputs = [job, dtype, gguf, lang]
    adapter_btn.click(run("adapter"), inputs, [status, file], api_name="export_adapter")
    merge_btn.click(run("merged"), inputs, [status, file])
    gguf_btn.click(run("gguf"), inputs, [status, file])
    refresh_btn.click(refresh, job, job)
    return ExportTab(job, refresh)
