"""The job's event stream: `events.jsonl` (one JSON object a line, read by the studio) and `train.log`.

Each line is written and flushed on its own, so a reader polling the file never sees half a run
and a crash loses nothing already logged.
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any, Literal

Status = Literal["started", "checkpoint", "stopped", "completed", "retry"]
# Fields a preference objective adds to its train and eval events (means over the step's units):
# implicit rewards beta·(log π − log π_ref) of chosen and rejected completions (ORPO, SimPO: beta ·
# mean log π), their margin, the fraction of pairs ranked right, ORPO's NLL and odds-ratio parts,
# KTO's KL estimate.
PREFERENCE_METRICS = ("rewards_chosen", "rewards_rejected", "reward_margin", "reward_accuracy",
                      "nll_loss", "log_odds_ratio", "log_odds_chosen", "kl")
Reason = Literal["oom", "data", "config", "crash", "sync"]


class EventLog:
    """Appends events and log lines to a job directory. Only the primary rank writes train, eval
    and status events (one stream per job); every rank may log and report its own error."""

    def __init__(self, job_dir: str | Path, primary: bool = True, rank: int | None = None):
        self.job_dir = Path(job_dir)
        self.job_dir.mkdir(parents=True, exist_ok=True)
        self.events_path = self.job_dir / "events.jsonl"
        self.log_path = self.job_dir / "train.log"
        self.primary = primary
        self.prefix = f"[rank {rank}] " if rank is not None else ""
        self.tensorboard = None

    def enable_tensorboard(self) -> None:
        """Mirror train and eval scalars to `<job>/tensorboard` (primary rank only)."""
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            from ..config import ConfigError
            raise ConfigError("'train.tensorboard': the tensorboard package is not installed; "
                              "pip install tensorboard, or set train.tensorboard: false") from None
        if self.primary:
            self.tensorboard = SummaryWriter(str(self.job_dir / "tensorboard"))

    def _scalars(self, step: int, prefix: str, values: dict) -> None:
        if self.tensorboard is not None:
            for name, value in values.items():
                if value is not None:
                    self.tensorboard.add_scalar(f"{prefix}/{name}", value, step)
            self.tensorboard.flush()

    def _append(self, path: Path, line: str) -> None:
        with path.open("a", encoding="utf-8") as f:
            f.write(line + "\n")

    def emit(self, kind: str, step: int, **fields: Any) -> dict:
        event = {"t": round(time.time(), 3), "kind": kind, "step": int(step), **fields}
        self._append(self.events_path, json.dumps(event, allow_nan=False, default=_finite))
        return event

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
        return self.emit("train", step, **fields)

    def eval(self, step: int, loss: float, metrics: dict[str, float] | None = None) -> dict | None:
        if not self.primary:
            return None
        extra = _metric_fields(metrics)
        self.log(f"step {step} eval loss {loss:.4f}" + _metric_text(extra))
        self._scalars(step, "eval", {"loss": _finite(loss), **extra})
        return self.emit("eval", step, loss=_finite(loss), **extra)

    def status(self, step: int, status: Status, message: str, total_steps: int) -> dict | None:
        if not self.primary:
            return None
        self.log(f"status {status}: {message}")
        return self.emit("status", step, status=status, message=message, total_steps=int(total_steps))

    def error(self, step: int, reason: Reason, message: str) -> dict:
        self.log(f"error ({reason}): {message}")
        return self.emit("error", step, reason=reason, message=message)


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


def read_events(job_dir: str | Path, kind: str | None = None) -> list[dict]:
    """Events of a job in order; a partially written last line (a writer mid-flush) is skipped."""
    path = Path(job_dir) / "events.jsonl"
    if not path.exists():
        return []
    events = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue
        if kind is None or event.get("kind") == kind:
            events.append(event)
    return events
