"""Optimizers and learning-rate schedules named by `train.optimizer` and `train.scheduler`."""
from __future__ import annotations

import math

import torch

from ..config import ConfigError, TrainConfig, flat_8bit_step
from ..device_rules import optimizer_needs_cuda

BNB_OPTIMIZERS = {"adamw_8bit": "AdamW8bit", "paged_adamw_8bit": "PagedAdamW8bit",
                  "paged_adamw_32bit": "PagedAdamW32bit"}


def param_groups(named_params: list[tuple[str, torch.nn.Parameter]], weight_decay: float) -> list[dict]:
    """Decay matrices only: norms and biases (1-D) stay undecayed, as in GPT-2 and the HF Trainer."""
    decay = [p for _, p in named_params if p.ndim >= 2]
    no_decay = [p for _, p in named_params if p.ndim < 2]
    groups = [{"params": decay, "weight_decay": weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return groups


def build_optimizer(named_params: list[tuple[str, torch.nn.Parameter]], tcfg: TrainConfig,
                    device: torch.device) -> torch.optim.Optimizer:
    groups = param_groups(named_params, tcfg.weight_decay)
    if tcfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=tcfg.lr, betas=(0.9, 0.999), eps=1e-8,
                                 fused=device.type == "cuda")
    if device.type != "cuda":
        raise ConfigError(optimizer_needs_cuda(tcfg.optimizer))
    import bitsandbytes as bnb

    cls = getattr(bnb.optim, BNB_OPTIMIZERS[tcfg.optimizer])
    sharded = any(hasattr(p, "to_local") for _, p in named_params)
    if flat_8bit_step(tcfg.optimizer, sum(p.numel() for _, p in named_params)) and not sharded:
        from .flat_optim import flattened   # one update for all tensors, not one each: the same numbers

        cls = flattened(cls)
    return cls(groups, lr=tcfg.lr, betas=(0.9, 0.999), eps=1e-8)


def warmup_steps(tcfg: TrainConfig, total_steps: int) -> int:
    """`warmup_steps` wins when set; otherwise a ratio of the run, rounded up as the HF Trainer does."""
    if tcfg.warmup_steps > 0:
        return tcfg.warmup_steps
    return math.ceil(tcfg.warmup_ratio * total_steps)


def build_scheduler(optimizer: torch.optim.Optimizer, tcfg: TrainConfig,
                    total_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    warmup = warmup_steps(tcfg, total_steps)

    def factor(step: int) -> float:
        if step < warmup:
            return step / max(1, warmup)
        if tcfg.scheduler == "constant":
            return 1.0
        progress = (step - warmup) / max(1, total_steps - warmup)
        if tcfg.scheduler == "linear":
            return max(0.0, 1.0 - progress)
        return max(0.0, 0.5 * (1.0 + math.cos(math.pi * progress)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
