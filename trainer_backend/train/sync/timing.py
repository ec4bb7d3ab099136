"""How long the gradient sync holds the training step up, as the device experiences it."""
from __future__ import annotations

import time

import torch


class ExposedTimer:
    """From "the backward pass is done" to "the gradients are summed".

    On CUDA the host runs ahead of the GPU, so host clocks would count backward compute: events on
    the stream measure it. Reading an event pair right away would stall the host until the GPU
    caught up, so `stop_ms` returns the PREVIOUS step's figure (long finished by then; 0 at first)."""

    def __init__(self, device: torch.device):
        self._cuda = device.type == "cuda"
        self._device = device
        self._t0 = 0.0
        if self._cuda:
            self._pairs = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
                           for _ in range(2)]
            self._current = 0
            self._recorded: tuple | None = None

    def start(self) -> None:
        if self._cuda:
            self._pairs[self._current][0].record(torch.cuda.current_stream(self._device))
        else:
            self._t0 = time.perf_counter()

    def stop_ms(self) -> float:
        if not self._cuda:
            return (time.perf_counter() - self._t0) * 1e3
        begin, end = self._pairs[self._current]
        end.record(torch.cuda.current_stream(self._device))
        previous, self._recorded = self._recorded, (begin, end)
        self._current ^= 1
        if previous is None:
            return 0.0
        previous[1].synchronize()
        return previous[0].elapsed_time(previous[1])
