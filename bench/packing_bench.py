"""Packed rows vs padded batches on the unsloth engine: forward+backward time of one pass (one GPU).

    source .gpu-bundle/install.sh && python bench/packing_bench.py [--checkpointing on|off]

One Qwen2.5-7B-shaped model (random init), loaded once through the project's loader (LoRA r=16
all-linear, bf16), runs the same passes as the trainer builds them: a padded batch, and one packed
row (per-sequence position_ids and `packed_seq_lengths`, which Unsloth turns into attention that
stays inside each sequence). Tokens/s counts real tokens, not padding. It also prints which
attention kernels Unsloth found: without flash-attn, xformers or torch's varlen kernel, a packed row
runs one SDPA call per run of equal-length sequences, which costs host time per sequence.
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpointing", choices=["on", "off"], default="on")
    ap.add_argument("--reps", type=int, default=4)
    args = ap.parse_args()

    import unsloth  # noqa: F401  (first: it patches transformers)
    import unsloth.utils.attention_dispatch as dispatch
    import torch
    from train_bench import make_model_dir

    from trainer_backend.config import RunConfig
    from trainer_backend.models.engine import resolve_engine
    from trainer_backend.models.loading import load_for_training
    from trainer_backend.packing import collate_packed, collate_padded
    from trainer_backend.templates.example import Example

    print(json.dumps(dict(flash_attn=dispatch.HAS_FLASH_ATTENTION, xformers=dispatch.HAS_XFORMERS,
                          torch_varlen=dispatch._TORCH_VARLEN_ATTN is not None, torch=torch.__version__)))
    device = torch.device("cuda", 0)
    cfg = resolve_engine(RunConfig.model_validate({
        "model": {"name_or_path": make_model_dir("qwen7b"), "engine": "unsloth"},
        "template": {"max_seq_len": 2048}, "lora": {"r": 16, "alpha": 32, "dropout": 0.0},
        "train": {"precision": "bf16", "gradient_checkpointing": args.checkpointing},
        "sync": {"devices": [0]}, "output": {"dir": "/tmp/packing-bench"}}), device)
    model = load_for_training(cfg, device).model
    model.train()
    rng = random.Random(0)
    n_items = torch.ones((), device=device)

    def example(length: int, row: int) -> Example:
        return Example(row=row, input_ids=[rng.randrange(1000) for _ in range(length)],
                       trained=[False] + [True] * (length - 1), text="")

    def padded(examples):
        b = collate_padded(examples, pad_id=1000)
        inputs = dict(input_ids=b.input_ids, labels=b.labels)
        if not bool(b.attention_mask.all()):
            inputs["attention_mask"] = b.attention_mask
        return inputs

    def packed(examples):
        b = collate_packed(examples)
        return dict(input_ids=b.input_ids, labels=b.labels, position_ids=b.position_ids,
                    packed_seq_lengths=b.cu_seqlens.diff())

    def tokens_per_s(inputs: dict, real_tokens: int) -> float:
        inputs = {k: v.to(device) for k, v in inputs.items()}
        for i in range(2 + args.reps):
            if i == 2:
                torch.cuda.synchronize()
                start = time.perf_counter()
            model(**inputs, num_items_in_batch=n_items, use_cache=False).loss.backward()
        torch.cuda.synchronize()
        return real_tokens * args.reps / (time.perf_counter() - start)

    equal = [example(2048, i) for i in range(4)]
    mixed = []
    while sum(len(e.input_ids) for e in mixed) < 8192 - 600:
        mixed.append(example(rng.randrange(80, 600), len(mixed)))
    cases = [("padded batch 4 x 2048", padded(equal), equal),
             ("packed row 1 x 8192 (4 sequences of 2048)", packed(equal), equal),
             (f"packed row 1 x {sum(len(e.input_ids) for e in mixed)} ({len(mixed)} sequences of 80-600)",
              packed(mixed), mixed),
             ("padded batch of 4 of those sequences", padded(mixed[:4]), mixed[:4])]
    print(f"| pass (checkpointing {args.checkpointing}) | real tokens/s |\n|---|---|")
    for name, inputs, examples in cases:
        print(f"| {name} | {tokens_per_s(inputs, sum(len(e.input_ids) for e in examples)):,.0f} |", flush=True)
    print(f"peak GiB {torch.cuda.max_memory_allocated() / 2**30:.1f}")


if __name__ == "__main__":
    main()
