"""Turn every planner-owned `auto` into a concrete value before a run starts."""
from __future__ import annotations

from trainer_backend.config import RunConfig
from trainer_backend.planner.plan import DEFAULT_MICRO_BATCH, grad_accum_for, micro_batch_choices, plan


def has_auto(cfg: RunConfig) -> bool:
    """Fields left for the planner (sharding only where there are several GPUs to shard over)."""
    return "auto" in (cfg.method, cfg.train.micro_batch_size, cfg.train.gradient_checkpointing) or \
        (cfg.sync.sharding == "auto" and not single_gpu_or_cpu(cfg))


def single_gpu_or_cpu(cfg: RunConfig) -> bool:
    return len(cfg.sync.devices) == 1 or "cpu" in cfg.sync.devices


def detect_gpu_mem_gib(cfg: RunConfig) -> float | None:
    """Smallest total memory among the config's GPUs; None for CPU runs or when CUDA is absent."""
    gpus = [d for d in cfg.sync.devices if d != "cpu"]
    if not gpus:
        return None
    import torch  # only GPU runs get here; the studio passes its budget explicitly

    if not torch.cuda.is_available():
        return None
    return min(torch.cuda.get_device_properties(d).total_memory for d in gpus) / 1024 ** 3


def without_budget(cfg: RunConfig) -> RunConfig:
    """CPU runs (or an unknown GPU): memory is not the limit, so take plain, safe defaults."""
    out = cfg.model_copy(deep=True)
    if out.sync.sharding == "auto":
        out.sync.sharding = "none"
    if out.method == "auto":
        out.method = "lora"
    if out.train.gradient_checkpointing == "auto":
        out.train.gradient_checkpointing = "off"
    choices = micro_batch_choices(cfg)  # the user's own micro-batch when they gave one
    micro = max([m for m in choices if m <= DEFAULT_MICRO_BATCH] or [min(choices)])
    out.train.micro_batch_size = micro
    out.train.grad_accum = grad_accum_for(cfg, micro)
    return out


def resolve_auto(cfg: RunConfig, gpu_mem_gib: float | None) -> RunConfig:
    """The config the trainer runs: planned for the budget given, else the declared or detected one."""
    budget = gpu_mem_gib or cfg.planner.gpu_mem_gib or detect_gpu_mem_gib(cfg)
    if "cpu" in cfg.sync.devices or budget is None:
        return without_budget(cfg)
    return plan(cfg, budget, cfg.planner.headroom_gib).config


def resolve_sharding(cfg: RunConfig, gpu_mem_gib: float | None = None) -> RunConfig:
    """`sync.sharding` made concrete before the ranks start: it decides which gradient-sync
    backend they open and whether Unsloth is imported. The rest of the plan follows in each rank."""
    if cfg.sync.sharding != "auto":
        return cfg
    sharding = "none" if single_gpu_or_cpu(cfg) else resolve_auto(cfg, gpu_mem_gib).sync.sharding
    return cfg.model_copy(update={"sync": cfg.sync.model_copy(update={"sharding": sharding})})
