"""The torch-free side of the preview: run `trainer_backend.serve.preview` in a short-lived
subprocess (tokenizers import torch) and turn its rows into HTML and checks."""
from __future__ import annotations

import html
import json
import subprocess
from dataclasses import dataclass, field
from typing import Any

from trainer_backend.config import RunConfig

PREVIEW_TIMEOUT_S = 600


class PreviewError(RuntimeError):
    """A user-fixable problem reported by the preview process (one line)."""


@dataclass
class PreviewRequest:
    data_path: str
    model: str
    data_format: str = "auto"
    columns: dict[str, str] = field(default_factory=dict)
    template: str = "auto"
    loss: str = "response_only"
    max_seq_len: int = 2048
    overflow: str = "truncate"
    system_prompt: str = ""
    keep_trailing_user: bool = False
    rows: int = 50
    start_row: int = 0             # the rows shown token by token start at this source row

    @classmethod
    def for_run(cls, run: RunConfig, start_row: int = 0) -> "PreviewRequest":
        """The preview of the run being prepared: its data, model and template settings."""
        return cls(data_path=run.data.path, model=run.model.name_or_path, data_format=run.data.format,
                   columns=dict(run.data.columns), template=run.template.name, loss=run.template.loss,
                   max_seq_len=run.template.max_seq_len, overflow=run.template.overflow,
                   system_prompt=run.template.system_prompt or "", keep_trailing_user=not run.data.drop_trailing_user,
                   start_row=start_row)

    def argv(self, python: str) -> list[str]:
        return [python, "-m", "trainer_backend.serve.preview", "--data", self.data_path, "--model", self.model,
                "--format", self.data_format, "--columns", json.dumps(self.columns), "--template", self.template,
                "--loss", self.loss, "--max-seq-len", str(int(self.max_seq_len)), "--rows", str(self.rows),
                "--overflow", self.overflow, "--system-prompt", self.system_prompt, "--start-row", str(int(self.start_row)),
                *(["--keep-trailing-user"] if self.keep_trailing_user else [])]


def run_preview(request: PreviewRequest, python: str) -> dict[str, Any]:
    """Runs in the studio's working directory, where relative data and model paths resolve."""
    proc = subprocess.run(request.argv(python), capture_output=True, text=True,
                          timeout=PREVIEW_TIMEOUT_S, env=_quiet_env())
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
        raise PreviewError(lines[-1] if lines else f"preview exited with code {proc.returncode}")
    return json.loads(proc.stdout)


def _quiet_env() -> dict[str, str]:
    import os
    return {**os.environ, "TOKENIZERS_PARALLELISM": "false", "TRANSFORMERS_VERBOSITY": "error"}


def runs_html(runs: list[list[Any]]) -> str:
    """Trained runs and masked runs as spans; text escaped, whitespace kept by the CSS."""
    spans = "".join(f'<span class="{"tok-trained" if trained else "tok-masked"}">{html.escape(text)}</span>'
                    for text, trained in runs)
    return f'<div class="tok-view">{spans}</div>'


CSS = """
body:has(#studio-lang-vi) #data-upload [data-testid=upload-text] { visibility: hidden; }
body:has(#studio-lang-vi) #data-upload [data-testid=upload-text] .icon-wrap { visibility: visible; }
body:has(#studio-lang-vi) #data-upload [data-testid=upload-text]::after {
  visibility: visible; display: block; content: "Thả tệp vào đây hoặc bấm để tải lên"; }
#data-rows th, #data-errors th, #jobs-table th { white-space: nowrap; }
.tok-view { white-space: pre-wrap; font-family: monospace; line-height: 1.6; }
.tok-trained { background: #c8f7c5; color: #0b3d0b; border-radius: 3px; }
.tok-masked { background: #eeeeee; color: #777777; }
"""
