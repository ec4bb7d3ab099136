"""The torch-free side of the preview: run `trainer_backend.serve.preview` in a short-lived
subprocess (tokenizers import torch) and turn its rows into HTML and checks."""
from __future__ import annotations

import html
import json
import subprocess
from dataclasses import dataclass, field
from typing import Any

from trainer_backend.config import RunConfig, TemplateConfig
from trainer_backend.contracts import last_line

PREVIEW_TIMEOUT_S = 600


class PreviewError(RuntimeError):
    """A user-fixable problem reported by the preview process (one line)."""


class PreviewTimeout(PreviewError):
    """The preview process ran past PREVIEW_TIMEOUT_S and was stopped."""


@dataclass(frozen=True)
class PreviewRequest:
    """What the preview renders: the run's data, its model's tokenizer and its WHOLE TemplateConfig,
    the object the trainer and the chat worker render with (never a copy of some of its fields)."""
    data_path: str
    model: str
    template: TemplateConfig = field(default_factory=TemplateConfig)
    data_format: str = "auto"
    columns: dict[str, str] = field(default_factory=dict)
    offline_tokenizer: str | None = None
    keep_trailing_user: bool = False
    rows: int = 50
    start_row: int = 0             # the rows shown token by token start at this source row

    @classmethod
    def for_run(cls, cfg: RunConfig, rows: int = 50, start_row: int = 0) -> "PreviewRequest":
        """The preview of the run being prepared: its data, model and whole template settings."""
        return cls(data_path=cfg.data.path, model=cfg.model.name_or_path, template=cfg.template,
                   data_format=cfg.data.format, columns=dict(cfg.data.columns),
                   offline_tokenizer=cfg.model.offline_tokenizer,
                   keep_trailing_user=not cfg.data.drop_trailing_user, rows=rows, start_row=start_row)

    def argv(self, python: str) -> list[str]:
        return [python, "-m", "trainer_backend.serve.preview", "--data", self.data_path, "--model", self.model,
                "--format", self.data_format, "--columns", json.dumps(self.columns),
                "--template-config", self.template.model_dump_json(),
                "--offline-tokenizer", self.offline_tokenizer or "", "--rows", str(self.rows),
                "--start-row", str(int(self.start_row)), *(["--keep-trailing-user"] if self.keep_trailing_user else [])]


def run_preview(request: PreviewRequest, python: str) -> dict[str, Any]:
    """Runs in the studio's working directory, where relative data and model paths resolve."""
    try:
        proc = subprocess.run(request.argv(python), capture_output=True, text=True,
                              timeout=PREVIEW_TIMEOUT_S, env=_quiet_env())
    except subprocess.TimeoutExpired:
        raise PreviewTimeout(f"the preview took longer than {PREVIEW_TIMEOUT_S} s") from None
    if proc.returncode != 0:
        raise PreviewError(last_line(proc.stderr) or f"preview exited with code {proc.returncode}")
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
