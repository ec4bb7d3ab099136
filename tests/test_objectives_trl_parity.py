"""End to end on CPU (tiny random llama, fp32, LoRA): 5 optimizer steps of DPO and of ORPO through
our loop equal TRL's DPOTrainer / ORPOTrainer on the same tokenized pairs in the same order.

What is aligned, and why:
- Tokens: TRL's trainers tokenize strings themselves; here they are handed our pairs' token ids
  (the DPOTrainer's dataset preparation and the ORPOTrainer's `tokenize_row` are replaced by
  identity), so both sides train on exactly the ids our template function produced.
- Order: TRL's sampler is made sequential over the rows in our step order.
- ORPO runs one forward pass per step: TRL averages its NLL per micro-batch before accumulation,
  our loop divides by the token count of the whole step (what makes N ranks equal one), and the
  two agree only when the step is one pass. DPO's loss is a mean over pairs, so accumulation
  (2 passes a step) agrees as is, and is tested with it.
- TRL's fused LM head computes log-probs with a Triton kernel, which has no CPU backend: it is
  swapped for the same math in plain torch (trl_reference.torch_fused_lm_head).
- Dropout 0 on both sides (TRL disables model dropout by default), no gradient checkpointing.
"""
from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from trainer_backend.data import load_dataset
from trainer_backend.models.loading import load_for_training
from trainer_backend.templates import load_tokenizer
from trainer_backend.templates.pairs import build_preference_examples
from trainer_backend.train.batching import GlobalBatches
from trainer_backend.train.events import read_events
from tiny_runs import CPU, TRAINER_ARGS, InOrder, assert_same_losses, assert_trained_alike, fit_tiny, tiny_run_config
from trl_reference import torch_fused_lm_head

STEPS = 5
COMMON = dict(max_steps=STEPS, learning_rate=5e-3, lr_scheduler_type="cosine", warmup_steps=1, max_grad_norm=1.0,
              bf16=False, gradient_checkpointing=False, **TRAINER_ARGS)


def write_pairs(path: Path, n: int = 24) -> Path:
    rng = random.Random(0)
    words = lambda prefix: " ".join(f"{prefix}{rng.randrange(40)}" for _ in range(rng.randint(1, 14)))  # noqa: E731
    path.write_text("".join(json.dumps({"prompt": f"Question {i}: {words('q')}?", "chosen": words("a"),
                                        "rejected": words("b")}) + "\n" for i in range(n)))
    return path


def our_run(model_dir: Path, data: Path, job: Path, objective: str, micro: int, accum: int):
    cfg = tiny_run_config(model_dir, job, max_seq_len=128, lora={"dropout": 0.0},
                          sections={"data": {"path": str(data)}, "preference": {"beta": 0.1, "orpo_lambda": 0.1}},
                          objective=objective, micro_batch_size=micro, grad_accum=accum, lr=5e-3, scheduler="cosine",
                          warmup_steps=1, max_grad_norm=1.0, max_steps=STEPS)
    tokenizer = load_tokenizer(str(model_dir))
    pairs, report = build_preference_examples(load_dataset(data).conversations, tokenizer, cfg.template)
    assert report.kept == report.rows_in
    loaded, _ = fit_tiny(cfg, pairs, job, pad_id=tokenizer.pad_token_id)
    batches = GlobalBatches(len(pairs), micro * accum, cfg.train.seed)
    ordered = [pairs[i] for step in range(STEPS) for i in batches.indices(step)]
    losses = [e["loss"] for e in read_events(job, "train")]
    return cfg, loaded, ordered, losses, tokenizer


def assert_same(ours, theirs_model, cfg, our_losses, their_losses):
    assert_same_losses(our_losses, their_losses, STEPS)
    assert_trained_alike(ours, theirs_model, cfg, atol=1e-4)


def test_dpo_five_steps_equal_trl_dpo_trainer(tiny_llama_dir, tmp_path):
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    data = write_pairs(tmp_path / "pairs.jsonl")
    cfg, ours, ordered, our_losses, tokenizer = our_run(tiny_llama_dir, data, tmp_path / "ours", "dpo", 2, 2)
    rows = Dataset.from_list([{"prompt_ids": p.chosen.input_ids[:p.prompt_len],
                               "chosen_ids": p.chosen.input_ids[p.prompt_len:],
                               "rejected_ids": p.rejected.input_ids[p.prompt_len:]} for p in ordered])

    class Aligned(InOrder, DPOTrainer):
        def _prepare_dataset(self, dataset, *args, **kwargs):
            return dataset   # already our token ids

    args = DPOConfig(output_dir=str(tmp_path / "trl"), per_device_train_batch_size=2, gradient_accumulation_steps=2,
                     beta=0.1, loss_type=["sigmoid"], max_length=None, precompute_ref_log_probs=False, **COMMON)
    trainer = Aligned(model=load_for_training(cfg, CPU).model, args=args, train_dataset=rows,
                      processing_class=tokenizer)
    with torch_fused_lm_head():
        trainer.train()
    their_losses = [sum(trainer.micro_losses[i:i + 2]) for i in range(0, 2 * STEPS, 2)]
    assert_same(ours, trainer.model, cfg, our_losses, their_losses)
    last = read_events(tmp_path / "ours", "train")[-1]
    assert last["reward_margin"] == pytest.approx(last["rewards_chosen"] - last["rewards_rejected"], abs=1e-9)


def test_orpo_five_steps_equal_trl_orpo_trainer(tiny_llama_dir, tmp_path):
    from datasets import Dataset
    from trl.experimental.orpo import ORPOConfig, ORPOTrainer

    data = write_pairs(tmp_path / "pairs.jsonl")
    cfg, ours, ordered, our_losses, tokenizer = our_run(tiny_llama_dir, data, tmp_path / "ours", "orpo", 4, 1)
    rows = Dataset.from_list([{"prompt": "", "chosen": "", "rejected": "", "row": i} for i in range(len(ordered))])

    class Aligned(InOrder, ORPOTrainer):
        def tokenize_row(self, feature, model=None):
            pair = ordered[feature["row"]]
            out = {"prompt_input_ids": pair.chosen.input_ids[:pair.prompt_len],
                   "prompt_attention_mask": [1] * pair.prompt_len}
            for side in ("chosen", "rejected"):
                ids = getattr(pair, side).input_ids
                out |= {f"{side}_input_ids": ids, f"{side}_attention_mask": [1] * len(ids),
                        f"{side}_labels": [-100] * pair.prompt_len + ids[pair.prompt_len:]}
            return out

    args = ORPOConfig(output_dir=str(tmp_path / "trl"), per_device_train_batch_size=4, gradient_accumulation_steps=1,
                      beta=0.1, max_length=512, remove_unused_columns=False, **COMMON)
    trainer = Aligned(model=load_for_training(cfg, CPU).model, args=args, train_dataset=rows,
                      processing_class=tokenizer)
    trainer.train()
    assert_same(ours, trainer.model, cfg, our_losses, trainer.micro_losses)
    last = read_events(tmp_path / "ours", "train")[-1]
    assert last["loss"] == pytest.approx(last["nll_loss"] - 0.1 * last["log_odds_ratio"], abs=1e-5)
