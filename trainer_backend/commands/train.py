"""`train CONFIG [--set dotted.key=value ...] [--resume]`: run a config (a YAML file or a preset).

Exit codes: 0 completed, 10 stopped (SIGTERM/SIGINT; continue with --resume), 2 bad config or
data, 3 out of memory, 1 anything else. The last stderr line is a one-line message.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from trainer_backend.config import ConfigError, RunConfig, load_config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="run config YAML, or a preset name")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a field, value parsed as YAML: --set train.lr=1e-4 --set sync.devices=[0,1]")
    parser.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in output.dir")


def run(args: argparse.Namespace) -> int:
    try:
        cfg = load_config(args.config, args.overrides)
    except ConfigError as err:
        print(err, file=sys.stderr)
        return 2
    from trainer_backend.models.engine import preload_engine
    from trainer_backend.planner import resolve_sharding

    try:
        cfg = resolve_sharding(cfg)
    except ConfigError as err:
        print(err, file=sys.stderr)
        return 2
    preload_engine(cfg)
    if len(cfg.sync.devices) > 1:
        return run_multi(cfg, args.resume)
    return run_single(cfg, args.resume)


def run_single(cfg: RunConfig, resume: bool) -> int:
    from trainer_backend.train.loop import train_rank
    from trainer_backend.train.sync import make_sync

    device = cfg.sync.devices[0]
    device = "cpu" if device == "cpu" else int(device)
    sync = make_sync(cfg.sync, 0, 1, "cpu" if device == "cpu" else f"cuda:{device}", "local")
    return train_rank(cfg, 0, 1, device, sync, Path(cfg.output.dir), resume=resume)


def run_multi(cfg: RunConfig, resume: bool) -> int:
    from trainer_backend.train import launcher

    return launcher.launch(cfg, Path(cfg.output.dir), resume=resume)
