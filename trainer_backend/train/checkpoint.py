"""Checkpoints: everything needed to continue the same trajectory, in `checkpoints/step_<N>/`.

- `trainable.safetensors`: the trainable parameters by name (the LoRA adapter, or all weights)
- `optimizer.pt`, `scheduler.pt`: their state dicts
- `rng.pt`: python, numpy, torch (and CUDA) generator states
- `state.json`: the data position (global step; epoch and batch follow from it and the seed)

A checkpoint is written to a temporary folder and renamed, so a crash mid-write never leaves a
half checkpoint that `--resume` would pick.
"""
from __future__ import annotations

import json
import random
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from ..config import ConfigError


@dataclass
class TrainState:
    step: int            # optimizer steps done
    epoch: int           # epoch of the next batch
    batch_in_epoch: int  # index of the next batch inside that epoch
    total_steps: int


def checkpoint_dir(job_dir: Path, step: int) -> Path:
    return Path(job_dir) / "checkpoints" / f"step_{step}"


def latest_checkpoint(job_dir: Path) -> Path | None:
    root = Path(job_dir) / "checkpoints"
    done = [p for p in root.glob("step_*") if (p / "state.json").exists()]
    return max(done, key=lambda p: int(p.name.split("_")[1]), default=None)


def rng_state() -> dict:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(job_dir: Path, state: TrainState, named_params: list[tuple[str, torch.nn.Parameter]],
                    optimizer: torch.optim.Optimizer, scheduler, scaler=None) -> Path:
    final = checkpoint_dir(job_dir, state.step)
    tmp = final.with_name(final.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file({n: p.detach().contiguous().cpu() for n, p in named_params}, str(tmp / "trainable.safetensors"))
    torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
    torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
    if scaler is not None:
        torch.save(scaler.state_dict(), tmp / "scaler.pt")
    torch.save(rng_state(), tmp / "rng.pt")
    (tmp / "state.json").write_text(json.dumps(asdict(state)), encoding="utf-8")
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    return final


def load_checkpoint(path: Path, named_params: list[tuple[str, torch.nn.Parameter]],
                    optimizer: torch.optim.Optimizer, scheduler, scaler=None) -> TrainState:
    """Restores weights, optimizer, scheduler and data position; RNG states are restored by the
    caller with `restore_rng(path)` right before the first resumed step."""
    saved = load_file(str(path / "trainable.safetensors"))
    params = dict(named_params)
    if set(saved) != set(params):
        missing, extra = sorted(set(params) - set(saved)), sorted(set(saved) - set(params))
        raise ConfigError(f"{path}: checkpoint does not match the model being trained "
                         f"(missing {missing[:3]}, unexpected {extra[:3]}); was the config changed?")
    with torch.no_grad():
        for name, tensor in saved.items():
            params[name].copy_(tensor)
    optimizer.load_state_dict(torch.load(path / "optimizer.pt", map_location="cpu", weights_only=False))
    scheduler.load_state_dict(torch.load(path / "scheduler.pt", weights_only=False))
    if scaler is not None and (path / "scaler.pt").exists():
        scaler.load_state_dict(torch.load(path / "scaler.pt", weights_only=False))
    return TrainState(**json.loads((path / "state.json").read_text(encoding="utf-8")))


def restore_rng(path: Path) -> None:
    set_rng_state(torch.load(path / "rng.pt", weights_only=False))
