"""Preference objectives in the loop (tiny random llama, CPU, fp32): the reference is the initial
model in both of its forms, and accumulation regroups the same global batch exactly."""
from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest
import torch

from trainer_backend.data import load_dataset
from trainer_backend.models.loading import load_for_training
from trainer_backend.templates import load_tokenizer
from trainer_backend.templates.pairs import build_preference_examples
from trainer_backend.train.events import read_events
from tiny_runs import CPU, fit_tiny, tiny_run_config


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("objective-data")
    rng = random.Random(0)
    words = lambda p: " ".join(f"{p}{rng.randrange(40)}" for _ in range(rng.randint(1, 12)))  # noqa: E731
    pairs, kto = tmp / "pairs.jsonl", tmp / "kto.jsonl"
    pairs.write_text("".join(json.dumps({"prompt": f"Q{i} {words('q')}", "chosen": words("a"),
                                         "rejected": words("b")}) + "\n" for i in range(16)))
    kto.write_text("".join(json.dumps({"prompt": f"Q{i} {words('q')}", "completion": words("a"),
                                       "label": i % 3 != 0}) + "\n" for i in range(16)))
    return {"pairs": pairs, "kto": kto}


def run(model_dir: Path, data: Path, job: Path, objective: str, method: str = "lora", micro: int = 4,
        accum: int = 1, steps: int = 2, packing: bool = False):
    cfg = tiny_run_config(model_dir, job, method=method, packing=packing, objective=objective, micro_batch_size=micro,
                          grad_accum=accum, lr=1e-3, scheduler="constant", max_steps=steps)
    tokenizer = load_tokenizer(str(model_dir))
    units, _ = build_preference_examples(load_dataset(data).conversations, tokenizer, cfg.template)
    loaded, _ = fit_tiny(cfg, units, job, pad_id=tokenizer.pad_token_id, evals=units[:4])
    return {n: p.detach().clone() for n, p in loaded.trainable()}, read_events(job, "train")


@pytest.mark.parametrize("method", ["lora", "full"])
def test_the_first_dpo_step_sees_the_policy_as_its_own_reference(tiny_llama_dir, files, tmp_path, method):
    """LoRA: the reference is the model with adapters disabled, and B = 0 makes them equal at step 1.
    Full fine-tuning: the reference log-probs are computed before the first update."""
    _, events = run(tiny_llama_dir, files["pairs"], tmp_path / method, "dpo", method=method)
    first, second = events
    assert first["loss"] == pytest.approx(math.log(2), abs=1e-6)
    assert first["rewards_chosen"] == pytest.approx(0, abs=1e-6) and first["reward_margin"] == pytest.approx(0, abs=1e-6)
    assert second["reward_margin"] > 0 and second["loss"] < math.log(2)   # the update separates the pairs
    assert {e["kind"] for e in read_events(tmp_path / method)} >= {"train", "eval"}


@pytest.mark.parametrize("objective,data,packing", [("orpo", "pairs", True), ("kto", "kto", False),
                                                    ("simpo", "pairs", False)])   # DPO: the multi-worker test
def test_accumulation_equals_one_big_batch(tiny_llama_dir, files, tmp_path, objective, data, packing):
    """Global normalization: ORPO's NLL by all chosen tokens of the step, KTO's KL over the whole
    step, every loss by the step's unit count."""
    a, ea = run(tiny_llama_dir, files[data], tmp_path / "a", objective, micro=2, accum=4, packing=packing)
    b, eb = run(tiny_llama_dir, files[data], tmp_path / "b", objective, micro=8, accum=1, packing=packing)
    start = dict(load_for_training(tiny_run_config(tiny_llama_dir, tmp_path / "c"), CPU).trainable())
    assert any((a[n] - start[n]).abs().max() > 1e-4 for n in a), "the weights must have moved"
    for name in a:
        torch.testing.assert_close(a[name], b[name], atol=1e-5, rtol=0)
    for x, y in zip(ea, eb):
        for key in ("loss", "rewards_chosen", "rewards_rejected", "nll_loss", "kl"):
            if key in x:
                assert x[key] == pytest.approx(y[key], abs=1e-5), key


@pytest.mark.parametrize("packing", [False, True])
def test_the_chunked_lm_head_gives_the_whole_logits_logps_and_gradients(tiny_llama_dir, files, monkeypatch, packing,
                                                                         tmp_path):
    """Chunks of 7 positions, recomputed in the backward: the same log-probs and the same adapter
    gradients as the model's own forward with its whole (positions x vocabulary) logits."""
    from trainer_backend.train.objectives import logps

    cfg = tiny_run_config(tiny_llama_dir, tmp_path, packing=packing, objective="dpo", micro_batch_size=4)
    tokenizer = load_tokenizer(str(tiny_llama_dir))
    units, _ = build_preference_examples(load_dataset(files["pairs"]).conversations, tokenizer, cfg.template)
    sequences = [u.chosen for u in units[:3]] + [u.rejected for u in units[:3]]
    model = load_for_training(cfg, CPU).model
    for p in model.parameters():  # LoRA B starts at zero: give the adapters a gradient path that matters
        if p.requires_grad:
            torch.nn.init.normal_(p, std=0.02)

    def logps_and_grads(chunk: int):
        monkeypatch.setattr(logps, "LOGP_HEAD_CHUNK", chunk)
        model.zero_grad(set_to_none=True)
        out = logps.sequence_logps(model, sequences, cfg, tokenizer.pad_token_id, CPU).completion
        out.sum().backward()
        return out.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}

    whole, whole_grads = logps_and_grads(10 ** 6)
    chunked, chunked_grads = logps_and_grads(7)
    with torch.no_grad():   # the reference: each sequence alone through the model's own forward
        expected = []
        for e in sequences:
            logits = model(input_ids=torch.tensor([e.input_ids]), use_cache=False).logits[0].float()
            token = torch.log_softmax(logits[:-1], -1).gather(-1, torch.tensor(e.input_ids[1:])[:, None]).squeeze(-1)
            expected.append(token[torch.tensor(e.trained[1:])].sum())
    assert torch.allclose(chunked, whole, atol=1e-5)
    assert torch.allclose(chunked, torch.stack(expected), atol=1e-4)
    for name, g in whole_grads.items():
        # fp32 sums in another order: relative to the tensor's largest entry, not to each (near-zero) one
        assert torch.allclose(chunked_grads[name], g, rtol=0, atol=1e-5 * float(g.abs().max())), name
