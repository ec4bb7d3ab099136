"""Per-sequence log-probabilities of one forward pass: the quantity every preference loss reads.

The sequences of a pass go through the model's decoder in the loop's own layout (one packed row
with per-sequence positions and an untrained tail, or a plain batch of equal lengths, see
`passes.pass_inputs`). Only the positions that predict a scored token are projected through the
LM head, LOGP_HEAD_CHUNK positions at a time, and each chunk's logits are recomputed in the backward
instead of kept: the (tokens × vocabulary) fp32 logits, the largest buffer of a preference step
(1.3 GB for 2,000 tokens of a 152k vocabulary), never exist whole, and one chunk holds one fp32
buffer at a time (`HeadLogps`). The planner counts that chunk (planner/estimate.logits_bytes).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ...config import LOGP_HEAD_CHUNK, RunConfig
from ...templates.example import Example
from ..passes import pass_inputs


@dataclass
class SequenceLogps:
    completion: torch.Tensor       # (n,) summed log-probs of each sequence's trained tokens
    completion_len: torch.Tensor   # (n,) trained tokens
    whole: torch.Tensor            # (n,) summed log-probs of every token after the first (for `whole` sequences)
    whole_len: torch.Tensor        # (n,)


def _token_table(examples: list[Example], packed: bool, width: int):
    """(sequence index, trained, first token) of every position of the pass's input layout, on the
    host; -1 marks positions of no sequence (a packed row's tail)."""
    rows = 1 if packed else len(examples)
    seq = torch.full((rows, width), -1, dtype=torch.long)
    trained = torch.zeros((rows, width), dtype=torch.bool)
    first = torch.zeros((rows, width), dtype=torch.bool)
    offset = 0
    for i, e in enumerate(examples):
        r, start = (0, offset) if packed else (i, 0)
        n = len(e.input_ids)
        seq[r, start:start + n] = i
        trained[r, start:start + n] = torch.tensor(e.trained, dtype=torch.bool)
        first[r, start] = True
        offset += n
    return seq, trained, first


def sequence_logps(model: torch.nn.Module, examples: list[Example], cfg: RunConfig, pad_id: int,
                   device: torch.device, whole: list[bool] | None = None) -> SequenceLogps:
    """`whole[i]`: also score every token of sequence i after its first (ORPO's NLL on the chosen
    sequence, prompt included, as TRL and the ORPO authors compute it)."""
    inputs = pass_inputs(examples, cfg, pad_id, device)
    inputs.pop("labels")
    ids = inputs["input_ids"]
    seq, trained, first = _token_table(examples, "position_ids" in inputs, ids.shape[1])
    flags = torch.tensor(whole or [False] * len(examples), dtype=torch.bool)
    scored_whole = (seq >= 0) & ~first & flags[seq.clamp(min=0)]
    # Positions whose next token is scored, and each one's sequence, found on the host: a nonzero()
    # or boolean indexing on the device would wait for it.
    nxt = (trained | scored_whole)[:, 1:].any(0).nonzero().squeeze(1) + 1
    at, trained, scored_whole = seq[:, nxt].clamp(min=0), trained[:, nxt], scored_whole[:, nxt]
    on_device = nxt.to(device, non_blocking=True)
    token_logps = scored_logps(model, inputs, on_device - 1, ids[:, on_device])
    at_flat = at.flatten().to(device, non_blocking=True)
    n = len(examples)

    def per_sequence(mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        values = torch.where(mask.to(device, non_blocking=True), token_logps, 0.0).flatten()
        counts = torch.bincount(at[mask], minlength=n).to(token_logps.dtype)
        return token_logps.new_zeros(n).index_add(0, at_flat, values), counts.to(device, non_blocking=True)

    completion, completion_len = per_sequence(trained)
    whole_sum, whole_len = per_sequence(scored_whole)
    return SequenceLogps(completion, completion_len, whole_sum, whole_len)


def scored_logps(model: torch.nn.Module, inputs: dict, cols: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """log p(targets) at positions `cols` of every row of the pass: the decoder once (both engines
    take the pass's keyword arguments there too), then the LM head chunk by chunk. Preference
    objectives are refused under FSDP, whose root unit gathers the head only in the model's own forward."""
    causal_lm = model.get_base_model() if hasattr(model, "get_base_model") else model
    hidden = causal_lm.get_decoder()(**inputs, use_cache=False)[0][:, cols]   # (rows, k, d), after the final norm
    head = causal_lm.get_output_embeddings()   # a Linear: LoRA never targets the head (loading.NOT_LORA_TARGETS)
    cap = getattr(causal_lm.config, "final_logit_softcapping", None)  # Gemma 2/3 apply it after the head
    flat, flat_targets = hidden.reshape(-1, hidden.shape[-1]), targets.reshape(-1)
    parts = [HeadLogps.apply(flat[i:i + LOGP_HEAD_CHUNK], head.weight, head.bias, flat_targets[i:i + LOGP_HEAD_CHUNK],
                             cap) for i in range(0, flat.shape[0], LOGP_HEAD_CHUNK)]
    return torch.cat(parts).view(targets.shape) if parts else flat.new_zeros(targets.shape, dtype=torch.float32)


def _logits(hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, cap: float | None):
    """(fp32 logits, tanh of the capped ones or None) of one chunk."""
    logits = torch.nn.functional.linear(hidden, weight, bias).float()
    if not cap:
        return logits, None
    t = logits.div_(cap).tanh_()
    return t * cap, t


class HeadLogps(torch.autograd.Function):
    """log p(target) of one chunk of positions through the LM head, the (chunk x vocabulary) fp32
    logits turned into their exponentials, and in the backward recomputed and turned into their
    gradient, in place: one such buffer at a time (two with a softcap), where autograd's
    logsumexp, gather and checkpoint recompute kept four or five. Saved: the chunk's hidden states
    (a view of the pass's), the targets and one log-normalizer per position."""

    @staticmethod
    def forward(ctx, hidden, weight, bias, targets, cap):
        logits = _logits(hidden, weight, bias, cap)[0]
        picked = logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
        top = logits.amax(-1, keepdim=True)
        log_z = logits.sub_(top).exp_().sum(-1).log_().add_(top.squeeze(-1))
        ctx.save_for_backward(hidden, weight, bias, targets, log_z)
        ctx.cap = cap
        return picked - log_z

    @staticmethod
    def backward(ctx, grad):
        hidden, weight, bias, targets, log_z = ctx.saved_tensors
        logits, t = _logits(hidden, weight, bias, ctx.cap)
        # d log p_target / d logit_j = 1[j = target] - p_j
        logits = logits.sub_(log_z.unsqueeze(-1)).exp_().mul_(-grad.unsqueeze(-1))
        logits.scatter_add_(-1, targets.unsqueeze(-1), grad.unsqueeze(-1))
        if t is not None:
            logits.mul_(t.square_().neg_().add_(1))   # through cap * tanh(z / cap)
        g = logits.to(hidden.dtype)
        need_hidden, need_weight, need_bias = ctx.needs_input_grad[:3]
        return (g @ weight if need_hidden else None, g.t() @ hidden if need_weight else None,
                g.sum(0) if need_bias else None, None, None)
