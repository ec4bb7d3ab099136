"""Reading a job's files while the trainer writes them: events.jsonl by line number, log tails."""
from __future__ import annotations

import math
from pathlib import Path

from ..contracts import EventKind, parse_event
from .info import Progress

_TAIL_BLOCK = 64 * 1024


def read_events_since(path: Path, since_line: int) -> tuple[list[dict], int]:
    """Events on complete lines from `since_line` on, and the line number to ask for next time.
    A line still being written (no newline yet) is left for the next call."""
    if not path.exists():
        return [], since_line
    events, line_no = [], 0
    with path.open("rb") as f:
        for raw in f:
            if not raw.endswith(b"\n"):
                break
            if line_no >= since_line and (event := parse_event(raw)) is not None:
                events.append(event)  # a damaged line is skipped but still counted: numbering stays stable
            line_no += 1
    return events, max(line_no, since_line)


def count_lines(path: Path) -> int:
    if not path.exists():
        return 0
    with path.open("rb") as f:
        return sum(1 for raw in f if raw.endswith(b"\n"))


def tail_lines(path: Path, n: int) -> list[str]:
    """The last `n` lines of a text file, reading only its end."""
    if n <= 0 or not path.exists():
        return []
    with path.open("rb") as f:
        f.seek(0, 2)
        end = pos = f.tell()
        data = b""
        while pos > 0 and data.count(b"\n") <= n:
            pos = max(0, pos - _TAIL_BLOCK)
            f.seek(pos)
            data = f.read(end - pos)
    lines = data.decode("utf-8", errors="replace").splitlines()
    return lines[-n:]


def progress_of(path: Path) -> tuple[Progress, float | None]:
    """Latest step, announced total and latest train loss, scanning from the end of the file."""
    step, total, loss = 0, None, None
    for event in _events_backwards(path):
        kind, at = event.get("kind"), _int(event.get("step"))
        if kind == EventKind.TRAIN and loss is None:
            loss = event.get("loss") if isinstance(event.get("loss"), (int, float)) else None
            step = max(step, at)
        elif kind == EventKind.STATUS:
            step = max(step, at)
            if total is None and _int(event.get("total_steps")):
                total = _int(event["total_steps"])
        if loss is not None and total is not None:
            break
    return Progress(step=step, total=total), loss


def _events_backwards(path: Path):
    if not path.exists():
        return
    with path.open("rb") as f:
        f.seek(0, 2)
        pos = f.tell()
        rest = b""
        while pos > 0:
            start = max(0, pos - _TAIL_BLOCK)
            f.seek(start)
            chunk = f.read(pos - start) + rest
            pos = start
            lines = chunk.split(b"\n")
            rest = lines.pop(0) if pos > 0 else b""
            for raw in reversed(lines):
                event = parse_event(raw)
                if event is not None:
                    yield event


def _int(value) -> int:
    """A step count from an event; a damaged field counts as 0 rather than failing the reader."""
    return int(value) if isinstance(value, (int, float)) and math.isfinite(value) else 0
