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
from trainer_backend.messages import Notice, msg

PREVIEW_TIMEOUT_S = 600


class PreviewError(RuntimeError):
    """A user-fixable problem reported by the preview process (one line), with its notice."""

    def __init__(self, notice: Notice):
        super().__init__(str(notice))
        self.notice = notice


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


Runs = tuple[tuple[str, bool], ...]     # (text, trained) runs of tokens


def _message(raw: Any) -> Notice:
    """A message of the preview's output; a text of an older preview process passes through as it is."""
    return Notice.from_json(raw) or msg("detail", detail=str(raw))


def _runs(raw: list | None) -> Runs:
    return tuple((text, bool(trained)) for text, trained in raw or ())


@dataclass(frozen=True)
class RowIssue:
    row: int
    field: str
    message: Notice


@dataclass(frozen=True)
class BuildCounts:
    """The build report of the whole dataset (templates.BuildReport): `dropped` is (reason key, rows)."""
    rows_in: int
    kept: int
    truncated: int
    cut_tokens: int
    split: int
    dropped: tuple[tuple[str, int], ...]
    issues: tuple[RowIssue, ...]

    def dropped_rows(self, reasons: tuple[str, ...]) -> list[int]:
        """The rows (among the first issues) dropped for one of `reasons`."""
        return [i.row for i in self.issues if i.message.params.get("reason") in {msg(r) for r in reasons}]


@dataclass(frozen=True)
class PreviewRow:
    """One shown row: its tokens as they train, or its error."""
    row: int
    error: Notice | None = None
    runs: Runs = ()
    n_tokens: int = 0
    n_trained: int = 0
    truncated: bool = False
    dropped: str | None = None               # the reason key when the length policy drops it
    rejected_runs: Runs | None = None        # a preference pair's rejected sequence
    desirable: bool | None = None            # a KTO row's label


@dataclass(frozen=True)
class PreviewReport:
    """What the preview process reports (trainer_backend.serve.preview), typed for the tabs."""
    model: str
    template: str
    format: str
    stand_in: str | None
    rows: int
    valid_rows: int
    max_seq_len: int
    counts: BuildCounts
    lengths: tuple[int, ...]
    trained_tokens: int
    eot_trained_rows: int
    unlike_inference_rows: int
    examples: tuple[PreviewRow, ...]

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> "PreviewReport":
        rep = raw["report"]
        counts = BuildCounts(rep["rows_in"], rep["kept"], rep["truncated"], rep["cut_tokens"], rep["split"],
                             tuple(sorted(rep["dropped"].items())),
                             tuple(RowIssue(i["row"], i["field"], _message(i["message"])) for i in rep["issues"]))
        examples = tuple(PreviewRow(
            row=e["row"], error=_message(e["error"]) if e.get("error") else None, runs=_runs(e.get("runs")),
            n_tokens=e.get("n_tokens", 0), n_trained=e.get("n_trained", 0), truncated=bool(e.get("truncated")),
            dropped=e.get("dropped"), rejected_runs=_runs(e["rejected_runs"]) if "rejected_runs" in e else None,
            desirable=e.get("desirable")) for e in raw["examples"])
        return cls(raw["model"], raw["template"], raw["format"], raw.get("stand_in"), raw["rows"], raw["valid_rows"],
                   raw["max_seq_len"], counts, tuple(raw["lengths"]), raw["trained_tokens"], raw["eot_trained_rows"],
                   raw.get("unlike_inference_rows", 0), examples)


def run_preview(request: PreviewRequest, python: str) -> PreviewReport:
    """Runs in the studio's working directory, where relative data and model paths resolve."""
    try:
        proc = subprocess.run(request.argv(python), capture_output=True, text=True,
                              timeout=PREVIEW_TIMEOUT_S, env=_quiet_env())
    except subprocess.TimeoutExpired:
        raise PreviewTimeout(msg("preview.timeout", seconds=PREVIEW_TIMEOUT_S)) from None
    if proc.returncode != 0:
        raise PreviewError(_failure(proc))
    return PreviewReport.from_json(json.loads(proc.stdout))


def _failure(proc: subprocess.CompletedProcess) -> Notice:
    """The notice the preview process printed, else its last stderr line (a crash)."""
    try:
        notice = Notice.from_json(json.loads(proc.stdout).get("error"))
    except (ValueError, AttributeError):
        notice = None
    return notice or msg("detail", detail=last_line(proc.stderr) or f"preview exited with code {proc.returncode}")


def _quiet_env() -> dict[str, str]:
    import os
    return {**os.environ, "TOKENIZERS_PARALLELISM": "false", "TRANSFORMERS_VERBOSITY": "error"}


def runs_html(runs: Runs) -> str:
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
