"""The merged model as one GGUF file (llama.cpp, Ollama, LM Studio), written with the `gguf`
package: architecture metadata, the tokenizer (see gguf_vocab), and every tensor under its GGUF
name in the chosen type.

Families: llama (Llama, SmolLM2, and Mistral, which llama.cpp runs as llama), qwen2 and qwen3.
Layout rules that a reader relies on:
- llama's q and k rows are permuted from HF's rotate-half order to llama.cpp's interleaved rope
  order (qwen2 and qwen3 keep HF's order: llama.cpp runs them with NEOX-style rope);
- a tied output head is not written (llama.cpp reuses token_embd);
- 1-D tensors (norms, biases) stay F32; matrices are F16, BF16 or Q8_0 (a matrix whose rows do not
  split into blocks of 32 falls back to F16, as in llama.cpp's converter);
- Llama 3.1's rope scaling is written as the `rope_freqs` tensor llama.cpp reads.
"""
from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import torch
from gguf import (GGML_QUANT_VERSION, GGMLQuantizationType, GGUFWriter, LlamaFileType, MODEL_ARCH,
                  get_tensor_name_map, quants)

from ..config import ConfigError, RunConfig
from .gguf_vocab import write_vocab
from .modelfile import write_modelfile

ARCHS = {"llama": MODEL_ARCH.LLAMA, "mistral": MODEL_ARCH.LLAMA, "qwen2": MODEL_ARCH.QWEN2, "qwen3": MODEL_ARCH.QWEN3}
ARCH_NAMES = {MODEL_ARCH.LLAMA: "llama", MODEL_ARCH.QWEN2: "qwen2", MODEL_ARCH.QWEN3: "qwen3"}
MATRIX_TYPES = {"f16": GGMLQuantizationType.F16, "bf16": GGMLQuantizationType.BF16, "q8_0": GGMLQuantizationType.Q8_0}
FILE_TYPES = {"f16": LlamaFileType.MOSTLY_F16, "bf16": LlamaFileType.MOSTLY_BF16, "q8_0": LlamaFileType.MOSTLY_Q8_0}
ROPE_TYPES = ("default", "llama3")


def check_supported(model_path, cfg: RunConfig) -> None:
    """Refuse, before any weights load, a model this export cannot write faithfully."""
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(str(model_path), trust_remote_code=cfg.model.trust_remote_code)
    except (OSError, ValueError) as err:
        raise ConfigError(f"'model.name_or_path': cannot read the config of '{model_path}' ({err})") from None
    if config.model_type not in ARCHS:
        raise ConfigError(f"GGUF export supports {', '.join(ARCHS)} models; '{model_path}' is a "
                          f"'{config.model_type}' model: export it merged (--merge) and convert it with llama.cpp")
    rope_type = _rope(config).get("rope_type", "default")
    if rope_type not in ROPE_TYPES:
        raise ConfigError(f"GGUF export: rope scaling '{rope_type}' of '{model_path}' is not supported "
                          f"(supported: {', '.join(ROPE_TYPES)})")


def _rope(config) -> dict:
    """Rope settings in transformers 5 form (`rope_parameters`), or from the older fields."""
    params = getattr(config, "rope_parameters", None) or getattr(config, "rope_scaling", None) or {}
    params = dict(params)
    params.setdefault("rope_theta", getattr(config, "rope_theta", 10000.0))
    params.setdefault("rope_type", params.get("type", "default"))
    return params


def gguf_file_name(cfg: RunConfig, gguf_type: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", cfg.name).strip("-.") or "model"
    return f"{stem}-{gguf_type}.gguf"


def tensor_type(shape: tuple[int, ...], gguf_type: str) -> GGMLQuantizationType:
    if len(shape) == 1:
        return GGMLQuantizationType.F32
    qtype = MATRIX_TYPES[gguf_type]
    if qtype == GGMLQuantizationType.Q8_0 and shape[-1] % 32 != 0:
        return GGMLQuantizationType.F16
    return qtype


def stored(array: np.ndarray, qtype: GGMLQuantizationType) -> np.ndarray:
    return quants.quantize(array.astype(np.float32), qtype)


def gguf_rounding(model: torch.nn.Module, gguf_type: str):
    """`fn(name, tensor)`: the tensor as the GGUF file stores it, read back (for the merge check)."""
    def rounded(name: str, tensor: torch.Tensor) -> torch.Tensor:
        qtype = tensor_type(tuple(tensor.shape), gguf_type)
        array = quants.dequantize(stored(tensor.detach().cpu().numpy(), qtype), qtype)
        return torch.from_numpy(np.ascontiguousarray(array.reshape(tensor.shape)))
    return rounded


def permute_for_rope(w: np.ndarray, n_head: int) -> np.ndarray:
    """HF rotate-half rows -> llama.cpp's interleaved pairs, head by head."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def llama3_rope_factors(params: dict, head_dim: int) -> np.ndarray:
    """Per-frequency divisors of Llama 3.1's rope scaling (llama.cpp's `rope_freqs.weight`)."""
    factor, low, high = params["factor"], params.get("low_freq_factor", 1.0), params.get("high_freq_factor", 4.0)
    old_ctx = params.get("original_max_position_embeddings", 8192)
    freqs = 1.0 / params["rope_theta"] ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)
    factors = []
    for freq in freqs:
        wavelen = 2 * math.pi / freq
        if wavelen < old_ctx / high:
            factors.append(1.0)
        elif wavelen > old_ctx / low:
            factors.append(factor)
        else:
            smooth = (old_ctx / wavelen - low) / (high - low)
            factors.append(1.0 / ((1 - smooth) / factor + smooth))
    return np.array(factors, dtype=np.float32)


def write_metadata(writer: GGUFWriter, config, cfg: RunConfig, gguf_type: str, head_dim: int) -> None:
    writer.add_name(cfg.name)
    writer.add_type("model")
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads or config.num_attention_heads)
    writer.add_rope_freq_base(float(_rope(config)["rope_theta"]))
    writer.add_layer_norm_rms_eps(float(config.rms_norm_eps))
    writer.add_vocab_size(config.vocab_size)
    writer.add_rope_dimension_count(head_dim)
    writer.add_key_length(head_dim)
    writer.add_value_length(head_dim)
    writer.add_file_type(FILE_TYPES[gguf_type])
    writer.add_quantization_version(GGML_QUANT_VERSION)


def gguf_tensors(model: torch.nn.Module, arch: MODEL_ARCH, head_dim: int):
    """(GGUF name, fp32 array in HF's (out, in) layout) for every tensor to write."""
    config = model.config
    names = get_tensor_name_map(arch, config.num_hidden_layers)
    n_head, n_kv = config.num_attention_heads, config.num_key_value_heads or config.num_attention_heads
    for hf_name, tensor in model.state_dict().items():
        if hf_name == "lm_head.weight" and config.tie_word_embeddings:
            continue
        base, _, suffix = hf_name.rpartition(".")
        name = names.get_name(base)
        if name is None:
            raise ConfigError(f"GGUF export: no GGUF name for the tensor '{hf_name}' of this {config.model_type} model")
        array = tensor.detach().to(torch.float32).cpu().numpy()
        if arch == MODEL_ARCH.LLAMA and base.endswith("self_attn.q_proj"):
            array = permute_for_rope(array, n_head)
        elif arch == MODEL_ARCH.LLAMA and base.endswith("self_attn.k_proj"):
            array = permute_for_rope(array, n_kv)
        yield f"{name}.{suffix}", array
    params = _rope(config)
    if params["rope_type"] == "llama3":
        yield "rope_freqs.weight", llama3_rope_factors(params, head_dim)


def write_gguf(model: torch.nn.Module, tokenizer, cfg: RunConfig, out: Path, gguf_type: str) -> Path:
    """Write `<out>/<name>-<type>.gguf` and the Ollama `Modelfile` beside it."""
    config = model.config
    arch = ARCHS[config.model_type]
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    path = out / gguf_file_name(cfg, gguf_type)
    writer = GGUFWriter(path, ARCH_NAMES[arch])
    write_metadata(writer, config, cfg, gguf_type, head_dim)
    write_vocab(writer, tokenizer, config.vocab_size)
    for name, array in gguf_tensors(model, arch, head_dim):
        qtype = tensor_type(array.shape, gguf_type)
        writer.add_tensor(name, stored(array, qtype), raw_dtype=qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    thinking = cfg.template.enable_thinking
    write_modelfile(out, path.name, tokenizer, {} if thinking is None else {"enable_thinking": thinking})
    return path
