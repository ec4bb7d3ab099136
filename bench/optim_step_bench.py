"""The optimizer step alone, on the LoRA parameters of a 7B shape: bitsandbytes' 8-bit AdamW tensor
by tensor (the transformers Trainer's and TRL's `optim="adamw_8bit"`), the trainer's
`train.optimizer: adamw_8bit` (the same optimizer on one flat buffer per group, train/flat_optim.py),
and torch's fused fp32 AdamW (`train.optimizer: adamw`).

    python bench/optim_step_bench.py --out bench/results/optim_step.md [--arch qwen2.5-7b] [--r 16] [--steps 30]

Unsloth is imported first when it is installed, as in a GPU run of either trainer. Unsloth can drop
bitsandbytes' device synchronization after each tensor, but only when bitsandbytes was imported
before it; the table says whether that happened.

Parameters: fp32 LoRA A and B of every linear layer (q, k, v, o, gate, up, down), as peft makes
them; random gradients, made before the clock starts. A step is timed from an idle GPU (as in
training, where the step follows the check of the gradient norm) to its end on the device; the
table gives the median over the steps after the first 3. The two 8-bit runs start from the same
weights and gradients and must end with equal weights.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import random_models  # noqa: E402

WARMUP = 3


def lora_shapes(arch: dict, r: int) -> list[tuple[int, int]]:
    """(out, in) of every LoRA A and B, layer by layer, in peft's order."""
    hidden, inter = arch["hidden_size"], arch["intermediate_size"]
    head_dim = arch.get("head_dim") or hidden // arch["num_attention_heads"]
    q, kv = arch["num_attention_heads"] * head_dim, arch["num_key_value_heads"] * head_dim
    linears = [(q, hidden), (kv, hidden), (kv, hidden), (hidden, q), (inter, hidden), (inter, hidden),
               (hidden, inter)]
    return [s for _ in range(arch["num_hidden_layers"]) for out, inp in linears for s in ((r, inp), (out, r))]


def timed(make_optimizer, shapes, steps: int):
    import torch

    torch.manual_seed(0)
    params = [torch.nn.Parameter(torch.randn(s, device="cuda") * 0.01) for s in shapes]
    grads = [[torch.randn(s, device="cuda") for s in shapes] for _ in range(2)]
    optimizer = make_optimizer(params)
    seconds = []
    for step in range(steps):
        for p, g in zip(params, grads[step % 2]):
            p.grad = g
        torch.cuda.synchronize()
        start = time.perf_counter()
        optimizer.step()
        torch.cuda.synchronize()
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds[WARMUP:]), params


def main() -> int:
    try:
        import unsloth  # noqa: F401  (first: it patches bitsandbytes' step)
    except ImportError:
        pass
    import bitsandbytes as bnb
    import torch
    from bitsandbytes.optim.optimizer import Optimizer8bit

    from trainer_backend.config import TrainConfig
    from trainer_backend.train.optim import build_optimizer

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--arch", default="qwen2.5-7b")
    p.add_argument("--r", type=int, default=16)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "optim_step.md"))
    args = p.parse_args()
    shapes = lora_shapes(random_models.architecture(args.arch), args.r)
    device = torch.device("cuda", 0)
    kw = dict(lr=1e-4, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.001)

    def ours(name):
        return lambda params: build_optimizer([(str(i), q) for i, q in enumerate(params)],
                                              TrainConfig(optimizer=name, lr=kw["lr"], weight_decay=kw["weight_decay"]),
                                              device)

    unsynced = getattr(Optimizer8bit.step, "_unsloth_no_sync", False)
    runs = [(f"bitsandbytes AdamW8bit, tensor by tensor (Trainer/TRL `adamw_8bit`; "
             f"{'Unsloth dropped its sync after each tensor' if unsynced else 'a sync after each tensor'})",
             lambda ps: bnb.optim.AdamW8bit(ps, **kw)),
            ("ours, `train.optimizer: adamw_8bit` (flat)", ours("adamw_8bit")),
            ("ours, `train.optimizer: adamw` (torch fused, fp32 state)", ours("adamw"))]
    results = [(name, *timed(make, shapes, args.steps)) for name, make in runs]
    equal = all(torch.equal(a, b) for a, b in zip(results[0][2], results[1][2]))
    command = "python bench/optim_step_bench.py " + " ".join(sys.argv[1:])
    n = sum(a * b for a, b in shapes)
    lines = [f"# Optimizer step: LoRA r={args.r} of a {args.arch} shape ({len(shapes)} tensors, {n / 1e6:.1f} M "
             "fp32 parameters)", "",
             f"{time.strftime('%Y-%m-%d')}, {torch.cuda.get_device_name(0)}, `{command.strip()}`", "",
             "| optimizer | ms a step (median) | vs tensor by tensor |", "|---|---|---|"]
    base = results[0][1]
    lines += [f"| {name} | {1e3 * s:.2f} | {base / s:.1f}× |" for name, s, _ in results]
    lines += ["", f"the two 8-bit runs' weights after {args.steps} steps are equal bit for bit: {equal}"]
    text = "\n".join(lines) + "\n"
    Path(args.out).write_text(text)
    print(text)
    return 0 if equal else 1


if __name__ == "__main__":
    sys.exit(main())
