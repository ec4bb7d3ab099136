"""Batched generation for evaluation (and any caller with many prompts): prompts of token ids are
sorted by length, left-padded into batches and answered in one `generate` call a batch, on the
device the model is on; answers come back in the prompts' order, cut at the first stop token.

Left padding keeps every prompt's last token at the end of its row, so each answer starts right
after its own prompt; with the attention mask, transformers derives position ids that ignore the
pads. A batched greedy answer equals the answer to the same prompt alone (tests check this).
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Iterator, Sequence

import torch


@dataclass(frozen=True)
class Sampling:
    max_new_tokens: int = 64
    temperature: float = 0.0          # 0 = greedy
    top_p: float = 1.0
    seed: int = 0                     # sampling draws from its own generator state; training RNG is left as it was


def _generation_config(sampling: Sampling, pad_id: int, stop_ids: Sequence[int]):
    from transformers import GenerationConfig

    sample = sampling.temperature > 0
    return GenerationConfig(max_new_tokens=sampling.max_new_tokens, do_sample=sample,
                            temperature=sampling.temperature if sample else None,
                            top_p=sampling.top_p if sample else None, top_k=None,
                            pad_token_id=pad_id, eos_token_id=list(stop_ids), use_cache=True)


@contextlib.contextmanager
def inference(model: torch.nn.Module, engine: str = "hf") -> Iterator[None]:
    """Eval mode (no dropout) and, on the unsloth engine, its inference path; the previous mode
    is restored afterwards so training continues as before."""
    was_training = model.training
    if engine == "unsloth":
        from unsloth import FastLanguageModel
        FastLanguageModel.for_inference(model)
    model.eval()
    try:
        with torch.inference_mode():
            yield
    finally:
        if engine == "unsloth":
            from unsloth import FastLanguageModel
            FastLanguageModel.for_training(model)
        model.train(was_training)


def left_padded(prompts: Sequence[Sequence[int]], pad_id: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(input_ids, attention_mask) of shape (n, longest): pads on the left, mask 0 over them.

    >>> left_padded([[5, 6, 7], [8]], pad_id=0, device=torch.device("cpu"))[0].tolist()
    [[5, 6, 7], [0, 0, 8]]
    """
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for i, p in enumerate(prompts):
        if p:
            ids[i, width - len(p):] = torch.tensor(list(p), dtype=torch.long)
            mask[i, width - len(p):] = 1
    return ids.to(device), mask.to(device)


def cut_at_stop(tokens: Sequence[int], stop_ids: set[int]) -> list[int]:
    """The tokens before the first stop; generate pads a finished row only after its stop token."""
    out = []
    for t in tokens:
        if t in stop_ids:
            break
        out.append(int(t))
    return out


def generate(model: torch.nn.Module, prompts: Sequence[Sequence[int]], *, pad_id: int, stop_ids: Sequence[int],
             sampling: Sampling = Sampling(), batch_size: int = 8, engine: str = "hf") -> list[list[int]]:
    """The answer tokens (without the stop token) to every prompt, in order. Every prompt must be
    non-empty. Callers pick `batch_size` for memory: a batch holds batch_size × (longest prompt +
    max_new_tokens) positions of KV cache."""
    if any(len(p) == 0 for p in prompts):
        raise ValueError("generate: every prompt needs at least one token")
    device = next(model.parameters()).device
    config = _generation_config(sampling, pad_id, stop_ids)
    stops = set(stop_ids)
    order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
    answers: list[list[int]] = [[] for _ in prompts]
    devices = [device] if device.type == "cuda" else []
    with inference(model, engine), torch.random.fork_rng(devices=devices):
        torch.manual_seed(sampling.seed)
        for start in range(0, len(order), batch_size):
            chunk = order[start:start + batch_size]
            ids, mask = left_padded([prompts[i] for i in chunk], pad_id, device)
            out = model.generate(input_ids=ids, attention_mask=mask, generation_config=config)
            for row, i in enumerate(chunk):
                answers[i] = cut_at_stop(out[row, ids.shape[1]:].tolist(), stops)
    return answers
