"""Launch to first step: how long each stage of a starting worker takes (written to train.log,
so a slow start shows where its time went), the attention warm-up that runs beside the loading,
and one packed pass through the loaded model before the first step."""
from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Sequence

import torch

from ..config import RunConfig
from ..templates.example import Example
from .events import EventLog


class StartupClock:
    """`lap(stage)` logs the seconds since the previous lap: "startup: model load 18.2 s"."""

    def __init__(self, events: EventLog) -> None:
        self.events = events
        self.last = time.perf_counter()

    def lap(self, stage: str) -> float:
        now = time.perf_counter()
        took, self.last = now - self.last, now
        self.events.log(f"startup: {stage} {took:.1f} s")
        return took


class AttentionWarmUp:
    """Compiles the FlexAttention kernels in a thread while data and weights load (the compile
    takes tens of seconds and needs only the head shapes); `join()` before the first step. A
    failure here is logged and left to the first step, which compiles (or fails) as it would anyway."""

    def __init__(self, cfg: RunConfig, device: torch.device, events: EventLog) -> None:
        self.thread = None
        if device.type != "cuda" or cfg.model.attn_implementation != "flex":
            return
        from ..models.engine import DTYPES
        from ..planner.architecture import architecture_of

        try:
            arch = architecture_of(cfg)
        except ValueError:  # no config.json to read the heads from: the first step compiles
            return
        args = (device, arch.heads, arch.kv_heads, arch.head_dim, DTYPES[cfg.train.precision])
        self.events, self.error = events, None
        self.thread = threading.Thread(target=self._run, args=args, name="attention-warm-up", daemon=True)
        self.thread.start()

    def _run(self, *args) -> None:
        from ..models.attention import warm_up

        try:
            warm_up(*args)
        except Exception as err:  # noqa: BLE001 - reported, and the first step retries the compile
            self.error = err

    def join(self) -> None:
        if self.thread is None:
            return
        self.thread.join()
        if self.error is not None:
            self.events.log(f"attention warm-up failed ({type(self.error).__name__}: {self.error}); "
                            "the first step compiles the kernels")


def plain_pass_length(lengths: Sequence[int]) -> int | None:
    """The row length of the plain (n, L) passes a run mostly takes, or None: when at least half
    the rows have one length (fixed-length data, continued pre-training blocks), most passes go
    unpacked (passes.pass_inputs), and that path compiles kernels of its own."""
    if not lengths:
        return None
    length, count = Counter(lengths).most_common(1)[0]
    return length if 2 * count >= len(lengths) else None


def warm_up_passes(cfg: RunConfig, pad_id: int, plain_length: int | None = None) -> list[list[Example]]:
    """The warm-up's passes: the rows of attention.WARM_UP_LENGTHS (the kernels' two compiles, see
    there), each document 7 tokens short so that the row ends in an untrained tail as real rows do.
    For cross-entropy on the Unsloth engine two more follow, both the size of a real pass, so they
    need no memory the run does not:
      - a packed pass that fills the run's token budget. Unsloth's fused cross-entropy cuts a pass
        into chunks by its token count (one chunk below about 1,800 tokens of a 152k vocabulary) and
        compiles again for its first pass of several chunks: 3.4 s of a first step against 0.66 s
        for the next ones, Qwen2.5-7B on chitchat;
      - with `plain_length` (plain_pass_length of the data), a plain pass of rows of that length,
        whose path compiles on its own: 4.5 s of a first step against 2.0 s, on 2048-token rows."""
    from ..models.attention import BLOCK, WARM_UP_LENGTHS
    from .batching import pass_token_budget

    def filler(n: int) -> Example:
        return Example(row=-1, input_ids=[pad_id] * n, trained=[False] + [True] * (n - 1), text="")

    passes = [[filler(n - 7) for n in lengths] for lengths in WARM_UP_LENGTHS]
    if cfg.model.engine != "unsloth" or cfg.train.objective != "sft":
        return passes
    longest = cfg.template.max_seq_len
    budget = pass_token_budget(int(cfg.train.micro_batch_size), longest)
    fill = budget - BLOCK
    if fill > sum(WARM_UP_LENGTHS[-1]):
        lengths = [longest] * (fill // longest) + ([fill % longest] if fill % longest >= 16 else [])
        lengths[-1] -= 1   # documents of two lengths: the pass goes packed
        passes.append([filler(n - 7) for n in lengths])
    if plain_length is not None:
        passes.append([filler(plain_length)] * max(1, budget // plain_length))
    return passes


def warm_up_model(model: torch.nn.Module, cfg: RunConfig, device: torch.device, pad_id: int,
                  events: EventLog, plain_length: int | None = None) -> None:
    """The warm_up_passes through the loaded model, forward and backward, where packed rows run
    FlexAttention. The attention warm-up compiles the kernels on look-alike tensors; any guard the
    model's real call differs on (the layout Unsloth's RoPE leaves q and k in, a scale, a dtype,
    the loss's chunk count) would compile them again inside the first step, where the user sees a
    step that takes ten times the others. Gradients and random state are left as they were; a
    failure is logged and left to the first step, as above."""
    if device.type != "cuda" or cfg.model.attn_implementation != "flex" or cfg.sync.sharding == "fsdp":
        return  # sharded runs compile in their first step: a pass here would be one more collective to agree on
    from .passes import pass_inputs

    try:
        with torch.random.fork_rng(devices=[device]):
            for docs in warm_up_passes(cfg, pad_id, plain_length):
                n_items = torch.tensor(float(sum(d.n_trained for d in docs)), device=device)
                model(**pass_inputs(docs, cfg, pad_id, device), num_items_in_batch=n_items,
                      use_cache=False).loss.backward()
    except torch.OutOfMemoryError:
        raise
    except Exception as err:  # noqa: BLE001 - the first step compiles (or fails) as it would anyway
        events.log(f"warm-up pass failed ({type(err).__name__}: {err}); the first step compiles the kernels")
    finally:
        for p in model.parameters():
            p.grad = None
