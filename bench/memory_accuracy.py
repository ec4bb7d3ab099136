"""Predicted vs measured peak GPU memory of LoRA/QLoRA training steps (run on one GPU).

    source .gpu-bundle/install.sh && python bench/memory_accuracy.py --out bench/results/plan_memory_accuracy.md

Each group (architecture, engine, method, checkpointing) runs in its own subprocess: the model is
loaded once through the project's loader (trainer_backend.models.loading.load_for_training) with the
project's optimizer, then each (micro-batch, seq) shape runs a few steps after the peak counters are
reset, smallest shape first. Models are random-init copies of the published architectures listed in
trainer_backend/planner/calibration.yaml, saved to /tmp (weights never enter the repository).
`allocated` is torch.cuda.max_memory_allocated; `peak` adds the context the driver holds outside
PyTorch and the allocator's reserve (max_memory_reserved), which is what must fit on the GPU.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from random_models import make_model_dir, timed_random_steps  # noqa: E402

MODELS = Path(os.environ.get("BENCH_MODELS", "/tmp/bench-models"))

# (arch, engine, method, checkpointing, [(micro_batch, seq), ...]); shapes in increasing tokens.
GROUPS = [
    ("qwen2.5-7b", "unsloth", "lora", "on", [(1, 2048), (2, 4096), (8, 2048)]),
    ("qwen2.5-7b", "unsloth", "lora", "off", [(1, 2048), (1, 4096), (4, 2048)]),
    ("qwen2.5-7b", "unsloth", "qlora", "on", [(2, 1024), (4, 2048), (4, 4096)]),
    ("qwen2.5-7b", "unsloth", "qlora", "off", [(1, 2048), (2, 2048)]),
    ("mistral-7b", "unsloth", "lora", "on", [(1, 4096), (4, 2048), (8, 2048)]),
    ("mistral-7b", "unsloth", "lora", "off", [(1, 2048), (2, 2048), (4, 1024)]),
    ("qwen2.5-1.5b", "unsloth", "lora", "on", [(4, 1024), (8, 2048)]),
    ("qwen2.5-1.5b", "unsloth", "lora", "off", [(2, 1024), (4, 2048), (2, 4096)]),
    ("qwen2.5-7b", "hf", "lora", "on", [(1, 2048), (2, 2048)]),
]
# Full fine-tuning (bf16 weights, torch AdamW).
FULL_GROUPS = [
    ("qwen2.5-1.5b", "hf", "full", "off", [(2, 1024), (4, 1024), (4, 2048)]),
    ("qwen2.5-1.5b", "unsloth", "full", "off", [(2, 1024), (4, 1024)]),
    ("qwen2.5-1.5b", "hf", "full", "on", [(4, 2048), (8, 2048)]),
    ("qwen2.5-1.5b", "unsloth", "full", "on", [(4, 2048), (8, 2048)]),
    ("qwen2.5-0.5b", "hf", "full", "off", [(4, 1024), (8, 1024)]),
]
SETS = {"lora": GROUPS, "full": FULL_GROUPS}


def make_models(names: list[str]) -> None:
    import torch

    from trainer_backend.planner.calibration import load_calibration

    for name in names:
        make_model_dir(MODELS / name, load_calibration().architectures[name])
    print("DEVICE " + torch.cuda.get_device_name(0), flush=True)


def prepare_models(group_set: str = "lora", script: str = __file__) -> str:
    """Build the random-init models in a subprocess (so this process holds no CUDA context)."""
    proc = subprocess.run([sys.executable, script, "--make", "--set", group_set], capture_output=True, text=True,
                          check=True)
    return next(line[7:] for line in proc.stdout.splitlines() if line.startswith("DEVICE "))


def run_config(arch: str, engine: str, method: str, ckpt: str, seq: int):
    from trainer_backend.config import RunConfig

    return RunConfig.model_validate(dict(
        method=method, model=dict(name_or_path=str(MODELS / arch), engine=engine),
        template=dict(max_seq_len=seq), train=dict(gradient_checkpointing=ckpt, micro_batch_size=1),
        lora=dict(r=16, alpha=32, target_modules="all-linear"), sync=dict(devices=[0])))


def measure_group(arch: str, engine: str, method: str, ckpt: str, shapes: list, steps: int) -> None:
    """Worker: load once, then time and measure each shape; prints one RESULT line per shape."""
    from trainer_backend.models.engine import import_engine, resolve_device, resolve_engine

    import_engine(engine)
    import torch

    from trainer_backend.models.loading import load_for_training
    from trainer_backend.train.optim import build_optimizer

    device = resolve_device(0)
    cfg = resolve_engine(run_config(arch, engine, method, ckpt, max(s for _, s in shapes)), device)
    loaded = load_for_training(cfg, device)
    model = loaded.model
    model.train()
    optimizer = build_optimizer(loaded.trainable(), cfg.train, device)
    total = torch.cuda.mem_get_info()[1]
    for batch, seq in shapes:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        times = timed_random_steps(model, optimizer, batch, seq, steps)
        free = torch.cuda.mem_get_info()[0]
        reserved_now = torch.cuda.memory_reserved()
        step_s = sum(times[1:]) / max(1, len(times) - 1)
        print("RESULT " + json.dumps(dict(
            arch=arch, engine=engine, method=method, checkpointing=ckpt, micro_batch_size=batch, seq=seq,
            allocated_gib=torch.cuda.max_memory_allocated() / 2**30,
            reserved_gib=torch.cuda.max_memory_reserved() / 2**30,
            context_gib=(total - free - reserved_now) / 2**30,
            tokens_per_s=batch * seq / step_s)), flush=True)


def predicted(row: dict) -> tuple[float, float]:
    from trainer_backend.planner.calibration import load_calibration
    from trainer_backend.planner.estimate import estimate_resolved

    cal = load_calibration()
    cfg = run_config(row["arch"], row["engine"], row["method"], row["checkpointing"], row["seq"])
    cfg.model.architecture = cal.architectures[row["arch"]]
    cfg.train.micro_batch_size = row["micro_batch_size"]
    est = estimate_resolved(cfg, cal=cal)
    return est.allocated_gib, est.peak_gib


def table(rows: list[dict], command: str, device: str) -> str:
    alloc_err = [abs(predicted(r)[0] / r["allocated_gib"] - 1) for r in rows if "error" not in r]
    lines = ["# Planner accuracy: predicted vs measured peak memory\n",
             f"- date: {datetime.date.today()}\n- device: {device}\n- command: `{command}`\n",
             f"{len(alloc_err)} configurations, largest error on the allocated peak "
             f"{max(alloc_err, default=0):.1%} (goal: 10%).\n",
             "| arch | engine | method | ckpt | micro-batch | seq | measured alloc GiB | predicted alloc GiB "
             "| error | measured peak GiB | predicted peak GiB | error | tokens/s |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['arch']} | {r['engine']} | {r['method']} | {r['checkpointing']} | | | "
                         f"failed: {r['error']} | | | | | | |")
            continue
        pa, pp = predicted(r)
        peak = r["reserved_gib"] + r["context_gib"]
        lines.append(f"| {r['arch']} | {r['engine']} | {r['method']} | {r['checkpointing']} | "
                     f"{r['micro_batch_size']} | {r['seq']} | {r['allocated_gib']:.2f} | {pa:.2f} | "
                     f"{pa / r['allocated_gib'] - 1:+.1%} | {peak:.2f} | {pp:.2f} | {pp / peak - 1:+.1%} | "
                     f"{r['tokens_per_s']:,.0f} |")
    return "\n".join(lines) + "\n"


def run_group(group: tuple, steps: int, timeout: int) -> list[dict]:
    arch, engine, method, ckpt, shapes = group
    cmd = [sys.executable, __file__, "--worker", json.dumps([arch, engine, method, ckpt, shapes]),
           "--steps", str(steps)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        out, err = proc.stdout, proc.stderr
    except subprocess.TimeoutExpired as exc:
        out, err = exc.stdout or "", f"timeout after {timeout}s"
        out = out.decode() if isinstance(out, bytes) else out
    rows = [json.loads(line[7:]) for line in out.splitlines() if line.startswith("RESULT ")]
    if len(rows) < len(shapes):
        tail = (err or "").strip().splitlines()[-1:] or ["no output"]
        print(f"{arch} {engine} {method} {ckpt}: {tail[0]}", file=sys.stderr)
        rows.append(dict(arch=arch, engine=engine, method=method, checkpointing=ckpt, error=tail[0][:120]))
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="bench/results/plan_memory_accuracy.md")
    ap.add_argument("--set", choices=sorted(SETS), default="lora", help="which groups to measure")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--timeout", type=int, default=150, help="seconds per group")
    ap.add_argument("--budget-s", type=float, default=540, help="start no group after this many seconds")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--make", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--render", metavar="JSONL", help="rewrite --out from recorded rows with the current calibration")
    ap.add_argument("--device", default="NVIDIA H100 80GB HBM3", help="device named in a --render table")
    args = ap.parse_args()
    if args.render:
        rows = [json.loads(line) for line in Path(args.render).read_text().splitlines() if line]
        command = f"python bench/memory_accuracy.py --out {args.out} (rows re-rendered after the refit)"
        Path(args.out).write_text(table(rows, command, args.device))
        return 0
    if args.worker:
        arch, engine, method, ckpt, shapes = json.loads(args.worker)
        measure_group(arch, engine, method, ckpt, [tuple(s) for s in shapes], args.steps)
        return 0
    if args.make:
        make_models(sorted({g[0] for g in SETS[args.set]}))
        return 0
    start = time.time()
    device = prepare_models(args.set)
    rows = []
    for group in SETS[args.set]:
        if time.time() - start > args.budget_s:
            print(f"time budget spent: skipping {group[:4]}", file=sys.stderr)
            continue
        rows += run_group(group, args.steps, args.timeout)
        Path(args.out).with_suffix(".jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    command = f"python bench/memory_accuracy.py --set {args.set} --out {args.out}"
    Path(args.out).write_text(table(rows, command, device))
    print(Path(args.out).read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
