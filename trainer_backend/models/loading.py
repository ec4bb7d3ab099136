"""Load a model for training: the base weights (bf16/fp16/fp32, or 4-bit for QLoRA), then LoRA
adapters or full fine-tuning, through either engine. Both engines are given the same choices:
the unsloth path is exactly FastLanguageModel.from_pretrained + get_peft_model."""
from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass

import torch

from ..config import ConfigError, RunConfig
from .engine import DTYPES

NOT_LORA_TARGETS = ("lm_head", "score", "classifier")


@dataclass
class LoadedModel:
    model: torch.nn.Module
    engine: str
    method: str
    dtype: torch.dtype

    def trainable(self) -> list[tuple[str, torch.nn.Parameter]]:
        return [(n, p) for n, p in self.model.named_parameters() if p.requires_grad]


# Layers peft can put LoRA on besides nn.Linear: the quantized ones, and the transposed Conv1D of
# GPT-2-style models (peft sets fan_in_fan_out for them).
LINEAR_LIKE = ("Linear4bit", "Linear8bitLt", "Conv1D")


def linear_module_names(model: torch.nn.Module) -> list[str]:
    """`all-linear`: leaf names of every linear layer except the output head (which LoRA on the
    vocabulary would bloat), e.g. q_proj ... down_proj for Llama and Qwen, c_attn ... c_proj for GPT-2."""
    names = set()
    for full_name, module in model.named_modules():
        is_linear = isinstance(module, torch.nn.Linear) or type(module).__name__ in LINEAR_LIKE
        leaf = full_name.rsplit(".", 1)[-1]
        if is_linear and leaf not in NOT_LORA_TARGETS:
            names.add(leaf)
    return sorted(names)


def lora_targets(cfg: RunConfig, model: torch.nn.Module) -> list[str]:
    found = set(linear_module_names(model))
    if not found:
        raise ConfigError("'lora.target_modules': this model has no linear layer LoRA can adapt; "
                          "use method: full")
    if cfg.lora.target_modules == "all-linear":
        return sorted(found)
    unknown = [m for m in cfg.lora.target_modules if m not in found]
    if unknown:
        raise ConfigError(f"'lora.target_modules': {unknown} are not linear layers of this model "
                          f"(it has {sorted(found)}); or use all-linear")
    return list(cfg.lora.target_modules)


def checkpointing_on(cfg: RunConfig) -> bool:
    return cfg.train.gradient_checkpointing == "on"


def load_for_training(cfg: RunConfig, device: torch.device) -> LoadedModel:
    """`cfg` must be resolved (engine, precision, auto fields): see models.engine.resolve_engine."""
    dtype = DTYPES[cfg.train.precision]
    if cfg.model.engine == "unsloth":
        model = _load_unsloth(cfg, device, dtype)
    else:
        model = _load_hf(cfg, device, dtype)
    return LoadedModel(model=model, engine=cfg.model.engine, method=cfg.method, dtype=dtype)


def _peft_config(cfg: RunConfig, targets: list[str]):
    from peft import LoraConfig

    return LoraConfig(task_type="CAUSAL_LM", r=cfg.lora.r, lora_alpha=cfg.lora.alpha,
                      lora_dropout=cfg.lora.dropout, target_modules=targets,
                      use_rslora=cfg.lora.rslora, bias="none")


def _load_hf(cfg: RunConfig, device: torch.device, dtype: torch.dtype) -> torch.nn.Module:
    from transformers import AutoModelForCausalLM

    check_attention(cfg, device)
    kwargs = dict(dtype=dtype, trust_remote_code=cfg.model.trust_remote_code,
                  attn_implementation=hf_attention(cfg.model.attn_implementation))
    if cfg.method == "qlora":
        from transformers import BitsAndBytesConfig

        q = cfg.qlora
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type=q.quant_type, bnb_4bit_use_double_quant=q.double_quant,
            bnb_4bit_compute_dtype=dtype if q.compute_dtype == "auto" else DTYPES[q.compute_dtype])
        kwargs["device_map"] = {"": device.index or 0}
    model = _from_pretrained(AutoModelForCausalLM, cfg.model.name_or_path, **kwargs)
    if cfg.method != "qlora":
        model.to(device)
    model.config.use_cache = False
    ckpt_kwargs = {"use_reentrant": False}
    if cfg.method == "qlora":
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=checkpointing_on(cfg),
                                                gradient_checkpointing_kwargs=ckpt_kwargs)
    elif checkpointing_on(cfg):
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=ckpt_kwargs)
        if cfg.method == "lora":
            model.enable_input_require_grads()  # frozen embeddings: checkpointed blocks need a grad input
    if cfg.method == "full":
        model.requires_grad_(True)
        return model
    from peft import get_peft_model

    torch.manual_seed(cfg.train.seed)  # LoRA A matrices are random: same seed, same start
    return get_peft_model(model, _peft_config(cfg, lora_targets(cfg, model)))


def hf_attention(kernel: str) -> str | None:
    """The transformers `attn_implementation` of a kernel name (models.engine); None (transformers'
    own default) for a config loaded without resolving its engine."""
    if kernel == "auto":
        return None
    if kernel == "flex":
        from .attention import register_hf_implementation

        return register_hf_implementation()
    return kernel


def check_attention(cfg: RunConfig, device: torch.device) -> None:
    """flash_attention_2 needs the flash-attn package and a CUDA GPU; say so before loading weights."""
    if cfg.model.attn_implementation != "flash_attention_2":
        return
    if device.type != "cuda":
        raise ConfigError("'model.attn_implementation': flash_attention_2 runs on CUDA GPUs only; use sdpa or auto")
    if importlib.util.find_spec("flash_attn") is None:
        raise ConfigError("'model.attn_implementation': flash_attention_2 needs the flash-attn package, which is "
                          "not installed; pip install flash-attn, or use sdpa or auto")


def _from_pretrained(cls, path: str, **kwargs):
    try:
        return cls.from_pretrained(path, **kwargs)
    except (OSError, ValueError) as err:
        raise ConfigError(f"'model.name_or_path': cannot load '{path}' ({err})") from None


def _load_unsloth(cfg: RunConfig, device: torch.device, dtype: torch.dtype) -> torch.nn.Module:
    from unsloth import FastLanguageModel

    if cfg.model.attn_implementation == "flex":
        from .unsloth_attention import install

        install()

    ckpt = "unsloth" if checkpointing_on(cfg) else False
    torch.cuda.set_device(device)
    try:
        model, _ = FastLanguageModel.from_pretrained(
            cfg.model.name_or_path, max_seq_length=cfg.template.max_seq_len, dtype=dtype,
            load_in_4bit=cfg.method == "qlora", full_finetuning=cfg.method == "full",
            trust_remote_code=cfg.model.trust_remote_code, use_gradient_checkpointing=ckpt,
            random_state=cfg.train.seed, local_files_only=os.path.isdir(cfg.model.name_or_path))
    except (OSError, ValueError) as err:
        raise ConfigError(f"'model.name_or_path': cannot load '{cfg.model.name_or_path}' ({err})") from None
    if cfg.method == "full":
        return model
    return FastLanguageModel.get_peft_model(
        model, r=cfg.lora.r, lora_alpha=cfg.lora.alpha, lora_dropout=cfg.lora.dropout,
        target_modules=lora_targets(cfg, model), bias="none", use_gradient_checkpointing=ckpt,
        random_state=cfg.train.seed, use_rslora=cfg.lora.rslora)
