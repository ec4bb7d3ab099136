"""DPO over 2 and 3 CPU workers equals one worker on the union of their pairs (shm sync, clipping
active): the loss is normalized by the global pair count and a pair never leaves its rank."""
from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import yaml

from multiworker_runs import train, trainable
from trainer_backend.train.events import read_events

MAX_NORM = 0.01   # below every step's gradient norm in this run: clipping is active at each step


def write_pairs(path: Path, n: int = 60) -> Path:
    rng = random.Random(0)   # uneven completions: 1 to 30 words
    words = lambda p: " ".join(f"{p}{rng.randrange(50)}" for _ in range(rng.randint(1, 30)))  # noqa: E731
    path.write_text("".join(json.dumps({"prompt": f"Say {i}", "chosen": words("w"), "rejected": words("v")}) + "\n"
                            for i in range(n)))
    return path


def write_config(tmp: Path, model: Path, data: Path, name: str, devices: list, micro: int, accum: int) -> Path:
    cfg = {
        "method": "lora",
        "model": {"name_or_path": str(model), "engine": "hf"},
        "data": {"path": str(data)},
        "template": {"max_seq_len": 64, "packing": True},
        "lora": {"r": 8, "alpha": 16},
        "train": {"objective": "dpo", "max_steps": 5, "micro_batch_size": micro, "grad_accum": accum, "lr": 2e-3,
                  "scheduler": "constant", "precision": "fp32", "gradient_checkpointing": "off", "seed": 0,
                  "max_grad_norm": MAX_NORM},
        "preference": {"beta": 0.5},
        "sync": {"devices": devices, "bucket_mb": 0.05},
        "output": {"dir": str(tmp / name)},
    }
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from conftest import make_tiny_llama
    tmp = tmp_path_factory.mktemp("dpo-multiworker")
    model, data = make_tiny_llama(tmp / "model"), write_pairs(tmp / "pairs.jsonl")
    result = train(write_config(tmp, model, data, "one", ["cpu"], micro=4, accum=3))   # 12 pairs a step
    assert result.returncode == 0, result.stderr[-2000:]
    return tmp, model, data


@pytest.mark.parametrize("workers,micro,accum", [(2, 3, 2), (3, 2, 2)])   # 12 pairs a step, as one worker
def test_dpo_n_workers_equal_one_worker_on_the_union(setup, workers, micro, accum):
    tmp, model, data = setup
    name = f"dpo{workers}"
    result = train(write_config(tmp, model, data, name, ["cpu"] * workers, micro, accum))
    assert result.returncode == 0, result.stderr[-2000:]
    ours, ref = trainable(tmp / name), trainable(tmp / "one")
    assert ours.keys() == ref.keys() and len(ref) > 0
    assert max(float((ours[k] - ref[k]).abs().max()) for k in ref) <= 1e-5
    assert max(float(ref[k].abs().max()) for k in ref if "lora_B" in k) > 1e-3   # it trained
    our_events, ref_events = read_events(tmp / name, "train"), read_events(tmp / "one", "train")
    assert [e["step"] for e in our_events] == [1, 2, 3, 4, 5]
    for a, b in zip(our_events, ref_events):
        # Step 1: the policy is its reference, every reward is 0 up to rounding, and which side of 0 a
        # rounding error falls on is not a property of the run: accuracy is compared from step 2.
        for key in ("loss", "rewards_chosen", "rewards_rejected") + (("reward_accuracy",) if a["step"] > 1 else ()):
            assert a[key] == pytest.approx(b[key], abs=1e-5), key
        assert a["grad_norm"] == pytest.approx(b["grad_norm"], rel=1e-4)
        assert a["grad_norm"] > MAX_NORM   # clipped: equality proves the sync happens before clipping
