"""What a run needs of its device, decided without torch: the studio checks a run before queuing
it with the same messages the trainer raises when it starts."""
from __future__ import annotations

from .config import ConfigError, RunConfig
from .messages import Notice, joined, msg

CUDA_ONLY_OPTIMIZERS = ("adamw_8bit", "paged_adamw_8bit", "paged_adamw_32bit")   # bitsandbytes

FP16_NEEDS_CUDA = msg("config.fp16_needs_cuda")
QLORA_NEEDS_CUDA = msg("config.qlora_needs_cuda")
UNSLOTH_QLORA_FIXED = msg("config.unsloth_qlora_fixed")


def may_use_unsloth(cfg: RunConfig) -> bool:
    """Whether a run of `cfg` imports unsloth first when CUDA is there (models/engine.preload_engine):
    its patches change transformers, so a process that imported it runs only such runs."""
    return cfg.model.engine != "hf" and "cpu" not in cfg.sync.devices and cfg.sync.sharding != "fsdp"


def unsloth_needs_cuda(device: str) -> Notice:
    return msg("config.unsloth_needs_cuda", device=device)


def optimizer_needs_cuda(optimizer: str) -> Notice:
    return msg("config.optimizer_needs_cuda", optimizer=optimizer)


def cpu_problems(cfg: RunConfig) -> list[Notice]:
    """Every choice of `cfg` that a CPU worker cannot run, one message each."""
    problems = []
    if cfg.model.engine == "unsloth":
        problems.append(unsloth_needs_cuda("cpu"))
    if cfg.train.precision == "fp16":
        problems.append(FP16_NEEDS_CUDA)
    if cfg.method == "qlora":
        problems.append(QLORA_NEEDS_CUDA)
    if cfg.train.optimizer in CUDA_ONLY_OPTIMIZERS:
        problems.append(optimizer_needs_cuda(cfg.train.optimizer))
    return problems


def check_devices(cfg: RunConfig) -> None:
    """Raise the trainer's own ConfigError for a CPU run that asks for a GPU-only feature."""
    if "cpu" in cfg.sync.devices:
        problems = cpu_problems(cfg)
        if problems:
            raise ConfigError(joined(problems))
