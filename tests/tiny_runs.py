"""Our loop on a tiny random llama on CPU (fp32, the hf engine, no gradient checkpointing, seed 0),
and what aligns a transformers or TRL Trainer with it, for the parity tests: one builder of the
run, one fit, one Trainer mixin and one set of Trainer arguments.

    cfg = tiny_run_config(model_dir, job, micro_batch_size=2, max_steps=10)
    loaded, result = fit_tiny(cfg, examples, job, pad_id=2)
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import pytest
import torch
from torch.utils.data import SequentialSampler

from trainer_backend.config import RunConfig
from trainer_backend.models.loading import load_for_training
from trainer_backend.train.events import EventLog
from trainer_backend.train.loop import StopFlag, fit, prepare_config
from trainer_backend.train.sync.local import LocalSync

CPU = torch.device("cpu")

# The Trainer's optimizer, logging and seed as our loop's (AdamW defaults, no weight decay); the
# caller adds the schedule, the batch layout and its own trainer's switches.
TRAINER_ARGS = dict(weight_decay=0.0, optim="adamw_torch", adam_beta1=0.9, adam_beta2=0.999, adam_epsilon=1e-8,
                    logging_steps=1, report_to=[], use_cpu=True, save_strategy="no", seed=0, disable_tqdm=True,
                    dataloader_num_workers=0)


def tiny_run_config(model_dir: Path, job_dir: Path, *, method: str = "lora", packing: bool = False,
                    max_seq_len: int = 64, lora: dict[str, Any] | None = None,
                    sections: dict[str, Any] | None = None, **train) -> RunConfig:
    """A LoRA r=8/alpha=16 run of `model_dir` writing to `job_dir`; `train` keys as train.*,
    `sections` (e.g. preference) as they are."""
    return prepare_config(RunConfig.model_validate({
        "method": method, "model": {"name_or_path": str(model_dir), "engine": "hf"},
        "template": {"packing": packing, "max_seq_len": max_seq_len},
        "lora": {"r": 8, "alpha": 16, **(lora or {})},
        "train": {"precision": "fp32", "gradient_checkpointing": "off", "seed": 0, **train},
        "output": {"dir": str(job_dir)},
        **(sections or {}),
    }), CPU)


def fit_tiny(cfg: RunConfig, examples: Sequence, job_dir: Path, pad_id: int, evals: Sequence = (),
             stop: StopFlag | None = None, resume: bool = False):
    """(the trained model, fit's result) of one run on this process, as one rank."""
    loaded = load_for_training(cfg, CPU)
    result = fit(loaded, cfg, list(examples), list(evals), job_dir, sync=LocalSync(), device=CPU,
                 events=EventLog(job_dir), stop=stop or StopFlag(), pad_id=pad_id, resume=resume)
    return loaded, result


class InOrder:
    """Trainer mixin: batches read sequentially (the caller orders the rows as our steps take
    them), and the loss of each micro-step recorded as the Trainer accumulates it."""
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.micro_losses: list[float] = []

    def _get_train_sampler(self, train_dataset=None):
        return SequentialSampler(train_dataset or self.train_dataset)

    def training_step(self, *args, **kwargs):
        loss = super().training_step(*args, **kwargs)
        self.micro_losses.append(loss.item())
        return loss


def trainer_rows(examples: Sequence, batch: int, seed: int, steps: int) -> list[dict]:
    """The rows our loop trains in its first `steps` steps of `batch` sequences, in its order, as a
    Trainer's dataset: read sequentially (InOrder), the Trainer sees the same batches."""
    from trainer_backend.train.batching import GlobalBatches

    batches = GlobalBatches(len(examples), batch, seed)
    return [{"input_ids": examples[i].input_ids, "labels": examples[i].labels()}
            for step in range(steps) for i in batches.indices(step)]


def padded_collate(pad_id: int):
    """A Trainer's data collator for rows of `input_ids` and `labels`: right-padded to the batch's
    longest row (labels with -100), with the attention mask, as our loop pads a plain batch."""
    def collate(features):
        width = max(len(f["input_ids"]) for f in features)
        pad = lambda seq, value: seq + [value] * (width - len(seq))  # noqa: E731
        return {"input_ids": torch.tensor([pad(f["input_ids"], pad_id) for f in features]),
                "labels": torch.tensor([pad(f["labels"], -100) for f in features]),
                "attention_mask": torch.tensor([pad([1] * len(f["input_ids"]), 0) for f in features])}
    return collate


def assert_trained_alike(ours, theirs: torch.nn.Module, cfg: RunConfig, atol: float) -> None:
    """Our trained weights moved from the start and equal the Trainer's."""
    init = dict(load_for_training(cfg, CPU).trainable())
    assert max((p - init[n]).abs().max().item() for n, p in ours.trainable()) > 1e-3   # the weights moved
    their_params = dict(theirs.named_parameters())
    for name, p in ours.trainable():
        torch.testing.assert_close(p, their_params[name], atol=atol, rtol=0)


def assert_same_losses(ours: Sequence[float], theirs: Sequence[float], steps: int, abs_tol: float = 1e-4) -> None:
    assert len(ours) == steps and len(theirs) == steps
    for step, (a, b) in enumerate(zip(ours, theirs), start=1):
        assert a == pytest.approx(b, abs=abs_tol), f"step {step}"
