"""The loop's arithmetic: parity with the transformers Trainer, accumulation equivalence,
exact resume, and the OOM path. Tiny random llama (real SmolLM2 tokenizer), fp32, CPU."""
from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch

from trainer_backend.config import RunConfig
from trainer_backend.models.loading import load_for_training
from trainer_backend.templates.example import Example
from trainer_backend.train.events import read_events
from trainer_backend.train.loop import StopFlag
from tiny_runs import (CPU, TRAINER_ARGS, InOrder, assert_same_losses, assert_trained_alike, fit_tiny,
                       padded_collate, tiny_run_config, trainer_rows)


def make_examples(n: int, seed: int = 0, min_len: int = 6, max_len: int = 40) -> list[Example]:
    """Rows of uneven length; the first ~third is an untrained prompt, the rest is trained."""
    rng = random.Random(seed)
    out = []
    for row in range(n):
        length = rng.randint(min_len, max_len)
        ids = [rng.randrange(100, 5000) for _ in range(length)]
        prompt = max(1, length // 3)
        out.append(Example(row=row, input_ids=ids, trained=[i >= prompt for i in range(length)], text=""))
    return out


def run_config(model_dir: Path, job_dir: Path, packing: bool = False, dropout: float = 0.0, **train) -> RunConfig:
    train = {"micro_batch_size": 2, "grad_accum": 1, "lr": 1e-3, "scheduler": "cosine", "warmup_steps": 2,
             "max_grad_norm": 1.0, **train}
    return tiny_run_config(model_dir, job_dir, packing=packing, lora={"dropout": dropout}, **train)


def run_fit(cfg: RunConfig, examples: list[Example], job_dir: Path, stop: StopFlag | None = None,
            resume: bool = False):
    return fit_tiny(cfg, examples, job_dir, pad_id=2, stop=stop, resume=resume)


def trainable_state(loaded) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in loaded.trainable()}


def step_losses(job_dir: Path) -> dict[int, float]:
    return {e["step"]: e["loss"] for e in read_events(job_dir, "train")}


# ---- parity with the transformers Trainer ------------------------------------------------------
def test_ten_steps_match_transformers_trainer(tiny_llama_dir, tmp_path):
    from transformers import Trainer, TrainingArguments

    examples = make_examples(40, seed=1)
    cfg = run_config(tiny_llama_dir, tmp_path / "ours", micro_batch_size=2, grad_accum=2, max_steps=10)
    ours, _ = run_fit(cfg, examples, tmp_path / "ours")
    our_losses = step_losses(tmp_path / "ours")

    rows = trainer_rows(examples, 4, cfg.train.seed, steps=10)   # 2 sequences x 2 micro-steps a step

    class InOrderTrainer(InOrder, Trainer):
        pass

    args = TrainingArguments(output_dir=str(tmp_path / "hf"), per_device_train_batch_size=2,
                             gradient_accumulation_steps=2, max_steps=10, learning_rate=1e-3,
                             lr_scheduler_type="cosine", warmup_steps=2, max_grad_norm=1.0,
                             remove_unused_columns=False, **TRAINER_ARGS)
    trainer = InOrderTrainer(model=load_for_training(cfg, CPU).model, args=args, train_dataset=rows,
                             data_collator=padded_collate(2))
    trainer.train()
    hf_losses = [sum(trainer.micro_losses[i:i + 2]) for i in range(0, 20, 2)]
    assert_same_losses([our_losses[s] for s in sorted(our_losses)], hf_losses, steps=10)
    assert_trained_alike(ours, trainer.model, cfg, atol=1e-5)


# ---- accumulation and packing are exact regroupings of the same batch ---------------------------
@pytest.mark.parametrize("packing", [False, True])
def test_accumulation_equals_one_big_batch(tiny_llama_dir, tmp_path, packing):
    examples = make_examples(24, seed=2)
    small = run_config(tiny_llama_dir, tmp_path / "a", micro_batch_size=2, grad_accum=4, max_steps=3,
                       packing=packing)
    big = run_config(tiny_llama_dir, tmp_path / "b", micro_batch_size=8, grad_accum=1, max_steps=3,
                     packing=packing)
    a, _ = run_fit(small, examples, tmp_path / "a")
    b, _ = run_fit(big, examples, tmp_path / "b")
    wa, wb = trainable_state(a), trainable_state(b)
    start = trainable_state(load_for_training(small, CPU))
    assert any((wa[n] - start[n]).abs().max() > 1e-3 for n in wa), "the weights must have moved"
    for name in wa:
        torch.testing.assert_close(wa[name], wb[name], atol=1e-5, rtol=0)
    la, lb = step_losses(tmp_path / "a"), step_losses(tmp_path / "b")
    assert la == pytest.approx(lb, abs=1e-5)


def test_packed_rows_do_not_attend_across_boundaries(tiny_llama_dir, tmp_path):
    """Best-fit packing and in-order passes group the same rows differently into document-masked rows:
    the step loss is the same, each row sees only itself (the Trainer parity test above compares the
    in-order passes with transformers' own padded batches)."""
    examples = make_examples(8, seed=3)
    padded = run_config(tiny_llama_dir, tmp_path / "p", micro_batch_size=8, max_steps=1, packing=False)
    packed = run_config(tiny_llama_dir, tmp_path / "k", micro_batch_size=8, max_steps=1, packing=True)
    run_fit(padded, examples, tmp_path / "p")
    run_fit(packed, examples, tmp_path / "k")
    assert step_losses(tmp_path / "k")[1] == pytest.approx(step_losses(tmp_path / "p")[1], abs=1e-5)


def test_a_packed_pass_of_one_length_runs_as_a_plain_batch_with_the_same_loss(tiny_llama_dir, tmp_path):
    """Sequences of one length need no block mask: the pass is an (n, L) batch without positions,
    and its loss equals the document-masked packed row's. Mixed lengths stay one packed row,
    rounded up to a multiple of the attention block by an untrained tail of its own."""
    from torch.nn.attention.flex_attention import BlockMask

    from trainer_backend.models.attention import BLOCK
    from trainer_backend.packing import collate_packed
    from trainer_backend.train.passes import pass_inputs

    cfg = run_config(tiny_llama_dir, tmp_path / "j", packing=True)
    assert cfg.model.attn_implementation == "flex"
    same = make_examples(3, seed=5, min_len=24, max_len=24)
    mixed = make_examples(3, seed=6, min_len=6, max_len=40)
    assert len({len(e.input_ids) for e in mixed}) > 1
    plain = pass_inputs(same, cfg, pad_id=2, device=CPU)
    assert plain["input_ids"].shape == (3, 24) and set(plain) == {"input_ids", "labels"}
    packed_mixed = pass_inputs(mixed, cfg, pad_id=2, device=CPU)
    real = sum(len(e.input_ids) for e in mixed)
    assert packed_mixed["input_ids"].shape == (1, BLOCK) and real < BLOCK
    assert packed_mixed["position_ids"][0].tolist() == \
        [p for e in mixed for p in range(len(e.input_ids))] + list(range(BLOCK - real))
    assert packed_mixed["input_ids"][0, real:].tolist() == [2] * (BLOCK - real)
    assert set(packed_mixed["labels"][0, real:].tolist()) == {-100}
    assert isinstance(packed_mixed["attention_mask"], BlockMask)

    model = load_for_training(cfg, CPU).model
    n = torch.tensor(float(sum(e.n_trained for e in same)))
    row = collate_packed(same)
    with torch.no_grad():
        as_batch = model(**plain, num_items_in_batch=n, use_cache=False).loss
        as_row = model(input_ids=row.input_ids, labels=row.labels, position_ids=row.position_ids,
                       num_items_in_batch=n, use_cache=False).loss
    assert as_batch.item() == pytest.approx(as_row.item(), abs=1e-5)


# ---- resume continues the same trajectory -------------------------------------------------------
class StopAfter(StopFlag):
    """Requests a stop once `n` train events are written, as SIGTERM would mid-run."""

    def __init__(self, job_dir: Path, n: int):
        super().__init__()
        self.job_dir, self.n = job_dir, n

    def is_set(self) -> bool:
        return len(read_events(self.job_dir, "train")) >= self.n


def test_stop_and_resume_equals_straight_run(tiny_llama_dir, tmp_path):
    examples = make_examples(16, seed=4)
    # dropout makes the trajectory depend on the restored RNG state; 16 rows / 4 = a new epoch at step 5
    straight_cfg = run_config(tiny_llama_dir, tmp_path / "s", micro_batch_size=2, grad_accum=2, max_steps=10,
                              dropout=0.1)
    straight, _ = run_fit(straight_cfg, examples, tmp_path / "s")

    job = tmp_path / "r"
    cfg = run_config(tiny_llama_dir, job, micro_batch_size=2, grad_accum=2, max_steps=10, dropout=0.1)
    # Requested once step 5 is logged: the request rides on step 6's exchange, which every rank
    # (of a multi-worker run) reads before doing any work of step 6, so the run stops after step 5.
    _, first = run_fit(cfg, examples, job, stop=StopAfter(job, 5))
    assert (first.status, first.step) == ("stopped", 5)
    assert read_events(job, "status")[-1]["status"] == "stopped"
    assert (job / "checkpoints" / "step_5" / "state.json").exists()
    resumed, second = run_fit(cfg, examples, job, resume=True)
    assert (second.status, second.step) == ("completed", 10)

    a, b = step_losses(tmp_path / "s"), step_losses(job)
    assert sorted(b) == list(range(1, 11))
    for step in range(1, 11):
        assert b[step] == pytest.approx(a[step], abs=1e-6), f"step {step}"
    wa, wb = trainable_state(straight), trainable_state(resumed)
    for name in wa:
        assert torch.equal(wa[name], wb[name]), name
