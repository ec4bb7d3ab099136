"""Checkpoints: everything needed to continue the same trajectory, in `checkpoints/step_<N>/`.

- `trainable.safetensors`: the trainable parameters by name (the LoRA adapter, or all weights)
- `optimizer.pt`, `scheduler.pt`: their state dicts
- `rng.pt`: python, numpy, torch (and CUDA) generator states
- `state.json`: the data position (global step; epoch and batch follow from it and the seed)

A sharded run (`sync.sharding: fsdp`) keeps `trainable.safetensors` and `optimizer.pt` as one
torch distributed checkpoint in `sharded/` instead: each rank writes its own shards, and a resume
with the same number of ranks reads them back in place.

A checkpoint is written to a temporary folder and renamed, so a crash mid-write never leaves a
half checkpoint that `--resume` would pick; a write that fails (a full disk) removes the
temporary folder. Only the newest `keep` checkpoints and the one with the best eval loss stay.
"""
from __future__ import annotations

import errno
import json
import random
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from ..config import ConfigError
from ..contracts import JobPaths
from ..messages import msg


@dataclass
class TrainState:
    step: int            # optimizer steps done
    epoch: int           # epoch of the next batch
    batch_in_epoch: int  # index of the next batch inside that epoch
    total_steps: int
    eval_loss: float | None = None   # of an eval run at this very step


class DiskFull(OSError):
    """Writing a checkpoint failed because its disk is full."""

    def __init__(self, folder: Path):
        super().__init__(errno.ENOSPC, "No space left on device", str(folder))
        self.what = msg("job.while_checkpoint", name=folder.name)


# A failed write that leaves less free space than this on its disk is taken for a full disk: torch
# reports it as a RuntimeError from its zip writer, safetensors as its own error type.
_FULL_BYTES = 16 * 2 ** 20


def checkpoint_dir(job_dir: Path, step: int) -> Path:
    return JobPaths(Path(job_dir)).checkpoint(step)


def latest_checkpoint(job_dir: Path) -> Path | None:
    return JobPaths(Path(job_dir)).latest_checkpoint()


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
    try:
        tmp.mkdir(parents=True)
        save_file({n: p.detach().contiguous().cpu() for n, p in named_params}, str(tmp / "trainable.safetensors"))
        torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
        _save_run_state(tmp, state, scheduler, scaler)
    except Exception as err:
        full = _free_bytes(tmp.parent) < _FULL_BYTES
        shutil.rmtree(tmp, ignore_errors=True)
        if full:
            raise DiskFull(final) from err
        raise
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    return final


def _free_bytes(folder: Path) -> int:
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return 0


def prune_checkpoints(job_dir: Path, keep: int) -> list[Path]:
    """Remove all but the newest `keep` checkpoints and the one with the lowest eval loss; returns
    the removed folders."""
    done = JobPaths(Path(job_dir)).finished_checkpoints()
    kept = {step for step, _ in done[-keep:]}
    scored = [(loss, step) for step, path in done if (loss := _eval_loss(path)) is not None]
    if scored:
        kept.add(min(scored)[1])
    removed = [path for step, path in done if step not in kept]
    for path in removed:
        shutil.rmtree(path, ignore_errors=True)
    return removed


def _eval_loss(path: Path) -> float | None:
    try:
        return json.loads((path / "state.json").read_text(encoding="utf-8")).get("eval_loss")
    except (OSError, ValueError):
        return None


def _save_run_state(tmp: Path, state: TrainState, scheduler, scaler) -> None:
    torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
    if scaler is not None:
        torch.save(scaler.state_dict(), tmp / "scaler.pt")
    torch.save(rng_state(), tmp / "rng.pt")
    (tmp / "state.json").write_text(json.dumps(asdict(state)), encoding="utf-8")


def save_sharded_checkpoint(job_dir: Path, state: TrainState, model: torch.nn.Module,
                            named_params: list[tuple[str, torch.nn.Parameter]], optimizer, scheduler,
                            scaler, rank: int) -> Path | None:
    """Called by every rank of a sharded run; returns the folder on rank 0."""
    import torch.distributed as dist
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

    final = checkpoint_dir(job_dir, state.step)
    tmp = final.with_name(final.name + ".tmp")
    if rank == 0:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    dist.barrier()
    dcp.save({"trainable": dict(named_params), "optimizer": get_optimizer_state_dict(model, optimizer)},
             checkpoint_id=str(tmp / "sharded"))
    if rank == 0:
        _save_run_state(tmp, state, scheduler, scaler)
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)
    dist.barrier()
    return final if rank == 0 else None


def _load_sharded(path: Path, model: torch.nn.Module, named_params, optimizer) -> None:
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict, set_optimizer_state_dict

    if model is None:
        raise ConfigError(f"{path}: a sharded checkpoint needs a sharded run to resume it (sync.sharding: fsdp)")
    optim = get_optimizer_state_dict(model, optimizer)  # allocates the states the shards load into
    target = {"trainable": dict(named_params), "optimizer": optim}
    try:
        dcp.load(target, checkpoint_id=str(path / "sharded"))
    except Exception as err:  # torch raises CheckpointException (wrapping each rank's error)
        raise ConfigError(f"{path}: cannot load the sharded checkpoint into this run ({str(err).splitlines()[0]}); "
                          "resume with the same model, method and number of GPUs") from None
    set_optimizer_state_dict(model, optimizer, optim_state_dict=optim)


def gathered_weights(loaded) -> dict[str, torch.Tensor]:
    """The full trainable weights of a sharded model, gathered to rank 0's CPU (collective: every
    rank calls it; the others get an empty dict). Frozen base weights are left out under LoRA."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    options = StateDictOptions(full_state_dict=True, cpu_offload=True, ignore_frozen_params=loaded.method != "full")
    weights = get_model_state_dict(loaded.model, options=options)
    # Gathering copies tied weights (embeddings and head) apart: alias them again, so that
    # save_pretrained recognizes the tie and writes the weight once, as an unsharded run does.
    names_of: dict[int, list[str]] = {}
    for name, param in loaded.model.named_parameters(remove_duplicate=False):
        names_of.setdefault(id(param), []).append(name)
    for first, *aliases in names_of.values():
        for alias in aliases:
            if first in weights and alias in weights:
                weights[alias] = weights[first]
    return weights


def load_checkpoint(path: Path, named_params: list[tuple[str, torch.nn.Parameter]],
                    optimizer: torch.optim.Optimizer, scheduler, scaler=None,
                    model: torch.nn.Module | None = None) -> TrainState:
    """Restores weights, optimizer, scheduler and data position; RNG states are restored by the
    caller with `restore_rng(path)` right before the first resumed step. `model` is needed for a
    sharded checkpoint (the optimizer state is keyed by its parameter names)."""
    if (path / "sharded").is_dir():
        _load_sharded(path, model, named_params, optimizer)
        return _load_run_state(path, scheduler, scaler)
    if model is not None and any(hasattr(p, "full_tensor") for _, p in named_params):
        raise ConfigError(f"{path}: this checkpoint was written by an unsharded run; resume it with sync.sharding: none")
    saved = load_file(str(path / "trainable.safetensors"))
    params = dict(named_params)
    if set(saved) != set(params):
        missing, extra = sorted(set(params) - set(saved)), sorted(set(saved) - set(params))
        raise ConfigError(f"{path}: checkpoint does not match the model being trained "
                         f"(missing {missing[:3]}, unexpected {extra[:3]}); was the config changed?")
    with torch.no_grad():
        for name, tensor in saved.items():
            params[name].copy_(tensor)
    try:
        optimizer.load_state_dict(torch.load(path / "optimizer.pt", map_location="cpu", weights_only=False))
    except ValueError as err:   # torch's message for a state of other parameter groups
        raise ConfigError(f"{path}: its optimizer state does not fit this run's optimizer ({err}); was "
                          "'train.optimizer' changed, or the checkpoint written by an earlier version of the "
                          "trainer? Resume with what wrote it, or start a new run") from err
    return _load_run_state(path, scheduler, scaler)


def _load_run_state(path: Path, scheduler, scaler) -> TrainState:
    scheduler.load_state_dict(torch.load(path / "scheduler.pt", weights_only=False))
    if scaler is not None and (path / "scaler.pt").exists():
        scaler.load_state_dict(torch.load(path / "scaler.pt", weights_only=False))
    return TrainState(**json.loads((path / "state.json").read_text(encoding="utf-8")))


def restore_rng(path: Path) -> None:
    set_rng_state(torch.load(path / "rng.pt", weights_only=False))
