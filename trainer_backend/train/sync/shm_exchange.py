"""Moving gradient buckets through shared memory: reduce-scatter, then all-gather.

Per bucket the data file holds one input slot per rank and one output buffer. A rank writes its
gradients into its slot, waits for all slots (barrier A), sums ITS OWN slice of the bucket over
all slots into the output (every rank in parallel, in rank order so the sum is deterministic),
waits for all slices (barrier B), then reads the whole output back. Buffers are reused every step:
a slot is rewritten only after barrier B of the previous step, when nobody reads it any more.

A background thread runs the buckets in index order while the backward pass is still producing
later gradients. On CUDA the whole data file is page-locked (cudaHostRegister), so the copies
from and to the GPU go straight into shared memory on side streams, with no staging copy.
"""
from __future__ import annotations

import queue
import threading
from pathlib import Path

import torch

from .base import SyncError
from .buckets import Bucket, ReadyTracker, gather_grads, padded, scatter_grads, slice_bounds
from .shm_control import FIRST_BUCKET, MAX_BUCKETS, Control
from .shm_files import SharedFile


class BucketExchange:
    def __init__(self, buckets: list[Bucket], control: Control, folder: Path, device: torch.device,
                 wire: torch.dtype):
        if len(buckets) > MAX_BUCKETS:
            raise SyncError(f"{len(buckets)} gradient buckets exceed the limit of {MAX_BUCKETS}: raise sync.bucket_mb")
        self.buckets, self.control, self.device, self.wire = buckets, control, device, wire
        rank, world = control.rank, control.world_size
        size = torch.tensor([], dtype=wire).element_size()
        self.bytes_per_step = sum(b.numel for b in buckets) * size
        self._file = SharedFile(folder / "grads", sum((world + 1) * padded(b.numel) for b in buckets) * size)
        self._slots: list[list[torch.Tensor]] = []
        self._out: list[torch.Tensor] = []
        offset = 0
        for b in buckets:
            stride = padded(b.numel) * size
            self._slots.append([self._file.tensor(wire, offset + q * stride, b.numel) for q in range(world)])
            self._out.append(self._file.tensor(wire, offset + world * stride, b.numel))
            offset += (world + 1) * stride
        self._slices = [slice(*slice_bounds(b.numel, world, rank)) for b in buckets]
        self._acc = None if wire == torch.float32 else torch.empty(
            max(s.stop - s.start for s in self._slices), dtype=torch.float32)
        self._cuda = device.type == "cuda"
        if self._cuda:
            self._pinned = _register(self._file)
            self._flat = [torch.empty(b.numel, dtype=wire, device=device) for b in buckets]
            self._d2h = torch.cuda.Stream(device)
            self._h2d = torch.cuda.Stream(device)
        self._round = 0
        self._done = 0
        self._all_done = threading.Event()
        self._error: BaseException | None = None
        self._cancel = threading.Event()
        self._queue: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._run, name=f"sync-exchange-{rank}", daemon=True)
        self._thread.start()
        self.tracker = ReadyTracker(buckets, self._bucket_ready)

    def _bucket_ready(self, index: int) -> None:
        """Called in bucket order, from the backward pass (hooks) or from finish()."""
        event = None
        if self._cuda:
            self._d2h.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(self._d2h):
                gather_grads(self.buckets[index], self._flat[index])
                self._slots[index][self.control.rank].copy_(self._flat[index], non_blocking=True)
                event = torch.cuda.Event()
                event.record()
        self._queue.put((index, event))

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            try:
                self._exchange(*item)
            except BaseException as err:  # handed to the training thread by wait()
                self._error = err
                self._all_done.set()
                return
            self._done += 1
            if self._done == len(self.buckets):
                self._all_done.set()

    def _exchange(self, index: int, copied: torch.cuda.Event | None) -> None:
        bucket, slots, out, part = self.buckets[index], self._slots[index], self._out[index], self._slices[index]
        if copied is not None:
            copied.synchronize()
        else:
            gather_grads(bucket, slots[self.control.rank])
        counter, base = FIRST_BUCKET + index, 2 * self._round
        self.control.arrive(counter, base + 1)
        self.control.wait_all(counter, base + 1, self._cancel)
        self._reduce([s[part] for s in slots], out[part])
        self.control.arrive(counter, base + 2)
        self.control.wait_all(counter, base + 2, self._cancel)
        if self._cuda:
            with torch.cuda.stream(self._h2d):
                self._flat[index].copy_(out, non_blocking=True)
                scatter_grads(bucket, self._flat[index], alias=True)
        else:
            scatter_grads(bucket, out)

    def _reduce(self, parts: list[torch.Tensor], out: torch.Tensor) -> None:
        if self._acc is None:
            torch.add(parts[0], parts[1], out=out)
            for p in parts[2:]:
                out.add_(p)
            return
        acc = self._acc[:out.numel()]
        acc.copy_(parts[0])
        for p in parts[1:]:
            acc.add_(p)
        out.copy_(acc)

    def wait(self) -> None:
        """Block until every bucket of this step is summed into the gradients."""
        self.tracker.flush()
        self._all_done.wait()
        if self._error is not None:
            raise self._error
        self._all_done.clear()
        self._done = 0
        self._round += 1
        if self._cuda:
            torch.cuda.current_stream(self.device).wait_stream(self._h2d)

    def close(self) -> None:
        self.tracker.remove()
        self._cancel.set()
        self._queue.put(None)
        self._thread.join(timeout=5)
        if self._cuda:
            torch.cuda.synchronize(self.device)
            if self._pinned:
                torch.cuda.cudart().cudaHostUnregister(self._file.data_ptr())


def _register(file: SharedFile) -> bool:
    """Page-lock the shared buffers so GPU copies are asynchronous DMA; unpinned still works, slower."""
    return int(torch.cuda.cudart().cudaHostRegister(file.data_ptr(), file.nbytes, 0)) == 0
