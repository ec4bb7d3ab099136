"""The facts that cross a process boundary, each with one owner: exit codes, event kinds and the
event writer, the files of a job directory, which checkpoints exist, the out-of-memory advice,
the last line of a log, the shared-memory folder of a run, and the one way a small JSON file that
another process polls for is written (whole or not at all).

The train command, its workers, the launcher, the job supervisor, the studio and the test fake
worker all import this module, so it imports no torch and nothing of the project but the messages
(a leaf like this one): any of them can load it in a few milliseconds.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import re
import tempfile
import time
from dataclasses import dataclass
from enum import IntEnum, StrEnum
from pathlib import Path
from typing import Any

from .messages import ENGLISH, Notice, msg


class ExitCode(IntEnum):
    """Exit status of the train command and of each worker."""
    OK = 0
    CRASH = 1          # a bug: the traceback is in the log
    BAD_INPUT = 2      # config or data the user can fix; the last stderr line says how
    OOM = 3
    PEER_FAILED = 4    # a worker that saw another rank fail (the launcher blames that rank)
    DIVERGED = 5       # the loss or the gradients became NaN/inf
    DISK_FULL = 6
    STOPPED = 10       # stopped on request; continue with --resume


class EventKind(StrEnum):
    TRAIN = "train"
    EVAL = "eval"
    EVAL_METRICS = "eval_metrics"   # held-out metrics of the base or the fine-tuned model (trainer_backend.evaluation)
    SAMPLES = "samples"             # answers to the sample prompts at an eval
    STATUS = "status"
    ERROR = "error"


class Status(StrEnum):
    """`status` field of a status event."""
    PREPARING = "preparing"    # before the first step; `stage` says which part
    STARTED = "started"
    CHECKPOINT = "checkpoint"
    STOPPED = "stopped"
    COMPLETED = "completed"
    RETRY = "retry"            # the supervisor restarts the run after an out-of-memory failure


class Stage(StrEnum):
    """What a starting job is doing, in order (`stage` field of a `preparing` status event)."""
    PLANNING = "planning"
    LOADING_DATA = "loading_data"
    RENDERING = "rendering"
    LOADING_MODEL = "loading_model"


class Reason(StrEnum):
    """`reason` field of an error event."""
    OOM = "oom"
    DATA = "data"
    CONFIG = "config"
    CRASH = "crash"
    SYNC = "sync"
    DIVERGED = "diverged"
    DISK_FULL = "disk_full"
    KILLED = "killed"          # a signal from outside the job
    STALLED = "stalled"        # preparation made no progress (the supervisor's watchdog)


EXIT_REASON = {ExitCode.CRASH: Reason.CRASH, ExitCode.BAD_INPUT: Reason.CONFIG, ExitCode.OOM: Reason.OOM,
               ExitCode.PEER_FAILED: Reason.SYNC, ExitCode.DIVERGED: Reason.DIVERGED,
               ExitCode.DISK_FULL: Reason.DISK_FULL}

OOM_LEVERS = ENGLISH["job.oom_levers"]


def oom_message(step: int, micro_batch_size: int | str, max_seq_len: int, method: str) -> Notice:
    return msg("job.oom", step=step, micro_batch_size=micro_batch_size, max_seq_len=max_seq_len, method=method,
               levers=msg("job.oom_levers"))


def disk_full_message(path: str | Path | None, what: Notice) -> Notice:
    """`what` says what was being written: job.while_training, job.while_writing, job.while_checkpoint."""
    return msg("job.disk_full_at", what=what, path=str(path)) if path else msg("job.disk_full", what=what)


# ---- the files of a job directory ------------------------------------------------------------
_STEP_DIR = re.compile(r"step_(\d+)")


@dataclass(frozen=True)
class JobPaths:
    """The layout of one job directory (docs/architecture.md)."""
    dir: Path

    @property
    def config(self) -> Path:
        return self.dir / "config.yaml"

    @property
    def events(self) -> Path:
        return self.dir / "events.jsonl"

    @property
    def train_log(self) -> Path:
        return self.dir / "train.log"

    @property
    def console_log(self) -> Path:
        """stdout and stderr of the train command: tracebacks and the final one-line message land here."""
        return self.dir / "console.log"

    @property
    def supervisor_log(self) -> Path:
        return self.dir / "supervisor.log"

    @property
    def checkpoints(self) -> Path:
        return self.dir / "checkpoints"

    @property
    def workers(self) -> Path:
        return self.dir / "workers"

    @property
    def output(self) -> Path:
        return self.dir / "output"

    def checkpoint(self, step: int) -> Path:
        return self.checkpoints / f"step_{step}"

    def finished_checkpoints(self) -> list[tuple[int, Path]]:
        """(step, folder) of every complete checkpoint, oldest first. A folder being written
        (`step_N.tmp`) or one without its state.json is not a checkpoint."""
        if not self.checkpoints.is_dir():
            return []
        found = []
        for p in self.checkpoints.iterdir():
            m = _STEP_DIR.fullmatch(p.name)
            if m and (p / "state.json").is_file():
                found.append((int(m.group(1)), p))
        return sorted(found)

    def latest_checkpoint(self) -> Path | None:
        done = self.finished_checkpoints()
        return done[-1][1] if done else None


# ---- events.jsonl ----------------------------------------------------------------------------
def _finite(value: Any) -> Any:
    """JSON has no NaN/inf: a diverged value is written as null rather than breaking every reader."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_event(path: Path, kind: EventKind, step: int, **fields: Any) -> dict:
    """Append one event as one line. The line is written with a single call, so a reader polling
    the file sees whole events only."""
    event = {"t": round(time.time(), 3), "kind": str(kind), "step": int(step),
             **{k: _finite(v) for k, v in fields.items()}}
    line = json.dumps(event, allow_nan=False) + "\n"
    with Path(path).open("a", encoding="utf-8") as f:
        f.write(line)
    return event


def write_error(path: Path, step: int, reason: Reason, message: Notice) -> dict:
    """An error event: the English text for logs and older readers, and the notice to translate it."""
    return write_event(path, EventKind.ERROR, step, reason=str(reason), message=str(message), notice=message.to_json())


def write_status(path: Path, step: int, status: Status, message: str | Notice, total_steps: int | None,
                 **fields: Any) -> dict:
    """A status event; a message that is a notice is written with its key and arguments too."""
    if isinstance(message, Notice):
        fields["notice"] = message.to_json()
    return write_event(path, EventKind.STATUS, step, status=str(status), message=str(message),
                       total_steps=int(total_steps or 0), **fields)


def parse_event(raw: bytes | str) -> dict | None:
    """One line of events.jsonl, or None for a line that is not an event (damaged, half written,
    not UTF-8): one bad line never hides the others."""
    if not raw.strip():
        return None
    try:
        event = json.loads(raw)
    except ValueError:  # JSONDecodeError, and UnicodeDecodeError on bytes that are not UTF-8
        return None
    return event if isinstance(event, dict) else None


def read_events(path: Path, kind: EventKind | str | None = None) -> list[dict]:
    """Every event of a file, in order; damaged lines are skipped."""
    path = Path(path)
    if not path.exists():
        return []
    with path.open("rb") as f:
        events = [e for e in map(parse_event, f) if e is not None]
    return [e for e in events if kind is None or e.get("kind") == str(kind)]


# ---- logs --------------------------------------------------------------------------------------
_TAIL_BYTES = 64 * 1024


def last_line(text: str) -> str:
    """The last non-empty line of a process's output: by contract, its one-line message."""
    for line in reversed(text.splitlines()):
        if line.strip():
            return line.strip()
    return ""


def last_log_line(path: Path, start: int = 0) -> str:
    """The last non-empty line written to a log file at or after byte `start`, reading only its end."""
    try:
        with Path(path).open("rb") as f:
            size = f.seek(0, 2)
            f.seek(max(start, size - _TAIL_BYTES))
            return last_line(f.read().decode("utf-8", errors="replace"))
    except OSError:
        return ""


# ---- the shared-memory folder of a multi-worker run ------------------------------------------
def write_json(path: Path, value: Any) -> None:
    """Write `value` to `path` by a rename, so a process polling for the file never reads half of it."""
    staging = path.with_name(f".{path.name}.tmp")
    staging.write_text(json.dumps(value), encoding="utf-8")
    os.replace(staging, path)


def read_json(path: Path) -> Any:
    """The value `write_json` wrote there, or None while there is none (or it is not JSON)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def sync_root() -> Path:
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        return shm
    return Path(tempfile.gettempdir()) / "studio-sync"


def sync_job_id(job_dir: Path) -> str:
    """Name of a run's shared-memory folder: readable, and unique per job directory."""
    path = str(Path(job_dir).resolve())
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", Path(path).name)[:40] or "job"
    return f"studio-{name}-{hashlib.sha1(path.encode()).hexdigest()[:8]}"

# Fields a preference objective adds to its train and eval events (means over the step's units):
# implicit rewards beta·(log π − log π_ref) of chosen and rejected completions (ORPO, SimPO: beta ·
# mean log π), their margin, the fraction of pairs ranked right, ORPO's NLL and odds-ratio parts,
# KTO's KL estimate.
PREFERENCE_METRICS = ("rewards_chosen", "rewards_rejected", "reward_margin", "reward_accuracy",
                      "nll_loss", "log_odds_ratio", "log_odds_chosen", "kl")
