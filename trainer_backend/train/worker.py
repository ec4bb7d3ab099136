"""One rank of a multi-device run: `python -m trainer_backend.train.worker --config RUN.yaml ...`.

Started by the launcher (one per entry of `sync.devices`, with --rank/--world-size/--device), or by
torchrun, whose environment (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT) then gives
the rank and the GPU (cuda:LOCAL_RANK); under torchrun the backend is always nccl. Two machines
with 8 GPUs each, output.dir on storage both can read (resume reads its checkpoints):

    torchrun --nnodes=2 --node_rank=0 --nproc_per_node=8 --master_addr=HOST0 --master_port=29500 \
        -m trainer_backend.train.worker --config run.yaml       # on HOST0
    torchrun --nnodes=2 --node_rank=1 --nproc_per_node=8 --master_addr=HOST0 --master_port=29500 \
        -m trainer_backend.train.worker --config run.yaml       # on the second machine
"""
from __future__ import annotations

import argparse
import ctypes
import os
import signal
import sys
from pathlib import Path

from ..config import ConfigError, RunConfig, load_config
from ..contracts import ExitCode
from .sync.base import SyncError


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m trainer_backend.train.worker", description=__doc__.splitlines()[0])
    p.add_argument("--config", required=True, help="the run config (YAML)")
    p.add_argument("--job-dir", help="job directory (default: output.dir of the config)")
    p.add_argument("--rank", type=int, help="this worker's rank (default: $RANK, set by torchrun)")
    p.add_argument("--world-size", type=int, help="number of ranks (default: $WORLD_SIZE)")
    p.add_argument("--device", help="cpu or a GPU index (default: $LOCAL_RANK)")
    p.add_argument("--job-id", help="name of the shared-memory folder of the run (shm backend)")
    p.add_argument("--resume", action="store_true")
    return p.parse_args(argv)


class MeteredSync:
    """The backend, plus one line per optimizer step in the worker log: how long the exchange held
    the step up and how much it moved (bench/multigpu_bench.py reads these lines)."""

    def __init__(self, sync) -> None:
        self._sync = sync
        self.rank, self.world_size = sync.rank, sync.world_size
        self._steps = 0

    @property
    def sharded(self) -> bool:
        return self._sync.sharded

    def prepare_model(self, model) -> None:
        self._sync.prepare_model(model)

    def prepare(self, params) -> None:
        self._sync.prepare(params)

    def passes_needed(self, n: int) -> int:
        return self._sync.passes_needed(n)

    def all_reduce_scalars(self, values):
        return self._sync.all_reduce_scalars(values)

    def before_last_backward(self) -> None:
        self._sync.before_last_backward()

    def finish(self) -> dict:
        stats = self._sync.finish()
        self._steps += 1
        print(f"sync step {self._steps}: sync_ms={stats['sync_ms']:.3f} bytes={stats['bytes']}",
              file=sys.stderr, flush=True)
        return stats

    def close(self) -> None:
        self._sync.close()


def die_with_parent() -> None:
    """A worker whose launcher was killed must not keep a GPU busy: Linux sends it SIGKILL."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def placement(args: argparse.Namespace, cfg: RunConfig) -> tuple[int, int, str | int, RunConfig]:
    """(rank, world size, device, config) from the arguments, or from torchrun's environment."""
    if args.rank is not None:
        if args.world_size is None or args.device is None:
            raise ConfigError("--rank needs --world-size and --device")
        device = "cpu" if args.device == "cpu" else int(args.device)
        return args.rank, args.world_size, device, cfg
    if "RANK" not in os.environ:
        raise ConfigError("no rank: pass --rank/--world-size/--device, or start the worker with torchrun")
    nccl = cfg.model_copy(update={"sync": cfg.sync.model_copy(update={"backend": "nccl"})})
    device = "cpu" if cfg.sync.devices[0] == "cpu" else int(os.environ.get("LOCAL_RANK", 0))
    return int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), device, nccl


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        from ..planner import resolve_sharding

        cfg = load_config(args.config)
        rank, world_size, device, cfg = placement(args, cfg)
        cfg = resolve_sharding(cfg)  # torchrun starts workers on an unresolved config
    except ConfigError as err:
        print(err, file=sys.stderr)
        return ExitCode.BAD_INPUT
    if args.rank is not None:
        die_with_parent()
    from ..models.engine import preload_engine
    preload_engine(cfg)  # before anything imports transformers
    import torch
    from .loop import train_rank
    from .sync import make_sync

    torch_device = torch.device("cpu") if device == "cpu" else torch.device("cuda", device)
    if torch_device.type == "cuda":
        torch.cuda.set_device(torch_device)
    job_dir = Path(args.job_dir or cfg.output.dir)
    job_id = args.job_id or f"job-{os.getppid()}"
    try:
        sync = MeteredSync(make_sync(cfg.sync, rank, world_size, torch_device, job_id))
        return train_rank(cfg, rank, world_size, device, sync, job_dir, resume=args.resume)
    except SyncError as err:
        print(err, file=sys.stderr)
        return ExitCode.PEER_FAILED


if __name__ == "__main__":
    sys.exit(main())
