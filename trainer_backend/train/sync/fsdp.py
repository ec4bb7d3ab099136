"""`fsdp`: parameters, gradients and optimizer state sharded over the ranks with torch's FSDP2.

Nothing here exchanges gradients by hand: `fully_shard` gathers each decoder layer's weights for
its forward and backward and reduce-scatters its gradients. What this module adds is what keeps
the run equal to one rank on the union of the batches:

- Gradients are SUMMED over ranks, not averaged: every pass is already normalized by the global
  count of trained tokens (see loop.py), so FSDP's default division by the world size is turned
  off (divide factor 1, plain SUM collectives; gloo has no pre-multiplied sum).
- Gradients are reduced once per optimizer step, on the last pass (`set_requires_gradient_sync`).
- Every rank runs the same number of forward passes, because each one gathers weights
  collectively: a rank with fewer passes runs empty ones (`passes_needed`).

Started like `nccl` (our launcher or torchrun): nccl on GPUs, gloo on CPU workers. A world of one
GPU is valid (it proves the sharded path equals the unsharded one on a single GPU).
"""
from __future__ import annotations

import os
import socket

import torch
import torch.distributed as dist

from ...config import ConfigError, SyncConfig
from .nccl import join_process_group

# Modules that become their own FSDP unit: one decoder layer's weights are gathered at a time.
LAYER_CLASS_SUFFIX = "DecoderLayer"


def _free_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return str(s.getsockname()[1])


def decoder_layers(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The transformer blocks of a transformers model (LlamaDecoderLayer, Qwen2DecoderLayer, ...)."""
    return [m for m in model.modules() if type(m).__name__.endswith(LAYER_CLASS_SUFFIX)]


class FsdpSync:
    sharded = True

    def __init__(self, cfg: SyncConfig, rank: int, world_size: int, device: torch.device | str):
        self.rank, self.world_size = rank, world_size
        self.device = torch.device(device)
        self._model: torch.nn.Module | None = None
        if world_size == 1:  # a world of one, started without a launcher
            os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
            os.environ.setdefault("MASTER_PORT", _free_port())
        self._owns_group = join_process_group(cfg, rank, world_size, self.device)
        self._closed = False

    def prepare_model(self, model: torch.nn.Module) -> None:
        """Shard `model` in place: each decoder layer, then the rest (embeddings, norm, head)."""
        from torch.distributed.fsdp import FSDPModule, fully_shard

        layers = decoder_layers(model)
        if not layers:
            raise ConfigError(f"'sync.sharding': fsdp found no decoder layers (*{LAYER_CLASS_SUFFIX}) in "
                             f"{type(model).__name__}; use sync.sharding: none for this model")
        with torch.no_grad():  # identical starting weights (the LoRA init): rank 0's, bit for bit
            for p in model.parameters():
                if p.requires_grad:
                    dist.broadcast(p.data, src=0)
        for layer in layers:
            fully_shard(layer)
        fully_shard(model)
        for module in model.modules():
            if isinstance(module, FSDPModule):
                module.set_gradient_divide_factor(1.0)
                module.set_force_sum_reduction_for_comms(True)
        model.set_requires_gradient_sync(False)
        self._model = model

    def prepare(self, params: list[torch.nn.Parameter]) -> None:
        pass  # the shards are the parameters: nothing to allocate

    def passes_needed(self, n: int) -> int:
        t = torch.tensor([n], dtype=torch.int64, device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return int(t.item())

    def all_reduce_scalars(self, values: torch.Tensor) -> torch.Tensor:
        t = values.detach().to(self.device, torch.float64).clone()
        dist.all_reduce(t)
        return t.to(values.device)

    def before_last_backward(self) -> None:
        self._sharded().set_requires_gradient_sync(True)

    def finish(self) -> dict:
        self._sharded().set_requires_gradient_sync(False)
        return {"sync_ms": 0.0, "bytes": 0}  # the reduce-scatters ran inside backward

    def _sharded(self):
        if self._model is None:
            raise RuntimeError("FsdpSync.prepare_model(model) must be called before the first step")
        return self._model

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._owns_group and dist.is_initialized():
            dist.destroy_process_group()
