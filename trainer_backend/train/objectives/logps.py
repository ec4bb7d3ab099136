"""Per-sequence log-probabilities of one forward pass: the quantity every preference loss reads.

The sequences of a pass go through the model in the loop's own layout (one packed row with
per-sequence positions and an untrained tail, or a plain batch of equal lengths, see
`passes.pass_inputs`), and only the positions that predict a scored
token are projected through the LM head (`logits_to_keep` with their indices), so the
(tokens × vocabulary) logits of prompts are never built.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ...config import RunConfig
from ...templates.example import Example
from ..passes import pass_inputs


@dataclass
class SequenceLogps:
    completion: torch.Tensor       # (n,) summed log-probs of each sequence's trained tokens
    completion_len: torch.Tensor   # (n,) trained tokens
    whole: torch.Tensor            # (n,) summed log-probs of every token after the first (for `whole` sequences)
    whole_len: torch.Tensor        # (n,)


def _token_table(examples: list[Example], packed: bool, width: int, device: torch.device):
    """(sequence index, trained, first token) of every position of the pass's input layout; -1 marks
    positions of no sequence (a packed row's tail)."""
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
    return seq.to(device), trained.to(device), first.to(device)


def sequence_logps(model: torch.nn.Module, examples: list[Example], cfg: RunConfig, pad_id: int,
                   device: torch.device, whole: list[bool] | None = None) -> SequenceLogps:
    """`whole[i]`: also score every token of sequence i after its first (ORPO's NLL on the chosen
    sequence, prompt included, as TRL and the ORPO authors compute it)."""
    inputs = pass_inputs(examples, cfg, pad_id, device)
    inputs.pop("labels")
    ids = inputs["input_ids"]
    seq, trained, first = _token_table(examples, "position_ids" in inputs, ids.shape[1], device)
    flags = torch.tensor(whole or [False] * len(examples), dtype=torch.bool, device=device)
    scored_whole = (seq >= 0) & ~first & flags[seq.clamp(min=0)]
    scored = trained | scored_whole
    cols = scored[:, 1:].any(0).nonzero().squeeze(1)   # positions whose next token is scored
    logits = _logits(model, inputs, cols, cfg.model.engine).float()
    targets = ids[:, cols + 1]
    token_logps = logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(logits, dim=-1)
    at = seq[:, cols + 1]
    n = len(examples)

    def per_sequence(mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        sums = torch.zeros(n, dtype=token_logps.dtype, device=device).index_add(0, at[mask], token_logps[mask])
        counts = torch.zeros(n, dtype=token_logps.dtype, device=device).index_add(
            0, at[mask], torch.ones_like(token_logps[mask]))
        return sums, counts

    completion, completion_len = per_sequence(trained[:, cols + 1])
    whole_sum, whole_len = per_sequence(scored_whole[:, cols + 1])
    return SequenceLogps(completion, completion_len, whole_sum, whole_len)


def _logits(model: torch.nn.Module, inputs: dict, cols: torch.Tensor, engine: str) -> torch.Tensor:
    """Logits at `cols` only. Unsloth's patched forward takes no index tensor: it gets the whole
    sequence and the columns are picked after."""
    if engine == "unsloth":
        return model(**inputs, use_cache=False).logits[:, cols]
    return model(**inputs, use_cache=False, logits_to_keep=cols).logits
