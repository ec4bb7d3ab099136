"""What a run needs of its device, decided without torch: the studio checks a run before queuing
it with the same messages the trainer raises when it starts."""
from __future__ import annotations

from .config import ConfigError, RunConfig

CUDA_ONLY_OPTIMIZERS = ("adamw_8bit", "paged_adamw_8bit", "paged_adamw_32bit")   # bitsandbytes

UNSLOTH_NEEDS_CUDA = "'model.engine': unsloth needs a CUDA GPU and this run is on {device}; use engine: hf (or auto)"
FP16_NEEDS_CUDA = "'train.precision': fp16 needs a CUDA GPU; use fp32 or bf16 on CPU"
QLORA_NEEDS_CUDA = ("'method': qlora loads the model in 4-bit with bitsandbytes, which needs a CUDA GPU; "
                    "use method: lora on CPU")
UNSLOTH_QLORA_FIXED = ("'qlora': the unsloth engine loads 4-bit weights as nf4 with double quantization, computing "
                       "in train.precision; keep those qlora settings or use model.engine: hf")
OPTIMIZER_NEEDS_CUDA = "'train.optimizer': {optimizer} (bitsandbytes) needs a CUDA GPU; use optimizer: adamw on CPU"


def cpu_problems(cfg: RunConfig) -> list[str]:
    """Every choice of `cfg` that a CPU worker cannot run, one message each."""
    problems = []
    if cfg.model.engine == "unsloth":
        problems.append(UNSLOTH_NEEDS_CUDA.format(device="cpu"))
    if cfg.train.precision == "fp16":
        problems.append(FP16_NEEDS_CUDA)
    if cfg.method == "qlora":
        problems.append(QLORA_NEEDS_CUDA)
    if cfg.train.optimizer in CUDA_ONLY_OPTIMIZERS:
        problems.append(OPTIMIZER_NEEDS_CUDA.format(optimizer=cfg.train.optimizer))
    return problems


def check_devices(cfg: RunConfig) -> None:
    """Raise the trainer's own ConfigError for a CPU run that asks for a GPU-only feature."""
    if "cpu" in cfg.sync.devices:
        problems = cpu_problems(cfg)
        if problems:
            raise ConfigError("; ".join(problems))
