"""Where the time of a few training steps goes: torch's profiler over steps `first` to `last`.

    profile = StepProfile(Path("out/profile-ours.md"), first=4, last=6)
    ...                      # call profile.step_end() after every optimizer step
    # after step `last` the file holds: wall time per step, GPU busy time per step, and the top
    # kernels and CPU operators by their own time

GPU busy < wall means the device waited on the host (Python, launches, synchronizations).
"""
from __future__ import annotations

import time
from pathlib import Path

import torch


class StepProfile:
    def __init__(self, out: Path, first: int, last: int):
        self.out, self.first, self.last, self.steps = out, first, last, 0
        self.profiler = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU,
                                                           torch.profiler.ProfilerActivity.CUDA])
        self.started = 0.0

    def step_end(self) -> None:
        self.steps += 1
        if self.steps == self.first - 1:
            torch.cuda.synchronize()
            self.profiler.start()
            self.started = time.perf_counter()
        elif self.steps == self.last:
            torch.cuda.synchronize()
            wall = time.perf_counter() - self.started
            self.profiler.stop()
            try:
                text = self.report(wall, self.last - self.first + 1)
            except Exception as e:   # a profiler API change must not cost the run its timing
                text = f"no profile: {type(e).__name__}: {e}\n"
            self.out.write_text(text)

    def report(self, wall: float, n: int) -> str:
        events = self.profiler.key_averages()
        device_us = sum(e.self_device_time_total for e in events if e.device_type == torch.autograd.DeviceType.CUDA)
        return (f"steps {self.first}-{self.last}: wall {1e3 * wall / n:.1f} ms a step, "
                f"GPU busy {device_us / 1e3 / n:.1f} ms a step (kernels' own time)\n\n"
                + events.table(sort_by="self_device_time_total", row_limit=30) + "\n\n"
                + events.table(sort_by="self_cpu_time_total", row_limit=60) + "\n")
