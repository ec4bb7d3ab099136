"""`nccl`: torch.distributed all-reduce of bucketed flat gradients (gloo when the workers are CPUs).

Started by our launcher (MASTER_ADDR/MASTER_PORT on localhost) or by torchrun, whose environment
carries the same variables, across machines too. A bucket's all-reduce is launched from the
backward pass as soon as its gradients are ready, in bucket order on every rank.
"""
from __future__ import annotations

from datetime import timedelta

import torch
import torch.distributed as dist

from ...config import SyncConfig
from .base import Unsharded
from .buckets import Bucket, ReadyTracker, gather_grads, plan_buckets, scatter_grads
from .timing import ExposedTimer

# NCCL's own watchdog only catches ranks that stop mid-collective; the launcher catches exits
# within a second. A long limit keeps a slow rank 0 (eval, checkpoint) from failing the others.
MIN_COLLECTIVE_TIMEOUT_S = 600.0


def join_process_group(cfg: SyncConfig, rank: int, world_size: int, device: torch.device) -> bool:
    """Start torch.distributed (nccl on GPUs, gloo on CPUs) from the launcher's or torchrun's
    environment; False when the process already belongs to a group (it then does not own it)."""
    if dist.is_initialized():
        return False
    backend = "nccl" if device.type == "cuda" else "gloo"
    timeout = timedelta(seconds=max(MIN_COLLECTIVE_TIMEOUT_S, cfg.timeout_s))
    extra = {"device_id": device} if device.type == "cuda" else {}
    dist.init_process_group(backend, init_method="env://", rank=rank, world_size=world_size,
                            timeout=timeout, **extra)
    return True


class NcclSync(Unsharded):
    def __init__(self, cfg: SyncConfig, rank: int, world_size: int, device: torch.device | str):
        self.rank, self.world_size = rank, world_size
        self.device = torch.device(device)
        self._cfg = cfg
        self._wire = torch.bfloat16 if cfg.wire_dtype == "bf16" else torch.float32
        self._owns_group = join_process_group(cfg, rank, world_size, self.device)
        self._buckets: list[Bucket] = []
        self._flat: list[torch.Tensor] = []
        self._works: list = []
        self._tracker: ReadyTracker | None = None
        self._timer = ExposedTimer(self.device)
        self._closed = False

    def prepare(self, params: list[torch.nn.Parameter]) -> None:
        self._buckets = plan_buckets(params, self._cfg.bucket_mb)
        self._flat = [torch.empty(b.numel, dtype=self._wire, device=self.device) for b in self._buckets]
        with torch.no_grad():  # identical starting weights: rank 0's, bit for bit
            for p in params:
                dist.broadcast(p.data, src=0)
        self._tracker = ReadyTracker(self._buckets, self._launch)

    def _launch(self, index: int) -> None:
        gather_grads(self._buckets[index], self._flat[index])
        self._works.append(dist.all_reduce(self._flat[index], async_op=True))

    def all_reduce_scalars(self, values: torch.Tensor) -> torch.Tensor:
        t = values.detach().to(self.device, torch.float64).clone()
        dist.all_reduce(t)
        return t.to(values.device)

    def before_last_backward(self) -> None:
        self._prepared().arm()

    def finish(self) -> dict:
        self._timer.start()
        self._prepared().flush()
        for bucket, flat, work in zip(self._buckets, self._flat, self._works):
            work.wait()
            scatter_grads(bucket, flat, alias=True)
        self._works.clear()
        nbytes = sum(f.numel() * f.element_size() for f in self._flat)
        return {"sync_ms": self._timer.stop_ms(), "bytes": nbytes}

    def _prepared(self) -> ReadyTracker:
        if self._tracker is None:
            raise RuntimeError("GradSync.prepare(params) must be called before the first step")
        return self._tracker

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._tracker is not None:
            self._tracker.remove()
        if self._owns_group and dist.is_initialized():
            dist.destroy_process_group()
