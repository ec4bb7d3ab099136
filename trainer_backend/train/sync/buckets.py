"""Bucketing of trainable parameters, shared by the backends.

Buckets follow the reverse parameter order because the backward pass produces the last layers'
gradients first; a bucket can start moving as soon as all of its gradients are accumulated.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Callable

import torch

# Slices of a flat bucket start on 64-byte boundaries so that ranks writing neighbouring slices of
# shared memory never share a cache line.
ALIGN_ELEMS = 16


@dataclass
class Bucket:
    index: int
    params: list[torch.nn.Parameter]
    offsets: list[int] = field(default_factory=list)
    numel: int = 0

    def views(self, flat: torch.Tensor) -> list[torch.Tensor]:
        """Per-parameter views (shaped like the parameters) into a flat buffer of this bucket."""
        return [flat[o:o + p.numel()].view_as(p) for o, p in zip(self.offsets, self.params)]


def plan_buckets(params: list[torch.nn.Parameter], bucket_mb: float) -> list[Bucket]:
    limit = max(1, int(bucket_mb * 2**20 / 4))  # fp32 elements per bucket
    buckets: list[Bucket] = []
    current = Bucket(0, [])
    for p in reversed(params):
        if current.params and current.numel + p.numel() > limit:
            buckets.append(current)
            current = Bucket(len(buckets), [])
        current.params.append(p)
        current.offsets.append(current.numel)
        current.numel += p.numel()
    if current.params:
        buckets.append(current)
    return buckets


def padded(numel: int) -> int:
    return -(-numel // ALIGN_ELEMS) * ALIGN_ELEMS


def slice_bounds(numel: int, world_size: int, rank: int) -> tuple[int, int]:
    """The part of a bucket that `rank` reduces: contiguous, aligned, covering the bucket once."""
    chunk = padded(-(-numel // world_size))
    lo = min(numel, rank * chunk)
    return lo, min(numel, lo + chunk)


def gather_grads(bucket: Bucket, out: torch.Tensor) -> None:
    """Copy the bucket's gradients into a flat buffer (any dtype, any device); missing grads are 0."""
    views = bucket.views(out)
    grads = [p.grad for p in bucket.params]
    present = [(v, g) for v, g in zip(views, grads) if g is not None]
    if present:
        torch._foreach_copy_([v for v, _ in present], [g for _, g in present])
    for v, g in zip(views, grads):
        if g is None:
            v.zero_()


def scatter_grads(bucket: Bucket, flat: torch.Tensor, alias: bool = False) -> None:
    """Write a flat (summed) bucket back into the parameters' gradients.

    With `alias` (a private buffer of the parameters' dtype) the gradients become views into it:
    no copy kernels, which matters with hundreds of small LoRA tensors. That is safe because the
    buffer is rewritten only by the next step's gather, after the optimizer has read it."""
    views = bucket.views(flat)
    if alias and all(p.dtype == flat.dtype for p in bucket.params):
        for p, v in zip(bucket.params, views):
            p.grad = v
        return
    have = [(p.grad, v) for p, v in zip(bucket.params, views) if p.grad is not None]
    if have:
        torch._foreach_copy_([g for g, _ in have], [v for _, v in have])
    for p, v in zip(bucket.params, views):
        if p.grad is None:
            p.grad = v.to(p.dtype, copy=True)


class ReadyTracker:
    """Counts post-accumulate-grad hooks per bucket during the last backward and hands buckets to
    `on_ready` strictly in index order, so every rank starts its exchanges in the same order."""

    def __init__(self, buckets: list[Bucket], on_ready: Callable[[int], None]):
        self._buckets = buckets
        self._on_ready = on_ready
        self._lock = threading.Lock()
        self._armed = False
        self._pending = [0] * len(buckets)
        self._next = 0
        self._handles = []
        owner = {id(p): b.index for b in buckets for p in b.params}
        for b in buckets:
            for p in b.params:
                self._handles.append(p.register_post_accumulate_grad_hook(
                    lambda _p, i=owner[id(p)]: self._grad_ready(i)))

    def arm(self) -> None:
        with self._lock:
            self._armed = True
            self._pending = [len(b.params) for b in self._buckets]
            self._next = 0

    def flush(self) -> None:
        """Hand on every bucket not handed on yet (unused parameters, or no hooks armed)."""
        with self._lock:
            self._armed = False
            self._pending = [0] * len(self._buckets)
            self._advance()
            self._next = 0

    def remove(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()

    def _grad_ready(self, index: int) -> None:
        with self._lock:
            if not self._armed:
                return
            self._pending[index] -= 1
            self._advance()

    def _advance(self) -> None:
        while self._next < len(self._buckets) and self._pending[self._next] <= 0:
            self._on_ready(self._next)
            self._next += 1
