"""Engine and precision choice. `unsloth` is imported only here, only when chosen, and before
anything imports transformers: importing it patches transformers' modeling code."""
from __future__ import annotations

import torch

from ..config import ConfigError, RunConfig
from ..device_rules import FP16_NEEDS_CUDA, QLORA_NEEDS_CUDA, UNSLOTH_QLORA_FIXED, may_use_unsloth, unsloth_needs_cuda

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


def resolve_device(device: str | int | torch.device) -> torch.device:
    """`cpu`, a GPU index (0, "1") or a torch device; a GPU that is not there is a config error."""
    if isinstance(device, int) or (isinstance(device, str) and device.isdigit()):
        device = torch.device("cuda", int(device))
    device = torch.device(device)
    if device.type == "cuda" and (not torch.cuda.is_available() or (device.index or 0) >= torch.cuda.device_count()):
        raise ConfigError(f"'sync.devices': GPU {device.index or 0} is not available on this machine "
                          f"({torch.cuda.device_count()} CUDA GPUs found); use sync.devices=[cpu]")
    return device


def choose_engine(requested: str, device: torch.device, sharded: bool = False) -> str:
    if requested == "auto":
        return "unsloth" if device.type == "cuda" and not sharded else "hf"
    if requested == "unsloth" and device.type != "cuda":
        raise ConfigError(unsloth_needs_cuda(device.type))
    return requested


def choose_precision(requested: str, device: torch.device) -> str:
    if device.type != "cuda":
        if requested == "fp16":
            raise ConfigError(FP16_NEEDS_CUDA)
        return "fp32" if requested == "auto" else requested
    if requested == "auto":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return requested


def check_method(cfg: RunConfig, device: torch.device) -> None:
    if cfg.method == "qlora" and device.type != "cuda":
        raise ConfigError(QLORA_NEEDS_CUDA)
    if cfg.method == "qlora" and cfg.model.engine == "unsloth" and not unsloth_quantizes_like(cfg):
        raise ConfigError(UNSLOTH_QLORA_FIXED)
    if cfg.method == "full" and cfg.train.precision == "fp16":
        raise ConfigError("'train.precision': fp16 full fine-tuning would update fp16 weights with "
                          "scaled gradients; use bf16 or fp32 with method: full")


def choose_attention(requested: str, engine: str, device: torch.device) -> str:
    """The packed-row kernel: flash-attn varlen where it is installed (a GPU), else FlexAttention.
    Unsloth runs its own kernels for anything but flex and flash-attn, so sdpa/eager are hf-only."""
    if requested == "auto":
        from .attention import flash_varlen_available

        return "flash_attention_2" if device.type == "cuda" and flash_varlen_available() else "flex"
    if engine == "unsloth" and requested in ("sdpa", "eager"):
        raise ConfigError(f"'model.attn_implementation': {requested} is a kernel of the hf engine; "
                          "with engine unsloth use flex, flash_attention_2 or auto")
    return requested


def unsloth_quantizes_like(cfg: RunConfig) -> bool:
    """Unsloth's 4-bit loading is fixed: nf4, double quantization, computing in the training dtype."""
    q = cfg.qlora
    return q.quant_type == "nf4" and q.double_quant and q.compute_dtype in ("auto", cfg.train.precision)


def resolve_engine(cfg: RunConfig, device: torch.device) -> RunConfig:
    """Fix `model.engine`, its attention kernel and `train.precision` for this device and check the
    method fits it."""
    cfg = cfg.model_copy(deep=True)
    cfg.model.engine = choose_engine(cfg.model.engine, device, sharded=cfg.sync.sharding == "fsdp")
    cfg.model.attn_implementation = choose_attention(cfg.model.attn_implementation, cfg.model.engine, device)
    cfg.train.precision = choose_precision(cfg.train.precision, device)
    check_method(cfg, device)
    return cfg


def preload_engine(cfg: RunConfig) -> None:
    """Call before importing anything that imports transformers (the templates, the loop): when
    this run may use unsloth, import it now so that its patches apply."""
    if may_use_unsloth(cfg) and torch.cuda.is_available():
        import_engine("unsloth")


def import_engine(engine: str) -> None:
    """Import unsloth first thing when it is the engine, so its patches apply to transformers."""
    if engine == "unsloth":
        import unsloth  # noqa: F401
