"""GPU: the unsloth engine computes the same first-step loss as the hf engine on the same batch,
padded and packed (rows of mixed lengths in one sequence: unsloth's packed attention path).

Each engine runs in its own process: importing unsloth patches transformers for the whole process.
"""
from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def first_step_loss(engine: str, model_dir: str, job_dir: str, packing: str) -> float:
    """Child process: one optimizer step of our loop through `engine`; returns its logged loss.
    LoRA B starts at zero, so this loss is the base model's loss on the batch."""
    if engine == "unsloth":
        import unsloth  # noqa: F401
    import torch

    sys.path.insert(0, str(ROOT))
    from trainer_backend.config import RunConfig
    from trainer_backend.models.engine import resolve_engine
    from trainer_backend.models.loading import load_for_training
    from trainer_backend.templates.example import Example
    from trainer_backend.train.events import EventLog, read_events
    from trainer_backend.train.loop import StopFlag, fit
    from trainer_backend.train.sync.local import LocalSync

    device = torch.device("cuda", 0)
    cfg = resolve_engine(RunConfig.model_validate({
        "model": {"name_or_path": model_dir, "engine": engine},
        "template": {"max_seq_len": 256, "packing": packing == "packed"},
        "train": {"micro_batch_size": 4, "max_steps": 1, "precision": "bf16", "gradient_checkpointing": "off"},
        "sync": {"devices": [0]}, "output": {"dir": job_dir},
    }), device)
    rng = random.Random(0)
    examples = []
    for row, length in enumerate([256, 200, 256, 130]):  # uneven rows: padding and masks are exercised
        ids = [rng.randrange(1000) for _ in range(length)]
        examples.append(Example(row=row, input_ids=ids, trained=[i >= length // 4 for i in range(length)], text=""))
    loaded = load_for_training(cfg, device)
    fit(loaded, cfg, examples, [], Path(job_dir), sync=LocalSync(), device=device, events=EventLog(job_dir),
        stop=StopFlag(), pad_id=0)
    return read_events(job_dir, "train")[0]["loss"]


@pytest.mark.gpu
def test_unsloth_and_hf_engines_agree_on_the_first_step_padded_and_packed(tmp_path):
    from gpu_models import small_qwen_dir

    model_dir = small_qwen_dir(tmp_path / "qwen-small", layers=4, vocab_size=151936)
    losses = {}
    for engine in ("hf", "unsloth"):
        for packing in ("padded", "packed"):
            out = subprocess.run([sys.executable, __file__, engine, str(model_dir), str(tmp_path / f"{engine}-{packing}"),
                                  packing], capture_output=True, text=True, cwd=ROOT, timeout=600)
            assert out.returncode == 0, out.stderr[-3000:]
            losses[engine, packing] = json.loads(out.stdout.strip().splitlines()[-1])
    # Both compute in bf16 (unit roundoff 2^-8 ≈ 0.4%) with different kernels (unsloth's Triton RMSNorm,
    # RoPE, fused CE vs PyTorch's). Rounding differs per activation but is unbiased, and the loss averages
    # ~640 token losses, so differences stay well below one bf16 ulp of the loss (~12 ≈ ln 151936
    # -> ulp 0.0625); 0.5% of the loss (≈0.06) is that bound. A wrong mask or normalization moves the
    # loss by far more (e.g. counting padded or prompt tokens changes N by 30%).
    # Packing changes only which kernels run (one row, per-sequence attention), not the arithmetic.
    reference = losses["hf", "padded"]
    assert losses["hf", "packed"] == pytest.approx(reference, rel=5e-3)
    assert losses["unsloth", "padded"] == pytest.approx(reference, rel=5e-3)
    assert losses["unsloth", "packed"] == pytest.approx(reference, rel=5e-3)


if __name__ == "__main__":
    print(json.dumps(first_step_loss(*sys.argv[1:5])))
