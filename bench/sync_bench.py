"""Gradient exchange between GPUs: ms per exchange of fp32 gradients, one process per GPU.

    python bench/sync_bench.py [--gpus 0,1] [--sizes-mb 72,160] [--iters 20] [--out bench/results/multigpu_sync.md]

Backends: nccl (torch.distributed all-reduce of 25 MB buckets), shm with fp32 on the wire, shm
with bf16 on the wire: the project's real GradSync classes, measured on finish() alone (no backward
to overlap with: the worst case). Each result is checked against the exact sum.
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from trainer_backend.config import SyncConfig  # noqa: E402
from trainer_backend.train.sync import make_sync  # noqa: E402
from trainer_backend.train.sync.shm_files import claim, release  # noqa: E402

BACKENDS = [("nccl", "fp32"), ("shm", "fp32"), ("shm", "bf16")]
TENSORS = 392  # a 7B LoRA r=16 on all linear layers has 28 layers x 7 modules x 2 matrices


def grads_for(rank: int, numel: int, device: torch.device) -> list[torch.Tensor]:
    g = torch.Generator(device=device).manual_seed(rank)
    sizes = [numel // TENSORS] * TENSORS
    sizes[-1] += numel - sum(sizes)
    return [torch.randn(n, generator=g, device=device) for n in sizes]


def rank_main(rank: int, gpus: list[int], sizes_mb: list[float], iters: int, job_ids: dict, results) -> None:
    device = torch.device("cuda", gpus[rank])
    torch.cuda.set_device(device)
    torch.set_num_threads(max(1, (os.cpu_count() or 2) // len(gpus)))
    world = len(gpus)
    torch.distributed.init_process_group("nccl", rank=rank, world_size=world, device_id=device)
    for mb in sizes_mb:
        numel = int(mb * 1e6 / 4)
        mine = grads_for(rank, numel, device)
        exact = [sum(t) for t in zip(*[grads_for(r, numel, device) for r in range(world)])]
        for backend, wire in BACKENDS:
            cfg = SyncConfig(backend=backend, devices=gpus, wire_dtype=wire)
            sync = make_sync(cfg, rank, world, device, job_ids[(mb, backend, wire)])
            params = [torch.nn.Parameter(torch.zeros_like(t)) for t in mine]
            sync.prepare(params)
            times, err = [], 0.0
            for i in range(iters + 3):
                for p, t in zip(params, mine):
                    p.grad = t.clone()
                torch.cuda.synchronize()
                start = time.perf_counter()
                sync.before_last_backward()
                sync.finish()
                torch.cuda.synchronize()
                if i >= 3:
                    times.append((time.perf_counter() - start) * 1e3)
            err = max(float((p.grad - e).abs().max() / e.abs().max()) for p, e in zip(params, exact))
            sync.close()
            if rank == 0:
                results.put((mb, backend, wire, statistics.median(times), min(times), err))
            del params
    torch.distributed.destroy_process_group()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--gpus", default="0,1")
    ap.add_argument("--sizes-mb", default="72,160")
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--out")
    args = ap.parse_args()
    gpus = [int(g) for g in args.gpus.split(",")]
    sizes = [float(s) for s in args.sizes_mb.split(",")]
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=os.environ.get("MASTER_PORT", "29533"))
    job_ids = {(mb, b, w): f"syncbench-{uuid.uuid4().hex[:8]}" for mb in sizes for b, w in BACKENDS}
    folders = [claim(j) for (mb, b, w), j in job_ids.items() if b == "shm"]
    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    procs = [ctx.Process(target=rank_main, args=(r, gpus, sizes, args.iters, job_ids, results)) for r in range(len(gpus))]
    try:
        for p in procs:
            p.start()
        for p in procs:
            p.join()
    finally:
        for f in folders:
            release(f)
    rows = []
    while not results.empty():
        rows.append(results.get())
    if any(p.exitcode != 0 for p in procs) or not rows:
        sys.exit(f"a rank failed: exit codes {[p.exitcode for p in procs]}")
    name = torch.cuda.get_device_name(gpus[0]) if torch.cuda.is_available() else "?"
    lines = [f"Gradient exchange, {len(gpus)} x {name}, {time.strftime('%Y-%m-%d')}, "
             f"`python bench/sync_bench.py --gpus {args.gpus} --sizes-mb {args.sizes_mb}`", "",
             "| fp32 gradient | backend | wire | median ms | best ms | max rel. error |",
             "|---|---|---|---|---|---|"]
    for mb, backend, wire, med, best, err in sorted(rows, key=lambda r: (r[0], r[1], r[2])):
        lines.append(f"| {mb:g} MB | {backend} | {wire} | {med:.2f} | {best:.2f} | {err:.1e} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
