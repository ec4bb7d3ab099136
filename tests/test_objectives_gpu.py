"""GPU: DPO through the unsloth engine, padded and packed, agrees with the hf engine.

At step 1 LoRA's B is zero, so the policy IS the reference: the loss must be exactly -log σ(0) =
ln 2 and both rewards 0, which holds only if the reference pass (adapters disabled) and the
policy pass score the same tokens the same way. Every step trains the same four pairs, so the
loss must fall, and three steps later both engines must agree on the loss and the rewards. Each run
is its own process (importing unsloth patches transformers).

    python -m pytest -m gpu tests/test_objectives_gpu.py
"""
from __future__ import annotations

import json
import math
import random
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
STEPS = 3


def dpo_events(engine: str, model_dir: str, data: str, job_dir: str, packing: str) -> list[dict]:
    """Child process: STEPS optimizer steps of DPO through `engine`; returns the train events."""
    if engine == "unsloth":
        import unsloth  # noqa: F401
    import torch

    sys.path.insert(0, str(ROOT))
    from trainer_backend.config import RunConfig
    from trainer_backend.train.events import read_events
    from trainer_backend.train.loop import train_rank
    from trainer_backend.train.sync.local import LocalSync

    cfg = RunConfig.model_validate({
        "model": {"name_or_path": model_dir, "engine": engine}, "data": {"path": data},
        "template": {"max_seq_len": 256, "packing": packing == "packed"},
        "train": {"objective": "dpo", "micro_batch_size": 4, "max_steps": STEPS, "lr": 1e-3, "scheduler": "constant",
                  "precision": "bf16", "gradient_checkpointing": "on"},
        "sync": {"devices": [0]}, "output": {"dir": job_dir},
    })
    assert train_rank(cfg, 0, 1, torch.device("cuda", 0), LocalSync(), job_dir) == 0
    return read_events(job_dir, "train")


@pytest.mark.gpu
def test_dpo_on_the_unsloth_engine_agrees_with_hf_padded_and_packed(tmp_path):
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    sys.path.insert(0, str(ROOT / "bench"))
    import random_models

    model_dir = tmp_path / "qwen-small"
    cfg = AutoConfig.for_model("qwen2", hidden_size=512, intermediate_size=1408, num_hidden_layers=4,
                               num_attention_heads=8, num_key_value_heads=2, vocab_size=258 + 2,
                               max_position_embeddings=4096, tie_word_embeddings=True)
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16).save_pretrained(model_dir)
    random_models.chatml_tokenizer(model_dir)
    rng = random.Random(0)   # uneven completions: padding and packing are exercised
    rows = [{"prompt": random_models.letters(rng, 40), "chosen": random_models.letters(rng, rng.randint(20, 150)),
             "rejected": random_models.letters(rng, rng.randint(20, 150))} for _ in range(4)]  # one micro-batch
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    events = {}
    for engine in ("hf", "unsloth"):
        for packing in ("padded", "packed"):
            out = subprocess.run([sys.executable, __file__, engine, str(model_dir), str(data),
                                  str(tmp_path / f"{engine}-{packing}"), packing],
                                 capture_output=True, text=True, cwd=ROOT, timeout=900)
            assert out.returncode == 0, out.stderr[-3000:]
            events[engine, packing] = json.loads(out.stdout.strip().splitlines()[-1])
    for key, run in events.items():
        first = run[0]
        # bf16: the two passes run the same kernels on the same tokens; a wrong reference is off by far more.
        assert first["loss"] == pytest.approx(math.log(2), abs=2e-3), key
        assert abs(first["rewards_chosen"]) < 1e-2 and abs(first["rewards_rejected"]) < 1e-2, key
        assert all(math.isfinite(e["loss"]) for e in run) and run[-1]["loss"] < first["loss"], (key, run)
    reference = events["hf", "padded"][-1]
    for key, run in events.items():
        assert run[-1]["loss"] == pytest.approx(reference["loss"], rel=5e-2), key
        assert run[-1]["reward_margin"] == pytest.approx(reference["reward_margin"], rel=1e-1, abs=1e-2), key


if __name__ == "__main__":
    print(json.dumps(dpo_events(*sys.argv[1:6])))
