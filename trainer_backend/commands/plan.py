"""`python -m trainer_backend plan CONFIG --gpu-mem 80 [--set k=v ...] [--json]`: predict peak
GPU memory and resolve `auto` fields; needs only the model's config.json (or model.architecture)."""
from __future__ import annotations

import argparse
import json
import sys

from trainer_backend.config import ConfigError, RunConfig, load_config
from trainer_backend.planner import Estimate, Plan, estimate, has_auto, plan


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="run config YAML or preset name")
    parser.add_argument("--gpu-mem", type=float, default=None,
                        help="GPU memory budget in GiB (default: planner.gpu_mem_gib of the config)")
    parser.add_argument("--headroom", type=float, default=None, help="GiB left free (default: planner.headroom_gib)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--json", action="store_true", help='one object: {"peak_gib", "plan", "why"}')


def plan_fields(cfg: RunConfig, est: Estimate) -> dict:
    return {"method": cfg.method, "gradient_checkpointing": cfg.train.gradient_checkpointing,
            "micro_batch_size": cfg.train.micro_batch_size, "grad_accum": cfg.train.grad_accum,
            "max_seq_len": cfg.template.max_seq_len, "engine": est.shape.engine}


def report(cfg: RunConfig, est: Estimate, why: str) -> dict:
    return {"peak_gib": round(est.peak_gib, 3), "plan": plan_fields(cfg, est), "why": why,
            "fits": est.fits, "breakdown_gib": {k: round(v, 3) for k, v in est.breakdown.items()}}


def as_given(cfg: RunConfig, budget: float | None) -> tuple[RunConfig, Estimate, str]:
    est = estimate(cfg, budget)
    verdict = "" if budget is None else (" fits" if est.fits else " does NOT fit") + f" in {budget:g} GiB"
    return cfg, est, f"nothing is auto: the configuration as given{verdict}"


def planned(cfg: RunConfig, budget: float | None, headroom: float) -> tuple[RunConfig, Estimate, str]:
    if budget is None:
        raise ConfigError("the config has `auto` fields: give --gpu-mem GIB or planner.gpu_mem_gib to plan them")
    result: Plan = plan(cfg, budget, headroom)
    return result.config, result.estimate, result.why


def run(args: argparse.Namespace) -> int:
    try:
        cfg = load_config(args.config, args.overrides)
        budget = args.gpu_mem if args.gpu_mem is not None else cfg.planner.gpu_mem_gib
        headroom = args.headroom if args.headroom is not None else cfg.planner.headroom_gib
        resolved, est, why = planned(cfg, budget, headroom) if has_auto(cfg) else as_given(cfg, budget)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(report(resolved, est, why)))
        return 0
    print("plan: " + ", ".join(f"{k}={v}" for k, v in plan_fields(resolved, est).items()))
    print(f"why: {why}\n")
    print(est.table())
    return 0
