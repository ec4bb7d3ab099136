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


@dataclass(frozen=True)
class Calibration:
    cuda_context_gib: float
    allocator_reserve_fraction: float
    qlora_bytes_per_param: float
    checkpointing_speed: dict[str, float]
    step_overhead_tokens: float
    engines: dict[str, EngineConstants]
    measurements: list[dict[str, Any]]
    architectures: dict[str, dict[str, Any]]
    source: dict[str, str]


def parse_calibration(data: dict[str, Any]) -> Calibration:
    c = data["constants"]
    return Calibration(
        cuda_context_gib=float(c["cuda_context_gib"]),
        allocator_reserve_fraction=float(c["allocator_reserve_fraction"]),
        qlora_bytes_per_param=float(c["qlora_bytes_per_param"]),
        checkpointing_speed={k: float(v) for k, v in c["speed"]["checkpointing"].items()},
        step_overhead_tokens=float(c["speed"]["step_overhead_tokens"]),
        engines={name: EngineConstants(**{k: float(v) for k, v in e.items()})
                 for name, e in c["engines"].items()},
        measurements=list(data.get("measurements", [])),
        architectures=dict(data.get("architectures", {})),
        source=dict(data.get("source", {})),
    )


def load_calibration(path: Path = CALIBRATION_FILE) -> Calibration:
    return parse_calibration(yaml.safe_load(path.read_text(encoding="utf-8")))
