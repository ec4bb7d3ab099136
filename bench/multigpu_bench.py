"""Multi-GPU LoRA training throughput through the real `train` command, against raw Unsloth in DDP.

    python bench/multigpu_bench.py [--accum 1,4] [--steps 10] [--out bench/results/multigpu.md]

Qwen2.5-7B-shaped random model (built from its config, saved to /tmp), LoRA r=16 on all linear
layers, bf16, sequences of 2048 tokens, micro-batch 4, gradient checkpointing on. For each
gradient accumulation: our trainer on 1 GPU, on 2 GPUs with nccl and with shm, and the baseline a
user would otherwise pick: Unsloth wrapped in torch DDP under torchrun (this file's --ddp-worker
mode, the same workload as the shared reference_ddp_bench.py). Tokens/s is the median over the
steps after warm-up; sync ms and MB come from the workers' per-step `sync step` log lines.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from random_models import architecture, letters, make_model_dir  # noqa: E402

QWEN7B = architecture("qwen2.5-7b")
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
SEQ, MICRO, WARMUP = 2048, 4, 3
SYNC_LINE = re.compile(r"sync step (\d+): sync_ms=([\d.]+) bytes=(\d+)")


def make_model(folder: Path, layers: int) -> Path:
    """Random weights train at the speed of real ones; the byte tokenizer makes one token per letter."""
    return make_model_dir(folder, dict(QWEN7B, num_hidden_layers=layers))


def make_data(path: Path, rows: int) -> Path:
    """Plain-text rows longer than SEQ characters (= tokens): truncated to exactly SEQ tokens each."""
    import random
    rng = random.Random(0)
    with path.open("w") as f:
        for _ in range(rows):
            f.write(json.dumps({"text": letters(rng, SEQ + 256)}) + "\n")
    return path


def our_config(work: Path, model: Path, data: Path, name: str, devices: list, backend: str, accum: int,
               steps: int) -> Path:
    import yaml
    cfg = {
        "name": name, "method": "lora",
        "model": {"name_or_path": str(model), "engine": "auto"},
        "data": {"path": str(data), "format": "text"},
        "template": {"max_seq_len": SEQ, "packing": False, "overflow": "truncate"},
        "lora": {"r": 16, "alpha": 32, "target_modules": "all-linear"},
        "train": {"max_steps": steps, "micro_batch_size": MICRO, "grad_accum": accum, "lr": 1e-4,
                  "scheduler": "constant", "precision": "bf16", "gradient_checkpointing": "on", "seed": 0,
                  "log_every": 1},
        "sync": {"devices": devices, "backend": backend},
        "output": {"dir": str(work / name)},
    }
    path = work / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def run_ours(work: Path, model: Path, data: Path, devices: list, backend: str, accum: int, steps: int) -> dict:
    name = f"ours-{len(devices)}gpu-{backend}-accum{accum}"
    config = our_config(work, model, data, name, devices, backend, accum, steps)
    log = work / f"{name}.log"
    with log.open("w") as f:
        code = subprocess.run([sys.executable, "-m", "trainer_backend", "train", str(config)], cwd=ROOT,
                              stdout=f, stderr=subprocess.STDOUT).returncode
    if code != 0:
        return {"name": name, "error": f"exit {code}, see {log}"}
    events = [json.loads(l) for l in (work / name / "events.jsonl").read_text().splitlines()]
    rates = [e["tokens_per_s"] for e in events if e["kind"] == "train" and e["step"] > WARMUP]
    out = {"name": name, "tokens_per_s": statistics.median(rates),
           "gpu_mem_gib": max((m for e in events if e["kind"] == "train" for m in e["gpu_mem_gib"]), default=0)}
    worker_log = work / name / "workers" / "rank0.log"
    if worker_log.exists():
        syncs = [(int(s), float(ms), int(b)) for s, ms, b in SYNC_LINE.findall(worker_log.read_text())]
        late = [(ms, b) for s, ms, b in syncs if s > WARMUP]
        if late:
            out["sync_ms"] = statistics.median(ms for ms, _ in late)
            out["sync_mb"] = late[-1][1] / 1e6
    return out


def run_ddp(work: Path, model: Path, gpus: int, accum: int, steps: int, script: str | None) -> dict:
    name = f"ddp-{gpus}gpu-accum{accum}"
    log = work / f"{name}.log"
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={gpus}", "--master_port=29611"]
    if script:  # the shared reference script: ARCH BSZ SEQ, gradient accumulation 1 only
        cmd += [script, "qwen7b", str(MICRO), str(SEQ)]
    else:
        cmd += [__file__, "--ddp-worker", "--model", str(model), "--accum", str(accum), "--steps", str(steps)]
    with log.open("w") as f:
        code = subprocess.run(cmd, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT).returncode
    found = [l for l in log.read_text().splitlines() if l.startswith("RESULT ")]
    if code != 0 or not found:
        return {"name": name, "error": f"exit {code}, see {log}"}
    result = json.loads(found[-1][len("RESULT "):])
    return {"name": name, "tokens_per_s": result["tokens_per_s_global"], "gpu_mem_gib": result["peak_gib"]}


def ddp_worker(model_dir: str, accum: int, steps: int) -> None:
    """Raw Unsloth + torch DDP, started by torchrun: what a user gets without this project."""
    import unsloth  # noqa: F401  (first: it patches transformers)
    from contextlib import nullcontext

    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP
    from unsloth import FastLanguageModel

    dist.init_process_group("nccl")
    rank, world, local = dist.get_rank(), dist.get_world_size(), int(os.environ["LOCAL_RANK"])
    torch.cuda.set_device(local)
    model, _ = FastLanguageModel.from_pretrained(model_dir, max_seq_length=SEQ, dtype=torch.bfloat16,
                                                 load_in_4bit=False, local_files_only=True, device_map={"": local})
    model = FastLanguageModel.get_peft_model(model, r=16, lora_alpha=32, lora_dropout=0.0, bias="none",
                                             target_modules=TARGETS, use_gradient_checkpointing="unsloth",
                                             random_state=0)
    model.train()
    ddp = DDP(model, device_ids=[local], static_graph=True) if world > 1 else model
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4, fused=True)
    gen = torch.Generator(device="cuda").manual_seed(rank)
    times = []
    for _ in range(steps):
        torch.cuda.synchronize()
        start = time.perf_counter()
        for i in range(accum):
            ids = torch.randint(0, 1000, (MICRO, SEQ), device="cuda", generator=gen)
            quiet = ddp.no_sync() if world > 1 and i < accum - 1 else nullcontext()
            with quiet:
                (ddp(input_ids=ids, labels=ids).loss / accum).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    step_s = statistics.median(times[WARMUP:])
    if rank == 0:
        print("RESULT " + json.dumps(dict(world=world, accum=accum, step_s=round(step_s, 4),
                                          tokens_per_s_global=round(world * accum * MICRO * SEQ / step_s),
                                          peak_gib=round(torch.cuda.max_memory_allocated() / 2**30, 2))), flush=True)
    dist.destroy_process_group()


def table(rows: list[dict], accum: int) -> list[str]:
    by = {r["name"]: r for r in rows}
    base = by.get(f"ours-1gpu-auto-accum{accum}", {}).get("tokens_per_s")
    ddp1 = by.get(f"ddp-1gpu-accum{accum}", {}).get("tokens_per_s")
    lines = [f"### grad accum {accum}", "",
             "| run | tokens/s | scaling | sync ms/step | MB exchanged/step | peak GiB |", "|---|---|---|---|---|---|"]
    for r in rows:
        if not r["name"].endswith(f"accum{accum}"):
            continue
        if "error" in r:
            lines.append(f"| {r['name']} | failed: {r['error']} | | | | |")
            continue
        ref = ddp1 if r["name"].startswith("ddp") else base
        scale = f"{r['tokens_per_s'] / ref:.2f}x" if ref else ""
        lines.append(f"| {r['name']} | {r['tokens_per_s']:,.0f} | {scale} | {r.get('sync_ms', 0):.2f} | "
                     f"{r.get('sync_mb', 0):.1f} | {r['gpu_mem_gib']:.1f} |")
    return lines + [""]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--accum", default="1,4")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--layers", type=int, default=28, help="fewer layers for a quick check of the script")
    ap.add_argument("--runs", default="ours,nccl,shm,ddp")
    ap.add_argument("--ddp-script", help="run this DDP baseline script (reference_ddp_bench.py) instead")
    ap.add_argument("--work", default="/tmp/multigpu_bench")
    ap.add_argument("--out")
    ap.add_argument("--ddp-worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--model", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.ddp_worker:
        return ddp_worker(args.model, int(args.accum), args.steps)
    started = time.time()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    model = make_model(Path(f"/tmp/models/qwen7b-{args.layers}l"), args.layers)
    accums = [int(a) for a in args.accum.split(",")]
    data = make_data(work / "data.jsonl", args.steps * MICRO * max(accums) * 2)
    runs = args.runs.split(",")
    rows = []
    for accum in accums:
        for tag, devices, backend in [("ours", [0], "auto"), ("nccl", [0, 1], "nccl"), ("shm", [0, 1], "shm")]:
            if tag in runs:
                rows.append(run_ours(work, model, data, devices, backend, accum, args.steps))
                print(json.dumps(rows[-1]), flush=True)
        if "ddp" in runs:
            for gpus in (1, 2):
                rows.append(run_ddp(work, model, gpus, accum, args.steps, args.ddp_script))
                print(json.dumps(rows[-1]), flush=True)
    import torch
    device = f"{torch.cuda.device_count()} x {torch.cuda.get_device_name(0)}"
    head = [f"# Multi-GPU LoRA throughput ({time.strftime('%Y-%m-%d')}, {device})", "",
            f"Qwen2.5-7B shape ({args.layers} layers), LoRA r=16 all-linear, bf16, seq {SEQ}, micro-batch {MICRO} "
            f"per GPU, gradient checkpointing on, {args.steps} steps (median after {WARMUP}). "
            f"Command: `python bench/multigpu_bench.py {' '.join(sys.argv[1:])}` ({time.time() - started:.0f} s). "
            "Scaling: ours against our 1 GPU, DDP against DDP on 1 GPU.", ""]
    text = "\n".join(head + [l for a in accums for l in table(rows, a)])
    print(text)
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
