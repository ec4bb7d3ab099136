"""Memory planner: predict peak GPU memory and resolve `auto` fields into the fastest plan that fits.

    estimate(config, gpu_mem_gib=None) -> Estimate     # auto fields are planned first
    plan(config, gpu_mem_gib, headroom_gib=1.5) -> Plan
    resolve_auto(config, gpu_mem_gib) -> RunConfig     # what the trainer runs; no `auto` left
    resolve_sharding(config) -> RunConfig              # only sync.sharding, before the ranks start
"""
from __future__ import annotations

from trainer_backend.config import RunConfig
from trainer_backend.planner.architecture import Architecture, architecture_of
from trainer_backend.planner.calibration import Calibration, load_calibration
from trainer_backend.planner.estimate import Estimate, RunShape, estimate_resolved
from trainer_backend.planner.plan import Candidate, Plan, PlanError, plan
from trainer_backend.planner.resolve import has_auto, resolve_auto, resolve_sharding


def estimate(config: RunConfig, gpu_mem_gib: float | None = None) -> Estimate:
    """Peak memory of the config as given, or of its plan for gpu_mem_gib when fields are `auto`."""
    concrete = resolve_auto(config, gpu_mem_gib) if has_auto(config) else config
    return estimate_resolved(concrete, gpu_mem_gib)


__all__ = ["Architecture", "Calibration", "Candidate", "Estimate", "Plan", "PlanError", "RunShape",
           "architecture_of", "estimate", "has_auto", "load_calibration", "plan", "resolve_auto",
           "resolve_sharding"]
