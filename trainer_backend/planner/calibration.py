"""Load the formula's constants and their measurements from calibration.yaml (one data file)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

CALIBRATION_FILE = Path(__file__).with_name("calibration.yaml")


@dataclass(frozen=True)
class EngineConstants:
    hidden_coef: float
    intermediate_coef: float
    recompute_layers: float
    logits_bytes_per_vocab: float
    workspace_gib: float
    allocator_reserve_fraction: float
    inputs_on_gpu: dict[str, bool]      # per checkpointing mode: are layer inputs kept on the GPU?
    # model_type (or "*") -> method -> checkpointing -> measured activations / formula (1.0 when absent)
    activation_factors: dict[str, dict[str, dict[str, float]]]

    def activation_factor(self, model_type: str, method: str, checkpointing: str) -> float:
        """The model type's own factor, else the one for every model type ("*"), else 1."""
        for key in (model_type, "*"):
            factor = self.activation_factors.get(key, {}).get(method, {}).get(checkpointing)
            if factor is not None:
                return factor
        return 1.0


@dataclass(frozen=True)
class Calibration:
    cuda_context_gib: float
    planning_margin_fraction: float
    qlora_bytes_per_param: float
    checkpointing_speed: dict[str, float]
    engine_speed: dict[str, float]
    step_overhead_tokens: float
    engines: dict[str, EngineConstants]
    measurements: list[dict[str, Any]]      # every measured row, with its set's source
    architectures: dict[str, dict[str, Any]]
    source: dict[str, str]


def engine_constants(e: dict[str, Any]) -> EngineConstants:
    numbers = {k: float(v) for k, v in e.items() if k not in ("inputs_on_gpu", "activation_factors")}
    factors = {arch: {method: {ckpt: float(f) for ckpt, f in modes.items()} for method, modes in methods.items()}
               for arch, methods in e.get("activation_factors", {}).items()}
    return EngineConstants(**numbers, inputs_on_gpu={k: bool(v) for k, v in e["inputs_on_gpu"].items()},
                           activation_factors=factors)


def parse_calibration(data: dict[str, Any]) -> Calibration:
    c = data["constants"]
    return Calibration(
        cuda_context_gib=float(c["cuda_context_gib"]),
        planning_margin_fraction=float(c["planning_margin_fraction"]),
        qlora_bytes_per_param=float(c["qlora_bytes_per_param"]),
        checkpointing_speed={k: float(v) for k, v in c["speed"]["checkpointing"].items()},
        engine_speed={k: float(v) for k, v in c["speed"]["engine"].items()},
        step_overhead_tokens=float(c["speed"]["step_overhead_tokens"]),
        engines={name: engine_constants(e) for name, e in c["engines"].items()},
        measurements=[row | {"source": m["source"]} for m in data.get("measurement_sets", []) for row in m["rows"]],
        architectures=dict(data.get("architectures", {})),
        source=dict(data.get("source", {})),
    )


def load_calibration(path: Path = CALIBRATION_FILE) -> Calibration:
    return parse_calibration(yaml.safe_load(path.read_text(encoding="utf-8")))
