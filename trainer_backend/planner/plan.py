"""Choose the fastest run shape that fits a GPU budget, for the fields the user left `auto`."""
from __future__ import annotations

from dataclasses import dataclass, replace
from itertools import product

from trainer_backend.config import ConfigError, RunConfig
from trainer_backend.planner.architecture import architecture_of
from trainer_backend.planner.calibration import Calibration, load_calibration
from trainer_backend.planner.estimate import Estimate, RunShape, estimate_shape, run_shape

CHECKPOINTING_MODES = ("off", "on")
# Without an effective batch to preserve, the planner tries micro-batches up to this many sequences.
MAX_AUTO_MICRO_BATCH = 16
# Micro-batch used where there is no GPU budget to plan against (CPU runs, unknown GPU).
DEFAULT_MICRO_BATCH = 4


class PlanError(ConfigError):
    """No run shape fits the budget; the message says what would."""


@dataclass(frozen=True)
class Candidate:
    shape: RunShape
    estimate: Estimate
    speed: float       # relative tokens/s, higher is better
    fits: bool


@dataclass(frozen=True)
class Plan:
    config: RunConfig              # the input with every planned field concrete
    peak_gib: float
    why: str
    table: list[Candidate]         # every candidate considered, fastest first
    estimate: Estimate


def devices_per_step(cfg: RunConfig) -> int:
    return len(cfg.sync.devices)


def per_device_batch(cfg: RunConfig) -> int | None:
    """Sequences each device contributes per optimizer step, when the user fixed an effective batch."""
    eff = cfg.train.effective_batch_size
    if eff is None:
        return None
    n = devices_per_step(cfg)
    if eff % n:
        raise ConfigError(f"train.effective_batch_size: {eff} does not split evenly over {n} devices")
    return eff // n


def micro_batch_choices(cfg: RunConfig) -> list[int]:
    per_device = per_device_batch(cfg)
    if cfg.train.micro_batch_size != "auto":
        micro = int(cfg.train.micro_batch_size)
        if per_device is not None and per_device % micro:
            raise ConfigError(f"train.effective_batch_size: {cfg.train.effective_batch_size} is not a multiple "
                              f"of train.micro_batch_size {micro} x {devices_per_step(cfg)} devices")
        return [micro]
    if per_device is not None:
        return [m for m in range(1, per_device + 1) if per_device % m == 0]
    return [m for m in (1, 2, 4, 8, 16) if m <= MAX_AUTO_MICRO_BATCH]


def grad_accum_for(cfg: RunConfig, micro: int) -> int:
    per_device = per_device_batch(cfg)
    return cfg.train.grad_accum if per_device is None else per_device // micro


def relative_speed(shape: RunShape, cal: Calibration) -> float:
    """Checkpointing recomputes the forward pass; small steps pay a fixed per-step overhead; the
    hf engine (the sharded path's) is slower than Unsloth's kernels."""
    overhead = cal.step_overhead_tokens
    return cal.engine_speed[shape.engine] * cal.checkpointing_speed[shape.checkpointing] * \
        shape.tokens / (shape.tokens + overhead)


def sharding_choices(cfg: RunConfig, engine: str) -> list[tuple[int, str]]:
    """(shards, engine) pairs to try: FSDP2 runs on the hf engine, never on 4-bit weights, and
    `auto` considers it only when there are several GPUs to shard over."""
    gpus = [d for d in cfg.sync.devices if d != "cpu"]
    if cfg.sync.sharding == "fsdp":
        return [(len(gpus) or 1, "hf")]
    choices = [(0, engine)]
    if cfg.sync.sharding == "auto" and len(gpus) > 1 and cfg.model.engine in ("auto", "hf"):
        choices.append((len(gpus), "hf"))
    return choices


def candidate_shapes(cfg: RunConfig) -> list[RunShape]:
    concrete = cfg.model_copy(deep=True)
    methods = ["lora", "qlora"] if cfg.method == "auto" else [cfg.method]
    modes = list(CHECKPOINTING_MODES) if cfg.train.gradient_checkpointing == "auto" \
        else [cfg.train.gradient_checkpointing]
    concrete.method, concrete.train.gradient_checkpointing = methods[0], modes[0]
    concrete.train.micro_batch_size = 1
    concrete.sync.sharding = "none"
    base = run_shape(concrete)
    return [replace(base, method=m, checkpointing=c, micro_batch_size=b, shards=n, engine=e,
                    grad_accum=grad_accum_for(cfg, b))
            for m, c, b, (n, e) in product(methods, modes, micro_batch_choices(cfg), sharding_choices(cfg, base.engine))
            if not (n and m == "qlora")]


def score(cfg: RunConfig, budget_gib: float, cal: Calibration) -> list[Candidate]:
    arch = architecture_of(cfg)
    out = []
    for shape in candidate_shapes(cfg):
        est = estimate_shape(arch, shape, cal, budget_gib)
        fits = est.peak_gib * (1 + cal.planning_margin_fraction) <= budget_gib
        out.append(Candidate(shape, est, relative_speed(shape, cal), fits))
    return sorted(out, key=lambda c: (-c.speed, c.estimate.peak_gib))


def pick(cands: list[Candidate]) -> Candidate | None:
    """The fastest fitting shape, preferring full-precision weights on whole GPUs, then sharded
    ones: QLoRA only when no LoRA shape fits even sharded, sharding only when none fits unsharded."""
    fitting = [c for c in cands if c.fits]
    return min(fitting, key=lambda c: (c.shape.method == "qlora", c.shape.sharded), default=None)


def apply(cfg: RunConfig, chosen: Candidate) -> RunConfig:
    out = cfg.model_copy(deep=True)
    out.method = chosen.shape.method
    out.train.gradient_checkpointing = chosen.shape.checkpointing
    out.train.micro_batch_size = chosen.shape.micro_batch_size
    out.train.grad_accum = chosen.shape.grad_accum
    out.sync.sharding = "fsdp" if chosen.shape.sharded else "none"
    if chosen.shape.sharded and out.model.engine == "auto":
        out.model.engine = "hf"
    out.planner.expected_peak_gib = round(chosen.estimate.peak_gib, 2)
    return out


def describe(chosen: Candidate, cands: list[Candidate], budget_gib: float) -> str:
    s = chosen.shape
    why = (f"{s.method}, checkpointing {s.checkpointing}, micro-batch {s.micro_batch_size} x "
           f"grad accum {chosen.shape.grad_accum}: peak {chosen.estimate.peak_gib:.1f} GiB within "
           f"{budget_gib:.1f} GiB (budget minus headroom)")
    if s.sharded:
        whole = [c for c in cands if not c.shape.sharded and c.shape.method == s.method]
        need = f"; unsharded it needs at least {min(c.estimate.peak_gib for c in whole):.1f} GiB per GPU" if whole else ""
        why = f"sharded over {s.shards} GPUs with FSDP2 (hf engine){need}; " + why
    faster = [c for c in cands if c.speed > chosen.speed and not c.fits and c.shape.sharded == s.sharded]
    if faster:
        f = faster[-1]  # the nearest faster shape: what a little more memory would buy
        why += (f"; the faster checkpointing {f.shape.checkpointing} / micro-batch {f.shape.micro_batch_size} "
                f"would need {f.estimate.peak_gib:.1f} GiB")
    return why


def plan(config: RunConfig, gpu_mem_gib: float, headroom_gib: float = 1.5) -> Plan:
    """The fastest shape whose predicted peak, plus the calibration's margin, is at most
    gpu_mem_gib - headroom_gib."""
    budget = gpu_mem_gib - headroom_gib
    cal = load_calibration()
    cands = score(config, budget, cal)
    chosen = pick(cands)
    if chosen is None:
        least = min(cands, key=lambda c: c.estimate.peak_gib)
        raise PlanError(
            f"nothing fits in {gpu_mem_gib:g} GiB minus {headroom_gib:g} GiB headroom: the smallest shape "
            f"({least.shape.method}, checkpointing {least.shape.checkpointing}, micro-batch "
            f"{least.shape.micro_batch_size}) needs {least.estimate.peak_gib:.1f} GiB; lower "
            f"template.max_seq_len, set method: auto (allows QLoRA) or use a larger GPU")
    return Plan(config=apply(config, chosen), peak_gib=chosen.estimate.peak_gib,
                why=describe(chosen, cands, budget), table=cands, estimate=chosen.estimate)
