"""One forward pass's keyword arguments: a micro-batch laid out padding-free for the run's engine
and attention kernel (`model.attn_implementation`, made concrete by models.engine.resolve_engine).

Every micro-batch, packed or not, runs as ONE row (1, T) of its sequences back to back, each with
positions restarting at 0, rounded up to a multiple of attention.BLOCK by an untrained tail that is
a document of its own; attention stays inside each document:
  - "flex", hf engine: the document-causal BlockMask goes in as `attention_mask` (transformers
    passes a 4-D mask through to the registered kernel untouched);
  - "flex", unsloth engine: the BlockMask rides on the `packed_seq_lengths` tensor that Unsloth's
    attention reads (models/unsloth_attention.py);
  - "flash_attention_2": flash-attn varlen takes the boundaries from the position ids (hf) or from
    `packed_seq_lengths` (unsloth);
  - "sdpa" / "eager" (hf): transformers derives its block-diagonal mask from the position ids.
A pass whose sequences all have one length (fixed-length data) goes as a plain (n, L) causal batch
instead: no mask and no tail is the fastest path there is.

    model(**pass_inputs(examples, cfg, pad_id, device), num_items_in_batch=n, use_cache=False)
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch

from ..config import PREFERENCE_OBJECTIVES, RunConfig
from ..models.attention import BLOCK, document_block_mask
from ..models.unsloth_attention import MASK_ATTRIBUTE
from ..packing import collate_packed
from ..templates.example import Example
from .batching import micro_batches, pass_token_budget


def step_passes(share: Sequence[Example], cfg: RunConfig) -> list[list[Example]]:
    """This rank's share of a step cut into passes of at most the planned token budget. A
    preference pair is one unit of `micro_batch_size` holding two sequences."""
    sequences = 2 if cfg.train.objective in PREFERENCE_OBJECTIVES else 1
    budget = pass_token_budget(int(cfg.train.micro_batch_size), sequences * cfg.template.max_seq_len)
    return micro_batches(share, budget, cfg.template.packing)


def plain_batch(examples: Sequence[Example]) -> bool:
    return len({len(e.input_ids) for e in examples}) == 1


def pass_inputs(examples: Sequence[Example], cfg: RunConfig, pad_id: int, device: torch.device) -> dict:
    if plain_batch(examples):
        ids = torch.tensor([e.input_ids for e in examples], dtype=torch.long)
        labels = torch.tensor([e.labels() for e in examples], dtype=torch.long)
        return dict(input_ids=ids.to(device, non_blocking=True), labels=labels.to(device, non_blocking=True))
    b = collate_packed(examples, pad_id, multiple=BLOCK)
    inputs = {k: v.to(device, non_blocking=True)
              for k, v in dict(input_ids=b.input_ids, labels=b.labels, position_ids=b.position_ids).items()}
    flex = cfg.model.attn_implementation == "flex"
    total = b.input_ids.shape[1]
    if cfg.model.engine == "unsloth":
        lengths = b.cu_seqlens.diff().to(device, non_blocking=True)  # int32: Unsloth keeps this very tensor
        if flex:
            setattr(lengths, MASK_ATTRIBUTE, document_block_mask(lengths, device, total))
            lengths.max_length = b.max_seqlen
        inputs["packed_seq_lengths"] = lengths
    elif flex:
        inputs["attention_mask"] = document_block_mask(b.cu_seqlens.diff().to(device), device, total)
    return inputs


def backward_passes(model: torch.nn.Module, passes: list[list], sync, scaler, device: torch.device,
                    loss_of: Callable[[list], torch.Tensor]) -> torch.Tensor:
    """Backward of `loss_of(pass)` for every pass of this rank (the last one lets the ranks sum
    their gradients); returns the sum of the pass losses, this rank's share of the step loss."""
    step_loss = torch.zeros((), dtype=torch.float32, device=device)
    for i, units in enumerate(passes):
        if i == len(passes) - 1:
            sync.before_last_backward()
        loss = loss_of(units)
        (scaler.scale(loss) if scaler is not None else loss).backward()
        step_loss += loss.detach().float()
    if not passes:
        zero_missing_grads(model)
    sync.finish()
    return step_loss


def zero_missing_grads(model: torch.nn.Module) -> None:
    """A rank with nothing to run this step (more ranks than units) still adds its zero gradients
    to the sum, so that every rank takes part in the exchange."""
    for p in model.parameters():
        if p.requires_grad and p.grad is None:
            p.grad = torch.zeros_like(p)
