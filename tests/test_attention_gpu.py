"""GPU: packed rows through compiled FlexAttention give each document the loss it has alone, on
both engines, and Unsloth's attention really took the FlexAttention path on every layer.

Each engine runs in its own process: importing unsloth patches transformers for the whole process.
"""
from __future__ import annotations

import json
import random
import subprocess
import sys
from types import SimpleNamespace
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LENGTHS = [300, 17, 500, 129, 64]   # 1,010 tokens: a 14-token tail rounds the row to 1,024
LAYERS = 3


def document_losses(engine: str, model_dir: str) -> dict:
    """Child process: per-document loss sums, packed (one row, FlexAttention) and alone."""
    if engine == "unsloth":
        import unsloth  # noqa: F401
    import torch

    sys.path.insert(0, str(ROOT))
    from trainer_backend.config import RunConfig
    from trainer_backend.models.engine import resolve_engine
    from trainer_backend.models.loading import load_for_training
    from trainer_backend.templates.example import Example
    from trainer_backend.train.passes import pass_inputs

    device = torch.device("cuda", 0)
    cfg = resolve_engine(RunConfig.model_validate({
        "model": {"name_or_path": model_dir, "engine": engine},
        "template": {"max_seq_len": 1024, "packing": True},
        "train": {"micro_batch_size": 1, "precision": "bf16" if engine == "unsloth" else "fp32",
                  "gradient_checkpointing": "off"},
        "sync": {"devices": [0]}, "output": {"dir": "/tmp/unused"},
    }), device)
    assert cfg.model.attn_implementation == "flex", cfg.model.attn_implementation
    rng = random.Random(0)
    docs = [[rng.randrange(1000) for _ in range(n)] for n in LENGTHS]
    model = load_for_training(cfg, device).model
    one = torch.ones((), device=device)

    def loss(examples) -> float:
        with torch.no_grad():
            return model(**pass_inputs(examples, cfg, 0, device), num_items_in_batch=one, use_cache=False).loss.item()

    def only(i: int) -> list:
        """All documents in the row, only document i trained."""
        return [Example(row=j, input_ids=d, trained=[j == i and k > 0 for k in range(len(d))], text="")
                for j, d in enumerate(docs)]

    packed = [loss(only(i)) for i in range(len(docs))]
    alone = [loss([only(i)[i]]) for i in range(len(docs))]
    calls = None
    if engine == "unsloth":
        from trainer_backend.models.unsloth_attention import install
        calls = sum(w.flex_calls for w in install())
    # the same row without any document mask: how far a leak across documents moves the losses
    ids = torch.tensor([[t for d in docs for t in d]], device=device)
    leaky = []
    for i in range(len(docs)):
        labels = torch.tensor([[t for e in only(i) for t in e.labels()]], device=device)
        with torch.no_grad():
            leaky.append(model(input_ids=ids, labels=labels, num_items_in_batch=one, use_cache=False).loss.item())
    return dict(packed=packed, alone=alone, leaky=leaky, flex_calls=calls)


@pytest.mark.gpu
def test_flex_packed_rows_give_every_document_its_own_loss_on_both_engines(tmp_path):
    from gpu_models import small_qwen_dir

    model_dir = small_qwen_dir(tmp_path / "qwen-small", layers=LAYERS, vocab_size=1003)
    for engine, rel in (("hf", 1e-4), ("unsloth", 1e-2)):  # fp32 vs bf16
        out = subprocess.run([sys.executable, __file__, engine, str(model_dir)], capture_output=True, text=True,
                             cwd=ROOT, timeout=600)
        assert out.returncode == 0, out.stderr[-3000:]
        r = json.loads(out.stdout.strip().splitlines()[-1])
        assert r["packed"] == pytest.approx(r["alone"], rel=rel), engine
        if engine == "hf":
            # not vacuous: without the mask every document after the first sees the ones before it
            assert all(abs(lk - a) > 10 * rel * a for lk, a in zip(r["leaky"][1:], r["alone"][1:])), r
        else:
            # one call per layer per packed forward (5 of them); the alone passes are plain batches
            assert r["flex_calls"] == LAYERS * len(LENGTHS), r


def first_step_compiles(engine: str, model_dir: str) -> dict:
    """Child process: the trainer's start (attention warm-up, then the warm-up pass through the
    loaded LoRA model), then a packed training pass of other lengths; dynamo's count of compiled
    frames after each."""
    if engine == "unsloth":
        import unsloth  # noqa: F401
    import torch
    from torch._dynamo.utils import counters

    sys.path.insert(0, str(ROOT))
    from trainer_backend.config import RunConfig
    from trainer_backend.models.attention import warm_up
    from trainer_backend.models.engine import resolve_engine
    from trainer_backend.models.loading import load_for_training
    from trainer_backend.templates.example import Example
    from trainer_backend.train.passes import pass_inputs
    from trainer_backend.train.startup import warm_up_model

    device = torch.device("cuda", 0)
    cfg = resolve_engine(RunConfig.model_validate({
        "model": {"name_or_path": model_dir, "engine": engine}, "template": {"max_seq_len": 1024, "packing": True},
        "train": {"micro_batch_size": 2, "precision": "bf16", "gradient_checkpointing": "off"},
        "sync": {"devices": [0]}, "output": {"dir": "/tmp/unused"}}), device)
    model = load_for_training(cfg, device).model
    c = model.config
    warm_up(device, c.num_attention_heads, c.num_key_value_heads, c.hidden_size // c.num_attention_heads,
            torch.bfloat16)
    compiled = {"attention warm-up": counters["frames"]["ok"]}
    rng = torch.cuda.get_rng_state()
    logged = []
    warm_up_model(model, cfg, device, 0, SimpleNamespace(log=logged.append))
    assert not logged, logged
    compiled["warm-up pass"] = counters["frames"]["ok"]
    untouched = all(p.grad is None for p in model.parameters()) and torch.equal(rng, torch.cuda.get_rng_state())
    rows = random.Random(1)
    docs = [Example(row=i, input_ids=[rows.randrange(1000) for _ in range(n)], trained=[k > n // 3 for k in range(n)],
                    text="") for i, n in enumerate([700, 45, 1024, 3, 260])]
    model(**pass_inputs(docs, cfg, 0, device), num_items_in_batch=torch.tensor(900.0, device=device),
          use_cache=False).loss.backward()
    compiled["first step"] = counters["frames"]["ok"]
    return dict(compiled=compiled, untouched=untouched)


@pytest.mark.gpu
@pytest.mark.parametrize("engine", ["hf", "unsloth"])
def test_after_the_warm_up_the_first_step_compiles_nothing(tmp_path, engine):
    """A kernel compiled inside the first step makes it take seconds (13.7 s against 1.1 s for the
    steps after it, Qwen2.5-7B on one H200), which a user reads as a hang. The warm-up pass must
    leave the first step nothing to compile, and leave no gradient and no random state behind."""
    from gpu_models import small_qwen_dir

    # A real vocabulary: Unsloth's fused cross-entropy cuts the first step's 2,048-token pass of a
    # 152k vocabulary into several chunks, and a first pass of several chunks compiles again.
    model_dir = small_qwen_dir(tmp_path / "qwen-small", layers=LAYERS, vocab_size=152064)
    out = subprocess.run([sys.executable, __file__, "compiles", engine, str(model_dir)], capture_output=True,
                         text=True, cwd=ROOT, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    r = json.loads(out.stdout.strip().splitlines()[-1])
    print(engine, r)
    assert r["untouched"], r
    assert r["compiled"]["first step"] == r["compiled"]["warm-up pass"], r


if __name__ == "__main__":
    if sys.argv[1] == "compiles":
        print(json.dumps(first_step_compiles(sys.argv[2], sys.argv[3])))
    else:
        print(json.dumps(document_losses(sys.argv[1], sys.argv[2])))
