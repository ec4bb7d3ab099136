"""`shm`: gradient sync between the ranks of one machine through memory-mapped files."""
from __future__ import annotations

import atexit
import zlib

import numpy as np
import torch

from ...config import SyncConfig
from .base import SyncError, Unsharded
from .buckets import plan_buckets
from .shm_control import FINGERPRINT, MAX_SCALARS, SCALARS, Control
from .shm_exchange import BucketExchange
from .shm_files import MARKER, SharedFile, job_folder, release
from .timing import ExposedTimer


class ShmSync(Unsharded):
    def __init__(self, cfg: SyncConfig, rank: int, world_size: int, device: torch.device | str, job_id: str):
        self.rank, self.world_size = rank, world_size
        self.device = torch.device(device)
        self.folder = job_folder(job_id)
        if not (self.folder / MARKER).exists():
            raise SyncError(f"shared-memory folder {self.folder} is missing: start the ranks through the launcher")
        self._cfg = cfg
        self._wire = torch.bfloat16 if cfg.wire_dtype == "bf16" else torch.float32
        self._control = Control(self.folder, rank, world_size, self.device, cfg.timeout_s)
        self._exchange: BucketExchange | None = None
        self._scalar_rounds = 0
        self._barriers = 0
        self._timer = ExposedTimer(self.device)
        self._closed = False
        atexit.register(self.close)
        self._control.wait_started()

    def prepare(self, params: list[torch.nn.Parameter]) -> None:
        buckets = plan_buckets(params, self._cfg.bucket_mb)
        layout = repr([(tuple(p.shape), str(p.dtype)) for p in params]).encode()
        self._control.rows[self.rank, FINGERPRINT] = zlib.crc32(layout)
        self._barrier()
        if len(set(self._control.rows[:, FINGERPRINT].tolist())) != 1:
            raise SyncError("ranks disagree on the trainable parameters (different model or LoRA settings)")
        self._broadcast_from_rank0(params)
        self._exchange = BucketExchange(buckets, self._control, self.folder, self.device, self._wire)

    def _barrier(self) -> None:
        self._barriers += 1
        self._control.barrier(self._barriers)

    def _broadcast_from_rank0(self, params: list[torch.nn.Parameter]) -> None:
        """Data parallelism needs identical starting weights; copy rank 0's bit for bit, once."""
        sizes = [p.numel() * p.element_size() for p in params]
        init = SharedFile(self.folder / "init", max(1, sum(sizes)))
        offset = 0
        views = []
        for p, size in zip(params, sizes):
            views.append(init.tensor(p.dtype, offset, p.numel()).view_as(p))
            offset += size
        with torch.no_grad():
            if self.rank == 0:
                for p, v in zip(params, views):
                    v.copy_(p)
            self._barrier()
            if self.rank != 0:
                for p, v in zip(params, views):
                    p.copy_(v)
        self._barrier()
        if self.rank == 0:
            init.path.unlink(missing_ok=True)

    def all_reduce_scalars(self, values: torch.Tensor) -> torch.Tensor:
        flat = values.detach().to("cpu", torch.float64).reshape(-1)
        if flat.numel() > MAX_SCALARS:
            raise ValueError(f"all_reduce_scalars takes at most {MAX_SCALARS} values, got {flat.numel()}")
        n, bank = flat.numel(), self._scalar_rounds % 2  # two banks: a peer may still read the last round
        self._control.scalars[bank, self.rank, :n] = flat.numpy()
        self._scalar_rounds += 1
        self._control.arrive(SCALARS, self._scalar_rounds)
        self._control.wait_all(SCALARS, self._scalar_rounds)
        total = np.zeros(n, dtype=np.float64)
        for r in range(self.world_size):  # rank order: every rank gets the same bits
            total += self._control.scalars[bank, r, :n]
        return torch.from_numpy(total).reshape(values.shape).to(values.device)

    def before_last_backward(self) -> None:
        self._prepared().tracker.arm()

    def finish(self) -> dict:
        exchange = self._prepared()
        self._timer.start()
        exchange.wait()
        return {"sync_ms": self._timer.stop_ms(), "bytes": exchange.bytes_per_step}

    def _prepared(self) -> BucketExchange:
        if self._exchange is None:
            raise RuntimeError("GradSync.prepare(params) must be called before the first step")
        return self._exchange

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._exchange is not None:
            self._exchange.close()
        self._control.close()
        release(self.folder)
        atexit.unregister(self.close)
