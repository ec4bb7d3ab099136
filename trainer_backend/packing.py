"""Padding-free packing: several Examples share one row, each keeping its own positions.

A PackedBatch is one row (1, T) with per-sequence position_ids and `cu_seqlens`; attention stays
inside each sequence through a document-causal kernel (models/attention.py: FlexAttention, or
flash-attn varlen), never a dense T x T mask. train/passes.py turns a micro-batch into the model's
keyword arguments for either engine. With transformers' own "sdpa"/"eager" kernels and no
attention_mask, `masking_utils.find_packed_sequence_indices` derives the same block-diagonal mask
from the restarting position_ids (`use_cache=False` matters: with a cache that detection is skipped).
"""
from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Sequence

import torch

from .templates.example import Example

IGNORE_INDEX = -100


def pack(examples: Sequence[Example], token_budget: int) -> list[list[Example]]:
    """Best-fit-decreasing bins of at most `token_budget` tokens; deterministic for the same input."""
    too_long = [e for e in examples if len(e.input_ids) > token_budget]
    if too_long:
        e = too_long[0]
        raise ValueError(f"row {e.row} has {len(e.input_ids)} tokens, more than the packing budget of {token_budget}: "
                         "set template.max_seq_len to at most the budget")
    order = sorted(range(len(examples)), key=lambda i: (-len(examples[i].input_ids), i))
    bins: list[list[Example]] = []
    free: list[tuple[int, int]] = []  # (tokens left, bin index), sorted: the tightest fit is found by bisect
    for i in order:
        need = len(examples[i].input_ids)
        slot = bisect.bisect_left(free, (need, -1))
        if slot == len(free):
            bins.append([examples[i]])
            left, b = token_budget - need, len(bins) - 1
        else:
            left, b = free.pop(slot)
            bins[b].append(examples[i])
            left -= need
        bisect.insort(free, (left, b))
    return bins


@dataclass
class PackedBatch:
    """One row holding several sequences back to back (shape (1, T), no padding).

    Run it as `model(input_ids=input_ids, position_ids=position_ids, use_cache=False)` and pass
    `labels` (HF-shifted, -100 where not trained). Shifting never crosses a boundary because the first
    token of every sequence is untrained. `cu_seqlens` (int32, starts with 0) and `max_seqlen` serve
    varlen attention kernels; `n_trained` is the loss-normalization count.
    """
    input_ids: torch.Tensor
    labels: torch.Tensor
    position_ids: torch.Tensor
    cu_seqlens: torch.Tensor
    max_seqlen: int
    n_trained: int


@dataclass
class PaddedBatch:
    """Right-padded rows (B, T) with an attention mask; pad tokens are never trained."""
    input_ids: torch.Tensor
    labels: torch.Tensor
    attention_mask: torch.Tensor
    n_trained: int


def collate_packed(examples: Sequence[Example], pad_id: int = 0, multiple: int = 1) -> PackedBatch:
    """Examples back to back in one row; with `multiple` > 1 the row is rounded up to a multiple of
    it by an untrained tail of `pad_id` tokens that is a document of its own (its positions restart
    at 0 and `cu_seqlens` ends it), so it attends only to itself and never changes a real token.

    e.g. b = collate_packed([ex_a, ex_b], pad_id=0, multiple=8)   # 3 + 4 tokens
    b.cu_seqlens.tolist(), b.position_ids.tolist()
    -> ([0, 3, 7, 8], [[0, 1, 2, 0, 1, 2, 3, 0]])
    """
    if not examples:
        raise ValueError("collate_packed needs at least one example")
    ids = [t for e in examples for t in e.input_ids]
    labels = [t for e in examples for t in e.labels()]
    lengths = [len(e.input_ids) for e in examples]
    tail = -len(ids) % multiple
    if tail:
        ids += [pad_id] * tail
        labels += [IGNORE_INDEX] * tail
        lengths.append(tail)
    positions = [p for n in lengths for p in range(n)]
    cu = torch.tensor([0] + lengths, dtype=torch.int32).cumsum(0, dtype=torch.int32)
    return PackedBatch(
        input_ids=torch.tensor([ids], dtype=torch.long),
        labels=torch.tensor([labels], dtype=torch.long),
        position_ids=torch.tensor([positions], dtype=torch.long),
        cu_seqlens=cu,
        max_seqlen=max(lengths),
        n_trained=sum(e.n_trained for e in examples),
    )


def collate_padded(examples: Sequence[Example], pad_id: int) -> PaddedBatch:
    if not examples:
        raise ValueError("collate_padded needs at least one example")
    width = max(len(e.input_ids) for e in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE_INDEX, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    for row, e in enumerate(examples):
        n = len(e.input_ids)
        ids[row, :n] = torch.tensor(e.input_ids, dtype=torch.long)
        labels[row, :n] = torch.tensor(e.labels(), dtype=torch.long)
        mask[row, :n] = 1
    return PaddedBatch(input_ids=ids, labels=labels, attention_mask=mask, n_trained=sum(e.n_trained for e in examples))
