"""One rank's training loop.

Each optimizer step: take this rank's share of the global batch, cut it into forward passes,
learn the GLOBAL number of trained tokens (all passes, all ranks) before the first backward, and
run every pass with `num_items_in_batch` = that count, so each pass contributes
sum(token losses) / N_global. Summed over passes and ranks this is exactly the mean token loss of
the whole batch: grad_accum 4 × batch 2 gives the same update as batch 8, and N ranks the same
as one. Then: gradient sync, clipping, optimizer and scheduler step.

`train_rank` is the entry a worker process runs (the CLI for one device, the launcher for each of
several); `fit` is the loop itself, given a loaded model and tokenized examples.
"""
from __future__ import annotations

import errno
import random
import signal
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from ..config import REFERENCE_OBJECTIVES, ConfigError, RunConfig
from ..contracts import ExitCode, JobPaths, Reason, Stage, Status, disk_full_message, oom_message
from ..messages import Notice, msg
from ..models.engine import import_engine, resolve_device, resolve_engine
from ..models.loading import LoadedModel, load_for_training
from ..templates.example import Example
from .batching import GlobalBatches, shard_for_rank
from .checkpoint import (DiskFull, TrainState, load_checkpoint, prune_checkpoints, restore_rng, save_checkpoint,
                         save_sharded_checkpoint)
from .events import EventLog
from .mirrors import open_mirrors
from .objectives import metric_values, precompute_reference, preference_evaluate, preference_step, step_counts
from .optim import build_optimizer, build_scheduler
from .passes import backward_passes, pass_inputs, step_passes
from .startup import AttentionWarmUp, StartupClock, plain_pass_length, warm_up_model

class StopFlag:
    """Set by SIGTERM/SIGINT (or `request()`); the loop finishes the current step, checkpoints
    and stops."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def request(self, *_signal_args) -> None:
        self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()

    def install(self) -> None:
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self.request)
            signal.signal(signal.SIGINT, self.request)


@dataclass
class FitResult:
    status: str          # completed | stopped
    step: int
    total_steps: int


@dataclass
class Progress:
    """Where the run is, readable by the error handler after an exception."""
    step: int = 0
    total_steps: int = 0


# ---- one optimizer step ------------------------------------------------------------------------
def step_scalars(passes: list[list[Example]], stop_requested: bool, device: torch.device) -> torch.Tensor:
    """[trained tokens, tokens, stop votes] of this rank; summed over ranks in ONE exchange a step.
    Carrying the stop vote here lets every rank agree, before any work of the step, not to run it
    (a signal reaches the ranks at slightly different moments) without a second exchange."""
    trained = sum(sum(e.trained) for p in passes for e in p)
    tokens = sum(len(e.input_ids) for p in passes for e in p)
    return torch.tensor([trained, tokens, float(stop_requested)], dtype=torch.float64, device=device)


def with_empty_passes(passes: list[list[Example]], needed: int, pad_id: int) -> list[list[Example]]:
    """`passes` plus passes of one untrained pad token up to `needed`: a sharded model gathers its
    weights collectively in every forward, so each rank must run as many passes as the busiest one.
    An empty pass adds exactly zero to the loss and the gradients."""
    empty = Example(row=-1, input_ids=[pad_id], trained=[False], text="")
    return passes + [[empty] for _ in range(needed - len(passes))]


def train_step(model: torch.nn.Module, passes: list[list], cfg: RunConfig, sync, pad_id: int, device: torch.device,
               scaler, stop_requested: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
    """The step's one exchange of counts, then its forward and backward (`run_step`, or
    `preference_step` for the preference objectives): (this rank's share of the step loss, global
    counts, metric sums). None when a rank voted to stop: then no rank runs the step."""
    objective = cfg.train.objective
    scalars = step_scalars(passes, stop_requested, device) if objective == "sft" else \
        step_counts(passes, objective, stop_requested, device)
    counts = sync.all_reduce_scalars(scalars)
    if counts[2].item() > 0:
        return None
    if objective == "sft":
        step_loss = run_step(model, passes, cfg, sync, pad_id, device, scaler, counts)
        return step_loss, counts, torch.zeros(0, dtype=torch.float64, device=device)
    step_loss, sums = preference_step(model, passes, cfg, sync, pad_id, device, scaler, counts)
    return step_loss, counts, sums


def run_step(model: torch.nn.Module, passes: list[list[Example]], cfg: RunConfig, sync, pad_id: int,
             device: torch.device, scaler, counts: torch.Tensor) -> torch.Tensor:
    """Forward and backward every pass of this rank, normalized by the global trained-token count
    (`counts`, from step_scalars); returns this rank's share of the step loss. Gradients are summed
    over ranks when it returns."""
    passes = with_empty_passes(passes, sync.passes_needed(len(passes)), pad_id)
    n_items = counts[0].clamp(min=1).to(torch.float32)
    return backward_passes(model, passes, sync, scaler, device, lambda examples: model(
        **pass_inputs(examples, cfg, pad_id, device), num_items_in_batch=n_items, use_cache=False).loss)


def clip_and_step(params: list[torch.nn.Parameter], optimizer, scheduler, max_norm: float,
                  scaler, step_loss: torch.Tensor | None = None) -> torch.Tensor:
    """With `step_loss`, a NaN/inf loss or gradient norm raises Diverged before the optimizer
    touches the weights (under fp16 the scaler skips steps with inf gradients by itself)."""
    if scaler is not None:
        scaler.unscale_(optimizer)
    grads = [p.grad for p in params if p.grad is not None]
    if max_norm > 0:
        norm = torch.nn.utils.clip_grad_norm_(params, max_norm)
    else:
        norm = torch.nn.utils.get_total_norm(grads)
    if hasattr(norm, "full_tensor"):  # sharded gradients: the norm over all shards
        norm = norm.full_tensor()
    if step_loss is not None:
        check_finite(step_loss, norm if scaler is None else None)
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return norm


class Diverged(Exception):
    """The loss, the gradients or the weights are no longer finite numbers."""

    def __init__(self, what: Notice):
        super().__init__(str(what))
        self.what = what


def check_finite(loss: torch.Tensor, grad_norm: torch.Tensor | None) -> None:
    values = torch.stack([loss.float(), grad_norm.float()]) if grad_norm is not None else loss.float()
    if not bool(torch.isfinite(values).all()):  # one device sync for both values
        if grad_norm is None:
            raise Diverged(msg("job.bad_loss", loss=f"{loss.item():.4g}"))
        raise Diverged(msg("job.bad_loss_norm", loss=f"{loss.item():.4g}", norm=f"{grad_norm.item():.4g}"))


def check_finite_weights(params: list[torch.nn.Parameter]) -> None:
    """Before a checkpoint or the output is written: never save weights that are NaN/inf."""
    local = [p.to_local() if hasattr(p, "to_local") else p for p in params]  # a sharded rank checks its shards
    if not all(bool(torch.isfinite(p).all()) for p in local):
        raise Diverged(msg("job.bad_weights"))


def diverged_message(cfg: RunConfig, step: int, detail: Notice, job_dir: Path) -> Notice:
    last = JobPaths(Path(job_dir)).latest_checkpoint()
    kept = msg("job.diverged_kept", name=last.name) if last is not None else msg("job.diverged_none")
    t = cfg.train
    return msg("job.diverged", step=step, detail=detail, kept=kept, lr=f"{t.lr:g}", max_grad_norm=f"{t.max_grad_norm:g}")


@torch.no_grad()
def evaluate(model: torch.nn.Module, examples: Sequence[Example], cfg: RunConfig, sync, pad_id: int,
             device: torch.device) -> float:
    """Mean loss per trained token over the whole eval set (all ranks)."""
    share = shard_for_rank(examples, sync.world_size, sync.rank)
    sums = torch.zeros(2, dtype=torch.float64, device=device)
    model.eval()
    one = torch.ones((), dtype=torch.float32, device=device)
    passes = step_passes(share, cfg)
    for batch in with_empty_passes(passes, sync.passes_needed(len(passes)), pad_id):
        loss = model(**pass_inputs(batch, cfg, pad_id, device), num_items_in_batch=one, use_cache=False).loss
        sums[0] += loss.double()
        sums[1] += sum(sum(e.trained) for e in batch)
    model.train()
    total = sync.all_reduce_scalars(sums).tolist()
    return total[0] / max(total[1], 1.0)


# ---- the loop ----------------------------------------------------------------------------------
def gpu_mem_gib(device: torch.device) -> list[float]:
    return [torch.cuda.max_memory_allocated(device) / 2 ** 30] if device.type == "cuda" else []


def fit(loaded: LoadedModel, cfg: RunConfig, train: Sequence[Example], evals: Sequence[Example],
        job_dir: Path, *, sync, device: torch.device, events: EventLog, stop: StopFlag, pad_id: int,
        resume: bool = False, progress: Progress | None = None,
        on_eval: Callable[[torch.nn.Module, int, float], None] | None = None) -> FitResult:
    """`on_eval(model, step, eval_loss)` runs after each eval loss (the held-out generation metrics)."""
    progress = progress or Progress()
    model, t = loaded.model, cfg.train
    sync.prepare_model(model)
    named = loaded.trainable()
    params = [p for _, p in named]
    sync.prepare(params)
    batches = GlobalBatches(len(train), t.micro_batch_size * t.grad_accum * sync.world_size, t.seed)
    total = batches.total_steps(t.epochs, t.max_steps)
    optimizer = build_optimizer(named, t, device)
    scheduler = build_scheduler(optimizer, t, total)
    scaler = torch.amp.GradScaler("cuda") if t.precision == "fp16" else None
    step = 0
    if resume:
        ckpt = JobPaths(Path(job_dir)).latest_checkpoint()
        if ckpt is None:
            raise ConfigError(f"--resume: no checkpoint in {Path(job_dir) / 'checkpoints'}; start without --resume")
        step = load_checkpoint(ckpt, named, optimizer, scheduler, scaler, model=model).step
        restore_rng(ckpt)
        events.status(step, Status.STARTED, f"resumed from {ckpt.name}", total)
    else:
        events.status(0, Status.STARTED, f"{len(train)} examples, {total} steps, {cfg.model.engine} engine, "
                                    f"{cfg.method}, {t.precision}", total)
    progress.step, progress.total_steps = step, total
    if t.objective != "sft" and sync.sharded:
        raise ConfigError(f"'train.objective': {t.objective} does not run with sharded weights (FSDP) yet; "
                          "use method: lora or qlora, or GPUs that hold the model whole")
    if t.objective in REFERENCE_OBJECTIVES and cfg.method == "full":
        precompute_reference(model, [*train, *evals], cfg, pad_id, device)

    evals_at: dict[int, float] = {}    # eval loss by step, recorded with the checkpoint of that step

    def checkpoint(status: Status) -> None:
        check_finite_weights(params)
        epoch, i = batches.position(step)
        state = TrainState(step, epoch, i, total, evals_at.get(step))
        started = time.perf_counter()
        if sync.sharded:  # every rank writes its own shards
            path = save_sharded_checkpoint(job_dir, state, model, named, optimizer, scheduler, scaler, sync.rank)
        else:
            path = save_checkpoint(job_dir, state, named, optimizer, scheduler, scaler) if sync.rank == 0 else None
        if sync.rank == 0:
            prune_checkpoints(job_dir, t.keep_checkpoints)
        # `seconds` lets the job supervisor give a stop request time to finish the checkpoint.
        events.status(step, status, f"checkpoint {path.name}" if path else "", total,
                      seconds=round(time.perf_counter() - started, 3))

    def run_eval() -> None:
        if t.objective == "sft":
            evals_at[step], metrics = evaluate(model, evals, cfg, sync, pad_id, device), None
        else:
            share = shard_for_rank(evals, sync.world_size, sync.rank)
            evals_at[step], metrics = preference_evaluate(model, step_passes(share, cfg), cfg, sync, pad_id, device)
        events.eval(step, evals_at[step], metrics)
        if on_eval is not None:
            on_eval(model, step, evals_at[step])

    model.train()
    window_counts = torch.zeros(2, dtype=torch.float64, device=device)
    window_start, run_start, steps_run = time.perf_counter(), time.perf_counter(), 0
    while step < total:
        share = shard_for_rank([train[i] for i in batches.indices(step)], sync.world_size, sync.rank)
        passes = step_passes(share, cfg)
        stepped = train_step(model, passes, cfg, sync, pad_id, device, scaler, stop.is_set())
        if stepped is None:
            break  # a stop was requested during the previous step: this one is not run
        step_loss, counts, sums = stepped
        lr = optimizer.param_groups[0]["lr"]  # the rate this step uses, before the scheduler moves it
        grad_norm = clip_and_step(params, optimizer, scheduler, t.max_grad_norm, scaler, step_loss)
        window_counts += counts[:2]
        step += 1
        steps_run += 1
        progress.step = step
        if step % t.log_every == 0 or step == total:
            reduced = sync.all_reduce_scalars(torch.cat([step_loss.double().reshape(1), sums])).tolist()
            loss = reduced[0]
            now = time.perf_counter()
            tokens = window_counts[1].item()
            events.train(step, loss=loss, lr=lr, grad_norm=float(grad_norm),
                         tokens_per_s=tokens / max(now - window_start, 1e-9),
                         epoch=step / batches.per_epoch,
                         eta_s=(now - run_start) / steps_run * (total - step),
                         gpu_mem_gib=gpu_mem_gib(device),
                         metrics=metric_values(reduced[1:], t.objective) if t.objective != "sft" else {})
            window_counts.zero_()
            window_start = time.perf_counter()
        if evals and t.eval_every and step % t.eval_every == 0:
            run_eval()
        if t.save_every and step % t.save_every == 0 and step < total:
            checkpoint(Status.CHECKPOINT)
    if step < total:
        if steps_run:
            checkpoint(Status.STOPPED)
        else:
            events.status(step, Status.STOPPED, "stopped before the first step: nothing new to checkpoint", total)
        return FitResult("stopped", step, total)
    if evals and not (t.eval_every and step % t.eval_every == 0):
        run_eval()
    checkpoint(Status.CHECKPOINT)
    return FitResult("completed", step, total)


# ---- the worker entry --------------------------------------------------------------------------
def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def prepare_config(cfg: RunConfig, device: torch.device) -> RunConfig:
    """Every `auto` made concrete for this device: the planner's fields (a config that fixes them
    all runs as written), then engine and precision."""
    from ..planner import has_auto, resolve_auto

    if has_auto(cfg) or cfg.train.effective_batch_size is not None:
        gpu_mem = None
        if device.type == "cuda":
            gpu_mem = torch.cuda.get_device_properties(device).total_memory / 2 ** 30
        cfg = resolve_auto(cfg, cfg.planner.gpu_mem_gib or gpu_mem)
    return resolve_engine(cfg, device)


def context_warnings(cfg: RunConfig, model: torch.nn.Module) -> list[str]:
    """Legal but suspicious: rows longer than the positions the model was trained on."""
    context = getattr(getattr(model, "config", None), "max_position_embeddings", None)
    if isinstance(context, int) and cfg.template.max_seq_len > context:
        return [f"'template.max_seq_len' {cfg.template.max_seq_len} is beyond the model's context of {context} "
                "tokens; positions past it were never trained and quality usually drops"]
    return []


def check_fresh_start(job_dir: Path) -> None:
    if JobPaths(job_dir).latest_checkpoint() is not None:
        raise ConfigError(f"'output.dir': {job_dir} already holds a run with checkpoints; "
                          "continue it with --resume or choose another output.dir")


def train_rank(cfg: RunConfig, rank: int, world_size: int, device: str | int | torch.device, sync,
               job_dir: str | Path, resume: bool = False, stop: StopFlag | None = None) -> int:
    """Run one rank of a job to its end; returns the process exit code (an ExitCode) after writing
    the matching status or error event. The last stderr line is a one-line message.

    SIGTERM keeps its default action until the first step: before it there is nothing to
    checkpoint, and a process stuck in C code (a huge file, a hung read, a forking pool) then still
    dies at once. From the first step on it only asks the loop to checkpoint and stop."""
    from ..data import DataError
    from ..templates import TemplateError
    from ..evaluation.heldout import TrainingEval
    from .inputs import load_examples
    from ..models.export import save_output
    from .checkpoint import gathered_weights

    job_dir = Path(job_dir)
    events = EventLog(job_dir, primary=rank == 0, rank=rank if world_size > 1 else None)
    progress = Progress()
    stop = stop or StopFlag()
    try:
        clock = StartupClock(events)
        device = resolve_device(device)
        events.stage(Stage.PLANNING, msg("prep.planning", device=str(device)))
        cfg = prepare_config(cfg, device)
        import_engine(cfg.model.engine)
        clock.lap("plan and engine import")
        warm_up = AttentionWarmUp(cfg, device, events)
        if not resume:
            check_fresh_start(job_dir)
        if rank == 0:
            events.mirror_to(open_mirrors(cfg, job_dir))
            cfg.save(job_dir / "config.yaml")
        seed_everything(cfg.train.seed)
        tokenizer, train, evals = load_examples(cfg, events)
        clock.lap("data render")
        events.stage(Stage.LOADING_MODEL, msg("prep.loading_model", model=cfg.model.name_or_path, method=cfg.method))
        loaded = load_for_training(cfg, device)
        clock.lap("model load")
        for warning in cfg.warnings() + context_warnings(cfg, loaded.model):
            events.log(f"warning: {warning}")
            print(f"warning: {warning}", file=sys.stderr)
        warm_up.join()
        clock.lap("attention compile (beyond the loading)")
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        warm_up_model(loaded.model, cfg, device, pad_id, events, plain_pass_length([len(e.input_ids) for e in train]))
        clock.lap("warm-up pass")
        held_out = TrainingEval.start(loaded.model, cfg, tokenizer, evals, pad_id, job_dir, events, rank == 0,
                                      lambda: evaluate(loaded.model, evals, cfg, sync, pad_id, device))
        stop.install()
        result = fit(loaded, cfg, train, evals, job_dir, sync=sync, device=device, events=events, stop=stop,
                     pad_id=pad_id, resume=resume, progress=progress, on_eval=held_out)
        if result.status == "stopped":
            print(f"stopped at step {result.step} of {result.total_steps}; continue with --resume", file=sys.stderr)
            return ExitCode.STOPPED
        check_finite_weights([p for _, p in loaded.trainable()])
        weights = gathered_weights(loaded) if sync.sharded else None  # every rank takes part
        if rank == 0:
            out = save_output(loaded, tokenizer, cfg, job_dir, state_dict=weights)
            events.status(result.step, Status.COMPLETED, f"output written to {out}", result.total_steps)
        return ExitCode.OK
    except torch.OutOfMemoryError:
        t = cfg.train
        return _fail(events, progress, Reason.OOM,
                     oom_message(progress.step, t.micro_batch_size, cfg.template.max_seq_len, cfg.method), ExitCode.OOM)
    except DataError as err:
        return _fail(events, progress, Reason.DATA, msg("job.at", where=err.path, message=err.notice),
                     ExitCode.BAD_INPUT)
    except TemplateError as err:
        return _fail(events, progress, Reason.DATA, err.notice, ExitCode.BAD_INPUT)
    except ConfigError as err:
        return _fail(events, progress, Reason.CONFIG, err.notice, ExitCode.BAD_INPUT)
    except Diverged as err:
        message = diverged_message(cfg, progress.step + 1, err.what, job_dir)
        return _fail(events, progress, Reason.DIVERGED, message, ExitCode.DIVERGED)
    except OSError as err:
        if err.errno != errno.ENOSPC:
            return _crash(events, progress, err)
        what = err.what if isinstance(err, DiskFull) else msg("job.while_writing")
        return _fail(events, progress, Reason.DISK_FULL, disk_full_message(err.filename, what), ExitCode.DISK_FULL)
    except Exception as err:
        return _crash(events, progress, err)
    finally:
        events.close()
        sync.close()


def _crash(events: EventLog, progress: Progress, err: Exception) -> int:
    """A bug: the traceback goes to train.log and stderr, then the one-line message."""
    try:
        events.log(traceback.format_exc())
    except OSError:
        pass
    traceback.print_exc()
    return _fail(events, progress, Reason.CRASH, msg("job.crash", error=type(err).__name__, detail=str(err)),
                 ExitCode.CRASH)


def _fail(events: EventLog, progress: Progress, reason: Reason, message: Notice, code: ExitCode) -> int:
    try:
        events.error(progress.step, reason, message)
    except OSError:  # a full disk: the message still reaches stderr and the exit code says why
        pass
    print(message, file=sys.stderr)
    return code
