"""Which examples each optimizer step sees, and how they are split across ranks and forward passes.

A global batch is `micro_batch_size × grad_accum × world_size` examples, drawn from a per-epoch
permutation seeded by (seed, epoch): the batch of any step can be recomputed from the step number
alone, which is what makes resume exact. Ranks get shares balanced by TRAINED tokens (the cost the
loss normalization counts), and each share is cut into forward passes.
"""
from __future__ import annotations

import functools
import math
import random
from dataclasses import dataclass
from typing import Protocol, Sequence


class HasTrained(Protocol):
    input_ids: list[int]
    trained: list[bool]


@dataclass(frozen=True)
class GlobalBatches:
    n_examples: int
    batch_size: int      # examples per optimizer step, all ranks together
    seed: int
    shuffle: bool = True

    @property
    def per_epoch(self) -> int:
        return math.ceil(self.n_examples / self.batch_size)

    def total_steps(self, epochs: float, max_steps: int) -> int:
        return max_steps if max_steps > 0 else max(1, math.ceil(epochs * self.per_epoch))

    @functools.lru_cache(maxsize=2)  # called every step: shuffle each epoch once, not once a step
    def order(self, epoch: int) -> list[int]:
        indices = list(range(self.n_examples))
        if self.shuffle:
            random.Random(self.seed * 1_000_003 + epoch).shuffle(indices)
        return indices

    def position(self, step: int) -> tuple[int, int]:
        """(epoch, batch index inside the epoch) of the batch for optimizer step `step` (0-based)."""
        return divmod(step, self.per_epoch)

    def indices(self, step: int) -> list[int]:
        epoch, i = self.position(step)
        return self.order(epoch)[i * self.batch_size:(i + 1) * self.batch_size]


def n_trained(example: HasTrained) -> int:
    return sum(example.trained)


def shard_for_rank(global_batch: Sequence[HasTrained], world_size: int, rank: int) -> list:
    """This rank's share: longest-first greedy assignment to the rank with the fewest trained
    tokens so far (ties: fewest tokens, then lowest rank). Deterministic, so every rank computes
    the same partition without talking; the shares are disjoint and their union is the batch.
    The share keeps the batch's order."""
    loads = [(0, 0)] * world_size
    owner = [0] * len(global_batch)
    by_cost = sorted(range(len(global_batch)),
                     key=lambda i: (-n_trained(global_batch[i]), -len(global_batch[i].input_ids), i))
    for i in by_cost:
        r = min(range(world_size), key=lambda k: (loads[k], k))
        owner[i] = r
        trained, tokens = loads[r]
        loads[r] = (trained + n_trained(global_batch[i]), tokens + len(global_batch[i].input_ids))
    return [ex for i, ex in enumerate(global_batch) if owner[i] == rank]


def pass_token_budget(micro_batch_size: int, max_seq_len: int) -> int:
    """Tokens one forward pass may hold: what `micro_batch_size` rows of `max_seq_len` hold, the
    shape the planner's memory estimate is made for."""
    return micro_batch_size * max_seq_len


def micro_batches(share: Sequence[HasTrained], token_budget: int, packing: bool) -> list[list]:
    """Forward passes of one rank for one step, each of at most `token_budget` tokens; every
    example of the share lands in exactly one pass, whole (a unit that must stay together, such
    as a preference pair, is passed as one item). With packing: best-fit-decreasing bins (rows
    binned by length, so passes are full). Without: the share's order is kept and a pass closes
    when the next row would not fit.

    e.g. rows of 5, 3, 4, 2 tokens with a budget of 8: packing [[5, 3], [4, 2]], in order [[5, 3], [4, 2]].
    """
    if not share:
        return []
    if packing:
        from ..packing import pack
        return [list(b) for b in pack(list(share), token_budget)]
    passes: list[list] = [[]]
    used = 0
    for example in share:
        n = len(example.input_ids)
        if passes[-1] and used + n > token_budget:
            passes.append([])
            used = 0
        passes[-1].append(example)
        used += n
    return passes
