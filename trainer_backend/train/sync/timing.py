"""How long the gradient sync holds the training step up, as the device experiences it."""
from __future__ import annotations

import time

import torch


class ExposedTimer:
    """From "the backward pass is done" to "the gradients are summed". On CUDA the host runs ahead
    of the GPU, so host clocks would count backward compute: events on the stream measure it."""

    def __init__(self, device: torch.device):
        self._cuda = device.type == "cuda"
        self._device = device
        self._t0 = 0.0
        if self._cuda:
            self._begin = torch.cuda.Event(enable_timing=True)
            self._end = torch.cuda.Event(enable_timing=True)

    def start(self) -> None:
        if self._cuda:
            self._begin.record(torch.cuda.current_stream(self._device))
        else:
            self._t0 = time.perf_counter()

    def stop_ms(self) -> float:
        if not self._cuda:
            return (time.perf_counter() - self._t0) * 1e3
        self._end.record(torch.cuda.current_stream(self._device))
        self._end.synchronize()
        return self._begin.elapsed_time(self._end)
