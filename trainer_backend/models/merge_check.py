"""Measure what storing a merged model costs: logits and greedy answers of the exact model
(base + adapter in fp32, unmerged) against the merged model with its weights rounded to the
storage dtype (run in fp32, so that only the rounding of the weights is measured)."""
from __future__ import annotations

from dataclasses import dataclass

import torch

PROMPTS = ("What is the capital of France?", "Write one sentence about the sea.",
           "Xin chào! Hôm nay bạn thế nào?")
ANSWER_TOKENS = 16


@dataclass
class Answers:
    logits: list[torch.Tensor]    # next-token logits at every prompt position, one per prompt
    greedy: list[list[int]]       # greedy continuation ids, one per prompt


def prompt_ids(tokenizer) -> list[torch.Tensor]:
    out = []
    for text in PROMPTS:
        if tokenizer.chat_template:
            ids = tokenizer.apply_chat_template([{"role": "user", "content": text}], add_generation_prompt=True,
                                                return_dict=True)["input_ids"]
        else:
            ids = tokenizer(text)["input_ids"]
        out.append(torch.tensor([ids]))
    return out


@torch.no_grad()
def answers(model: torch.nn.Module, prompts: list[torch.Tensor], pad_id: int | None) -> Answers:
    model.eval()
    logits, greedy = [], []
    for ids in prompts:
        logits.append(model(input_ids=ids).logits[0].float())
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=ANSWER_TOKENS,
                             do_sample=False, pad_token_id=pad_id)
        greedy.append(out[0, ids.shape[1]:].tolist())
    return Answers(logits, greedy)


def compare(reference: Answers, merged: Answers) -> tuple[float, int]:
    """(max absolute logit difference, number of prompts whose greedy answers are equal)."""
    diff = max(float((a - b).abs().max()) for a, b in zip(reference.logits, merged.logits))
    agree = sum(a == b for a, b in zip(reference.greedy, merged.greedy))
    return diff, agree
