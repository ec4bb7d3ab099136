"""Two clocks of the job supervisor, both read from the job's own evidence: how long a stop request
may take (the grace period plus the step and checkpoint times the trainer measured), and whether
a starting job still makes progress (events, CPU time or disk traffic of its process group)."""
from __future__ import annotations

import time
from pathlib import Path

import psutil

from ..contracts import EventKind, Stage, Status, read_events
from ..messages import Notice, msg
from .eventfile import read_events_since
from .processes import group_members

# A process group using less CPU than this share of the wall clock is waiting, not working.
_IDLE_CPU_SHARE = 0.02


def stop_grace(grace_s: float, events_path: Path) -> float:
    """`grace_s` plus the last measured step time and the longest measured checkpoint time: a stop
    lets the trainer finish the step it is in and checkpoint, however slow the machine."""
    events = read_events(events_path)
    marks = [(e["step"], e["t"]) for e in events if _number(e.get("t")) and _number(e.get("step")) is not None
             and (e.get("kind") == EventKind.TRAIN or e.get("status") == Status.STARTED)]
    step_s = 0.0
    if len(marks) >= 2 and marks[-1][0] > marks[-2][0]:
        step_s = (marks[-1][1] - marks[-2][1]) / (marks[-1][0] - marks[-2][0])
    checkpoint_s = max((e["seconds"] for e in events if e.get("kind") == EventKind.STATUS
                        and _number(e.get("seconds"))), default=0.0)
    return grace_s + max(step_s, 0.0) + checkpoint_s


def _number(value) -> float | None:
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


class StallWatch:
    """Fails a starting job whose preparation makes no progress for `stall_s` seconds: no new
    event, no CPU time and no disk traffic in its process group (a hung read or a worker that
    never answers). Once the trainer announces its first step, the watch ends: from there the
    gradient sync's own timeout and the stop grace period apply."""

    def __init__(self, events_path: Path, pgid: int, since: float, stall_s: float):
        self.events_path, self.pgid, self.since, self.stall_s = events_path, pgid, since, stall_s
        self.check_s = min(5.0, stall_s / 2)
        self.next_line = 0
        self.training = False
        self.stage = msg("job.starting")
        self._usage = self._group_usage()
        self._checked = self._progressed = time.monotonic()

    def stalled(self) -> bool:
        now = time.monotonic()
        if self.training or now - self._checked < self.check_s:
            return False
        usage = self._group_usage()
        events, self.next_line = read_events_since(self.events_path, self.next_line)
        for e in events:
            if e.get("status") == Status.PREPARING:
                if e.get("stage") in {s.value for s in Stage}:
                    self.stage = msg(f"stage.{e['stage']}")
            self.training = self.training or e.get("status") == Status.STARTED or e.get("kind") == EventKind.TRAIN
        cpu_busy = usage[0] - self._usage[0] > _IDLE_CPU_SHARE * (now - self._checked)
        if events or cpu_busy or usage[1] != self._usage[1]:
            self._progressed = now
        self._usage, self._checked = usage, now
        return not self.training and now - self._progressed > self.stall_s

    def message(self) -> Notice:
        return msg("job.stalled", seconds=f"{self.stall_s:g}", stage=self.stage)

    def _group_usage(self) -> tuple[float, int]:
        """(CPU seconds, bytes read and written) of the live members of the group."""
        cpu, io = 0.0, 0
        for pid in group_members(self.pgid, self.since):
            try:
                proc = psutil.Process(pid)
                times = proc.cpu_times()
                cpu += times.user + times.system
                counters = proc.io_counters()
                io += counters.read_bytes + counters.write_bytes + counters.read_chars
            except (psutil.Error, AttributeError):
                continue
        return cpu, io
