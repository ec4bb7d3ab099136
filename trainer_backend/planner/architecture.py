"""The few config.json fields that decide a decoder-only model's memory, and its parameter counts."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainer_backend.config import ConfigError, RunConfig

LINEAR_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
_REQUIRED = ("num_hidden_layers", "hidden_size", "num_attention_heads", "intermediate_size", "vocab_size")


@dataclass(frozen=True)
class Architecture:
    layers: int
    hidden: int
    heads: int
    kv_heads: int
    intermediate: int
    vocab: int
    tie_word_embeddings: bool
    head_dim: int
    model_type: str = ""

    @classmethod
    def from_fields(cls, fields: dict[str, Any], source: str) -> "Architecture":
        missing = [k for k in _REQUIRED if k not in fields]
        if missing:
            raise ConfigError(f"{source}: missing {', '.join(missing)} (needed to estimate memory)")
        heads = int(fields["num_attention_heads"])
        hidden = int(fields["hidden_size"])
        return cls(layers=int(fields["num_hidden_layers"]), hidden=hidden, heads=heads,
                   kv_heads=int(fields.get("num_key_value_heads") or heads),
                   intermediate=int(fields["intermediate_size"]), vocab=int(fields["vocab_size"]),
                   tie_word_embeddings=bool(fields.get("tie_word_embeddings", False)),
                   head_dim=int(fields.get("head_dim") or hidden // heads),
                   model_type=str(fields.get("model_type", "")))

    def linear_shapes(self) -> dict[str, tuple[int, int]]:
        """(in_features, out_features) of each projection in one decoder layer."""
        q, kv = self.heads * self.head_dim, self.kv_heads * self.head_dim
        h, i = self.hidden, self.intermediate
        return {"q_proj": (h, q), "k_proj": (h, kv), "v_proj": (h, kv), "o_proj": (q, h),
                "gate_proj": (h, i), "up_proj": (h, i), "down_proj": (i, h)}

    def linear_params(self) -> int:
        """Parameters of all decoder projections (what QLoRA quantizes to 4 bits)."""
        return self.layers * sum(a * b for a, b in self.linear_shapes().values())

    def embedding_params(self) -> int:
        """Input embedding plus the LM head when it is not tied (kept in 16 bits even under QLoRA)."""
        return self.vocab * self.hidden * (1 if self.tie_word_embeddings else 2)

    def norm_params(self) -> int:
        return (2 * self.layers + 1) * self.hidden

    def total_params(self) -> int:
        # Biases (Qwen2's q/k/v) are < 0.01% of the weights: left out on purpose.
        return self.linear_params() + self.embedding_params() + self.norm_params()

    def lora_params(self, r: int, targets: list[str]) -> int:
        shapes = self.linear_shapes()
        return self.layers * sum(r * (shapes[m][0] + shapes[m][1]) for m in targets)


def lora_targets(target_modules: str | list[str]) -> list[str]:
    """The projections a LoRA config adapts; 'all-linear' means every decoder projection."""
    if target_modules == "all-linear":
        return list(LINEAR_MODULES)
    unknown = [m for m in target_modules if m not in LINEAR_MODULES]
    if unknown:
        raise ConfigError(f"lora.target_modules: cannot estimate memory for {unknown} "
                          f"(known: {', '.join(LINEAR_MODULES)})")
    return list(target_modules)


def architecture_of(cfg: RunConfig) -> Architecture:
    """From `model.architecture` when given, else from `<model.name_or_path>/config.json`."""
    if cfg.model.architecture:
        return Architecture.from_fields(cfg.model.architecture, "model.architecture")
    path = Path(cfg.model.name_or_path) / "config.json"
    if not path.is_file():
        raise ConfigError(f"model.name_or_path: no {path} to read the architecture from; "
                          "point it at a folder with config.json or fill model.architecture")
    try:
        fields = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ConfigError(f"{path}: not valid JSON ({err})") from None
    return Architecture.from_fields(fields.get("text_config", fields), str(path))
