"""What is alive at a run's peak of CUDA memory: a replay of torch's allocator trace.

    from memory_peak import start, report
    start()            # where the peak counter is reset
    ...                # the run
    print(report())    # the peak, and the tensors alive at it, grouped by the Python code that made them

torch records every allocation and free with its Python stack (`_record_memory_history`). The replay
walks them in order, keeps the live set, and at the highest total lists what the live set holds. Memory
allocated before `start()` (the weights) is one line of its own. Allocations made by the autograd
engine's thread have no Python frames: they are grouped as "backward (no Python frames)" by size.
"""
from __future__ import annotations

from collections import defaultdict

import torch

_state: dict = {}
SKIP = ("/torch/", "<frozen", "/contextlib.py", "/functools.py")


def start(max_entries: int = 2_000_000) -> None:
    torch.cuda.synchronize()
    _state["before"] = torch.cuda.memory_allocated()
    torch.cuda.memory._record_memory_history(enabled="all", context="all", stacks="python", max_entries=max_entries)


def _where(frames: list[dict], depth: int = 3) -> str:
    """The innermost `depth` frames outside torch, as file:line function, innermost first."""
    ours = [f for f in frames if not any(s in f["filename"] for s in SKIP)]
    if not ours:
        return "backward (no Python frames)" if not frames else "torch: " + frames[0]["name"]
    return " < ".join(f"{f['filename'].rsplit('/', 2)[-1]}:{f['line']} {f['name']}" for f in ours[:depth])


def report(top: int = 25) -> str:
    torch.cuda.synchronize()
    trace = torch.cuda.memory._snapshot()["device_traces"][torch.cuda.current_device()]
    torch.cuda.memory._record_memory_history(enabled=None)
    live: dict[int, tuple[int, list]] = {}
    total = peak = peak_at = 0
    unknown_frees = 0
    for i, e in enumerate(trace):
        if e["action"] == "alloc":
            live[e["addr"]] = (e["size"], e.get("frames", []))
            total += e["size"]
        elif e["action"] == "free_completed":
            total -= e["size"]
            if live.pop(e["addr"], None) is None:
                unknown_frees += 1     # made before start(): its size was in `before`
        if total > peak:
            peak, peak_at = total, i
    live = {}
    for e in trace[:peak_at + 1]:       # the live set at the peak
        if e["action"] == "alloc":
            live[e["addr"]] = (e["size"], e.get("frames", []))
        elif e["action"] == "free_completed":
            live.pop(e["addr"], None)
    groups: dict[str, list[int]] = defaultdict(list)
    for size, frames in live.values():
        key = _where(frames)
        if key.startswith("backward"):
            key += f", {size / 2 ** 20:.1f} MiB each"
        groups[key].append(size)
    gib = 2 ** 30
    lines = [f"before start(): {_state['before'] / gib:.3f} GiB; traced peak above it: {peak / gib:.3f} GiB "
             f"(entry {peak_at} of {len(trace)}); sum {(_state['before'] + peak) / gib:.3f} GiB; "
             f"max_memory_allocated {torch.cuda.max_memory_allocated() / gib:.3f} GiB; "
             f"frees of earlier tensors {unknown_frees}",
             "| MiB | tensors | made at (innermost first) |", "|---|---|---|"]
    for key, sizes in sorted(groups.items(), key=lambda kv: -sum(kv[1]))[:top]:
        lines.append(f"| {sum(sizes) / 2 ** 20:.1f} | {len(sizes)} | {key} |")
    return "\n".join(lines) + "\n"
