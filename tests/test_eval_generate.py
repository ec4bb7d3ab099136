"""Batched generation: left padding gives each prompt the answer it gets alone (transformers'
unbatched greedy generate is the reference), answers come back in order and stop at the end of
the turn, and sampling leaves the training RNG where it was."""
from __future__ import annotations

import pytest
import torch

from trainer_backend.models.generate import Sampling, cut_at_stop, generate, left_padded

QUESTIONS = ["Hi", "What is the capital of France? Answer in one word, please.", "2+2?",
             "Name three colours of the rainbow and say which one you like best.", "Why?"]


@pytest.fixture(scope="module")
def tiny(tiny_llama_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_llama_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir, dtype=torch.float32)
    return model, tokenizer


def prompts(tokenizer) -> list[list[int]]:
    return [tokenizer.apply_chat_template([{"role": "user", "content": q}], add_generation_prompt=True, tokenize=True,
                                          return_dict=True)["input_ids"] for q in QUESTIONS]


def test_left_padding():
    ids, mask = left_padded([[5, 6, 7], [8]], pad_id=0, device=torch.device("cpu"))
    assert ids.tolist() == [[5, 6, 7], [0, 0, 8]] and mask.tolist() == [[1, 1, 1], [0, 0, 1]]


def test_batched_greedy_answers_equal_one_prompt_at_a_time(tiny):
    model, tokenizer = tiny
    ps = prompts(tokenizer)
    assert len({len(p) for p in ps}) >= 4   # the batches need padding
    stop = [tokenizer.eos_token_id]
    batched = generate(model, ps, pad_id=tokenizer.pad_token_id, stop_ids=stop, sampling=Sampling(max_new_tokens=12),
                       batch_size=3)
    for p, answer in zip(ps, batched):
        with torch.no_grad():
            alone = model.generate(torch.tensor([p]), max_new_tokens=12, do_sample=False,
                                   pad_token_id=tokenizer.pad_token_id, eos_token_id=stop)
        assert answer == cut_at_stop(alone[0, len(p):].tolist(), set(stop))
    assert any(len(a) == 12 for a in batched)   # a random model rarely stops: answers are real tokens
    assert model.training is False


def test_answers_stop_at_the_first_stop_token():
    assert cut_at_stop([5, 6, 2, 7, 2], {2}) == [5, 6]
    assert cut_at_stop([5, 6], {2}) == [5, 6]


def test_sampling_is_seeded_and_leaves_the_training_rng_alone(tiny):
    model, tokenizer = tiny
    model.train()
    ps = prompts(tokenizer)[:2]
    sampling = Sampling(max_new_tokens=6, temperature=1.0, seed=3)
    torch.manual_seed(123)
    before = torch.get_rng_state()
    first = generate(model, ps, pad_id=tokenizer.pad_token_id, stop_ids=[tokenizer.eos_token_id], sampling=sampling)
    assert torch.equal(torch.get_rng_state(), before)
    assert generate(model, ps, pad_id=tokenizer.pad_token_id, stop_ids=[tokenizer.eos_token_id], sampling=sampling) == first
    assert model.training is True   # the mode it had


def test_an_empty_prompt_is_refused(tiny):
    model, tokenizer = tiny
    with pytest.raises(ValueError, match="at least one token"):
        generate(model, [[1, 2], []], pad_id=0, stop_ids=[0])
