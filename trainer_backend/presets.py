"""Presets: run configs in presets/*.yaml that the Train tab lists and the CLI accepts by name."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from trainer_backend.config import PRESETS_DIR, ConfigError, RunConfig, load_config


@dataclass(frozen=True)
class PresetInfo:
    name: str
    description: str
    model: str
    method: str
    gpu_mem_gib: float | None          # the GPU size the preset is sized for (None = CPU demo)
    expected_peak_gib: float | None    # the planner's prediction, declared in the preset
    path: Path


def preset_path(name: str, presets_dir: Path = PRESETS_DIR) -> Path:
    path = presets_dir / f"{name}.yaml"
    if not path.is_file():
        known = ", ".join(p.stem for p in sorted(presets_dir.glob("*.yaml")))
        raise ConfigError(f"unknown preset '{name}' (presets: {known})")
    return path


def load_preset(name: str, presets_dir: Path = PRESETS_DIR) -> RunConfig:
    return load_config(preset_path(name, presets_dir))


def list_presets(presets_dir: Path = PRESETS_DIR) -> list[PresetInfo]:
    infos = []
    for path in sorted(presets_dir.glob("*.yaml")):
        cfg = load_config(path)
        infos.append(PresetInfo(name=path.stem, description=cfg.description, model=cfg.model.name_or_path,
                                method=cfg.method, gpu_mem_gib=cfg.planner.gpu_mem_gib,
                                expected_peak_gib=cfg.planner.expected_peak_gib, path=path))
    return infos
