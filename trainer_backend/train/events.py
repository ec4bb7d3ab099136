"""The job's event stream: `events.jsonl` (one JSON object a line, read by the studio) and `train.log`.

Each line is written and flushed on its own, so a reader polling the file never sees half a run
and a crash loses nothing already logged.
"""
from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

from .. import contracts
from ..contracts import PREFERENCE_METRICS, EventKind, JobPaths, Reason, Stage, Status
from ..messages import Notice


class EventLog:
    """Appends events and log lines to a job directory. Only the primary rank writes train, eval
    and status events (one stream per job); every rank may log and report its own error."""

    def __init__(self, job_dir: str | Path, primary: bool = True, rank: int | None = None):
        self.job_dir = Path(job_dir)
        self.job_dir.mkdir(parents=True, exist_ok=True)
        self.events_path = JobPaths(self.job_dir).events
        self.log_path = JobPaths(self.job_dir).train_log
        self.primary = primary
        self.prefix = f"[rank {rank}] " if rank is not None else ""
        self.mirrors: list = []

    def mirror_to(self, mirrors: list) -> None:
        """Repeat train and eval scalars to these (TensorBoard, W&B: see mirrors.py)."""
        self.mirrors = mirrors

    def _scalars(self, step: int, prefix: str, values: dict) -> None:
        named = {f"{prefix}/{name}": value for name, value in values.items() if value is not None}
        for mirror in self.mirrors:
            mirror.scalars(step, named)

    def close(self) -> None:
        for mirror in self.mirrors:
            mirror.close()
        self.mirrors = []

    def _append(self, path: Path, line: str) -> None:
        with path.open("a", encoding="utf-8") as f:
            f.write(line + "\n")

    def emit(self, kind: EventKind, step: int, **fields: Any) -> dict:
        return contracts.write_event(self.events_path, kind, step, **fields)

    def log(self, message: str) -> None:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        self._append(self.log_path, f"{stamp} {self.prefix}{message}")

    def train(self, step: int, *, loss: float, lr: float, grad_norm: float, tokens_per_s: float,
              epoch: float, eta_s: float, gpu_mem_gib: list[float],
              metrics: dict[str, float] | None = None) -> dict | None:
        """`metrics`: PREFERENCE_METRICS of a preference objective."""
        if not self.primary:
            return None
        extra = _metric_fields(metrics)
        fields = dict(loss=_finite(loss), lr=lr, grad_norm=_finite(grad_norm),
                      tokens_per_s=round(tokens_per_s, 1), epoch=round(epoch, 4), eta_s=round(eta_s, 1),
                      gpu_mem_gib=[round(m, 3) for m in gpu_mem_gib], **extra)
        self.log(f"step {step} loss {loss:.4f} lr {lr:.3g} grad_norm {grad_norm:.3f} "
                 f"tokens/s {tokens_per_s:.0f} epoch {epoch:.2f}" + _metric_text(extra))
        self._scalars(step, "train", {k: fields[k] for k in ("loss", "lr", "grad_norm", "tokens_per_s", *extra)})
        return self.emit(EventKind.TRAIN, step, **fields)

    def eval(self, step: int, loss: float, metrics: dict[str, float] | None = None) -> dict | None:
        if not self.primary:
            return None
        extra = _metric_fields(metrics)
        self.log(f"step {step} eval loss {loss:.4f}" + _metric_text(extra))
        self._scalars(step, "eval", {"loss": _finite(loss), **extra})
        return self.emit(EventKind.EVAL, step, loss=_finite(loss), **extra)

    def eval_metrics(self, step: int, model: str, metrics: dict[str, float | None], rows: int) -> dict | None:
        """Held-out metrics of `model` (base | fine-tuned) at `step` (see trainer_backend.evaluation)."""
        if not self.primary:
            return None
        values = {k: None if v is None else _finite(v) for k, v in metrics.items()}
        shown = ", ".join(f"{k} {v:.4g}" if v is not None else f"{k} –" for k, v in values.items())
        self.log(f"step {step} {model} metrics on {rows} held-out rows: {shown}")
        self._scalars(step, f"eval_{model}", values)
        return self.emit(EventKind.EVAL_METRICS, step, model=model, metrics=values, rows=int(rows))

    def samples(self, step: int, model: str, samples: list[dict]) -> dict | None:
        """Answers to the sample prompts: [{row, prompt, reference, answer}, ...]."""
        if not self.primary:
            return None
        return self.emit(EventKind.SAMPLES, step, model=model, samples=samples)

    def status(self, step: int, status: Status, message: str | Notice, total_steps: int, **fields: Any) -> dict | None:
        if not self.primary:
            return None
        self.log(f"status {status}: {message}")
        return contracts.write_status(self.events_path, step, status, message, total_steps, **fields)

    def stage(self, stage: Stage, message: Notice) -> dict | None:
        """What a starting job is doing now (the Monitor shows it until the first step)."""
        return self.status(0, Status.PREPARING, message, 0, stage=str(stage))

    def error(self, step: int, reason: Reason, message: Notice) -> dict:
        self.log(f"error ({reason}): {message}")
        return contracts.write_error(self.events_path, step, reason, message)


def _metric_fields(metrics: dict[str, float] | None) -> dict[str, float | None]:
    unknown = set(metrics or ()) - set(PREFERENCE_METRICS)
    if unknown:
        raise ValueError(f"not event metrics: {sorted(unknown)}")   # a new field is declared above first
    return {k: _finite(v) for k, v in (metrics or {}).items()}


def _metric_text(metrics: dict[str, float | None]) -> str:
    return "".join(f" {k} {v:.4f}" for k, v in metrics.items() if v is not None)


def _finite(value: Any) -> Any:
    """JSON has no NaN/inf: a diverged loss is written as null rather than breaking every reader."""
    value = float(value)
    return value if math.isfinite(value) else None


def read_events(job_dir: str | Path, kind: EventKind | str | None = None) -> list[dict]:
    """Events of a job in order; damaged or half-written lines are skipped."""
    return contracts.read_events(JobPaths(Path(job_dir)).events, kind)
