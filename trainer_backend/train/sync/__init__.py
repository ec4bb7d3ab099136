"""Gradient-sync backends behind one interface (docs/architecture.md `GradSync`).

`local` for a single worker, `shm` (shared memory, one machine) and `nccl` (torch.distributed;
gloo under the same name for CPU workers, and multi-node when started by torchrun); `fsdp` when
`sync.sharding` shards the model itself over the ranks (torch FSDP2 over nccl or gloo).
"""
from __future__ import annotations

import torch

from ...config import SyncConfig
from .base import GradSync, SyncError
from .local import LocalSync


def resolve_backend(cfg: SyncConfig) -> str:
    if cfg.sharding == "fsdp":
        return "fsdp"
    if cfg.backend != "auto":
        return cfg.backend
    return "shm" if all(d == "cpu" for d in cfg.devices) else "nccl"


def make_sync(cfg: SyncConfig, rank: int, world_size: int, device: torch.device | str, job_id: str) -> GradSync:
    if cfg.sharding == "fsdp":  # a world of one too: the sharded path on one GPU
        from .fsdp import FsdpSync
        return FsdpSync(cfg, rank, world_size, device)
    if world_size == 1:
        return LocalSync()
    if resolve_backend(cfg) == "shm":
        from .shm import ShmSync
        return ShmSync(cfg, rank, world_size, device, job_id)
    from .nccl import NcclSync
    return NcclSync(cfg, rank, world_size, device)


__all__ = ["GradSync", "SyncError", "make_sync", "resolve_backend"]
