"""What the studio sees of a job."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..messages import Notice

QUEUED, RUNNING, STOPPING, STOPPED, COMPLETED, FAILED = (
    "queued", "running", "stopping", "stopped", "completed", "failed")
ACTIVE_STATES = (RUNNING, STOPPING)
# Kinds of job: a training run, or a chat worker holding a model for the Chat tab.
TRAIN, CHAT = "train", "chat"
FINAL_STATES = (STOPPED, COMPLETED, FAILED)


@dataclass(frozen=True)
class Progress:
    """Latest optimizer step reported in events.jsonl, and the run's total when the trainer announced it."""
    step: int = 0
    total: int | None = None

    @property
    def fraction(self) -> float | None:
        return min(1.0, self.step / self.total) if self.total else None


@dataclass
class JobInfo:
    id: str
    owner: str
    name: str
    state: str
    gpus: list[int]               # physical GPU indices; [] = CPU job
    pids: list[int]               # supervisor and train process of the current attempt; [] when none
    pgid: int | None              # process group of the train command (launcher + workers)
    created: float                # unix seconds
    started: float | None
    ended: float | None
    exit_reason: str | None       # one line: why it failed or stopped
    exit_code: int | None
    retries: int                  # automatic out-of-memory retries done so far
    job_dir: Path
    config_path: Path
    progress: Progress = field(default_factory=Progress)
    last_loss: float | None = None
    kind: str = TRAIN
    exit_notice: Notice | None = None   # exit_reason, to show in the user's language
