"""Each GPU-sized preset's measured peak memory against the figure it declares (one GPU).

    source .gpu-bundle/install.sh && python bench/preset_memory.py --out bench/results/preset_memory.md \
        [--presets qwen2.5-7b-instruct,llama-3.1-8b-instruct] [--steps 5]

For every preset variant that declares `planner.gpu_mem_gib` (the 24/48/80 GB files): a random-init
model of its exact architecture (the published config.json fields recorded in the preset) is saved to
/tmp, then the preset runs unchanged through the project's loader and training loop (method,
micro-batch, sequence length, checkpointing, optimizer, LoRA rank and targets, packing) on rows longer
than its sequence length, so every pass is as full as the preset allows. Only three things differ
from a user's run: the data, the ChatML byte tokenizer of the random model (token count is all that
memory sees), and gradient accumulation set to 1 (accumulating adds gradients into buffers that
already exist: it does not change the peak, only the time).

`peak` is what must fit on the GPU, as the planner defines it: the allocator's reserved peak plus
the memory the driver holds outside PyTorch. Presets of one architecture share a worker process
(one model build, one import of unsloth); the allocator is emptied and its peaks reset between them.
"""
from __future__ import annotations

import argparse
import datetime
import gc
import hashlib
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from random_models import make_model_dir, write_alpaca_letters  # noqa: E402

WORK = Path("/tmp/preset-memory")
TOLERANCE = 0.15


def gpu_preset_groups(families: list[str]) -> list[list[str]]:
    """The GPU-sized presets whose names start with one of `families` (all when empty), grouped by
    architecture."""
    from trainer_backend.config import PRESETS_DIR, load_config

    groups: dict[str, list[str]] = {}
    for path in sorted(PRESETS_DIR.glob("*.yaml")):
        cfg = load_config(path)
        wanted = not families or path.stem.startswith(tuple(families))
        if wanted and cfg.planner.gpu_mem_gib and cfg.planner.expected_peak_gib:
            groups.setdefault(json.dumps(cfg.model.architecture, sort_keys=True), []).append(path.stem)
    return list(groups.values())


def model_folder(fields: dict) -> Path:
    return WORK / "models" / hashlib.sha1(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:10]


# ---- worker: one architecture, several presets -----------------------------------------------
def bench_config(name: str, model_dir: Path, data: Path, steps: int):
    from trainer_backend.presets import load_preset

    cfg = load_preset(name)
    cfg.model.name_or_path = str(model_dir)
    cfg.data.path, cfg.data.format, cfg.data.eval_ratio = str(data), "alpaca", 0.0
    cfg.template.name = "chatml"
    cfg.train.max_steps, cfg.train.grad_accum, cfg.train.effective_batch_size = steps, 1, None
    cfg.train.save_every, cfg.train.eval_every, cfg.train.warmup_steps = 0, 0, 0
    cfg.output.dir = str(WORK / "runs" / name)
    return cfg


def measure(name: str, model_dir: Path, steps: int) -> dict:
    import torch

    from trainer_backend.models.loading import load_for_training
    from trainer_backend.train.events import EventLog
    from trainer_backend.train.inputs import load_examples
    from trainer_backend.train.loop import StopFlag, fit, prepare_config
    from trainer_backend.train.sync.local import LocalSync

    device = torch.device("cuda", 0)
    data = WORK / f"{name}.jsonl"
    probe = bench_config(name, model_dir, data, steps)
    write_alpaca_letters(data, rows=probe.train.micro_batch_size * steps + 4, seq=probe.template.max_seq_len)
    cfg = prepare_config(probe, device)
    job = Path(cfg.output.dir)
    shutil.rmtree(job, ignore_errors=True)
    events = EventLog(job)
    tokenizer, train, _ = load_examples(cfg, events)
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    loaded = load_for_training(cfg, device)
    fit(loaded, cfg, train, [], job, sync=LocalSync(), device=device, events=events, stop=StopFlag(),
        pad_id=tokenizer.pad_token_id)
    torch.cuda.synchronize()
    total = torch.cuda.mem_get_info()[1]
    context = (total - torch.cuda.mem_get_info()[0] - torch.cuda.memory_reserved()) / 2**30
    row = dict(preset=name, method=cfg.method, micro_batch_size=cfg.train.micro_batch_size,
               seq=cfg.template.max_seq_len, checkpointing=cfg.train.gradient_checkpointing,
               optimizer=cfg.train.optimizer, gpu_mem_gib=cfg.planner.gpu_mem_gib,
               declared_gib=cfg.planner.expected_peak_gib,
               allocated_gib=torch.cuda.max_memory_allocated() / 2**30,
               peak_gib=torch.cuda.max_memory_reserved() / 2**30 + context, seconds=time.perf_counter() - t0)
    del loaded, train
    gc.collect()
    torch.cuda.empty_cache()
    return row


def worker(names: list[str], steps: int) -> None:
    import unsloth  # noqa: F401  (first: it patches transformers)

    from trainer_backend.presets import load_preset

    fields = load_preset(names[0]).model.architecture
    model_dir = make_model_dir(model_folder(fields), fields)
    for name in names:
        try:
            row = measure(name, model_dir, steps)
        except Exception as err:  # one preset failing (e.g. out of memory) must not hide the others
            row = dict(preset=name, error=f"{type(err).__name__}: {str(err)[:160]}")
        print("RESULT " + json.dumps(row), flush=True)
        shutil.rmtree(WORK / "runs" / name, ignore_errors=True)
    shutil.rmtree(model_dir)  # a 7-8B model is 15 GB: the next architecture needs the disk


# ---- driver ------------------------------------------------------------------------------------
def run_group(names: list[str], steps: int, timeout: int) -> list[dict]:
    cmd = [sys.executable, __file__, "--worker", ",".join(names), "--steps", str(steps)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
        out, err = proc.stdout, proc.stderr
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        err = f"timeout after {timeout} s"
    rows = [json.loads(line[7:]) for line in out.splitlines() if line.startswith("RESULT ")]
    done = {r["preset"] for r in rows}
    tail = ((err or "").strip().splitlines() or ["no output"])[-1][:160]
    return rows + [dict(preset=n, error=tail) for n in names if n not in done]


def table(rows: list[dict], device: str, command: str) -> str:
    ok = [r for r in rows if "error" not in r]
    worst = max((abs(r["peak_gib"] / r["declared_gib"] - 1) for r in ok), default=0.0)
    lines = ["# Preset memory: measured peak vs the figure each preset declares\n",
             f"- date: {datetime.date.today()}\n- device: {device}\n- command: `{command}`\n",
             f"{len(ok)} of {len(rows)} variants measured; largest deviation from the declared peak "
             f"{worst:.1%} (goal: within {TOLERANCE:.0%}).\n",
             "| preset | method | micro-batch x seq | checkpointing | optimizer | declared GiB | measured peak GiB "
             "| deviation | allocated GiB |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['preset']} | failed: {r['error']} | | | | | | | |")
            continue
        dev = r["peak_gib"] / r["declared_gib"] - 1
        lines.append(f"| {r['preset']} | {r['method']} | {r['micro_batch_size']} x {r['seq']} | {r['checkpointing']} "
                     f"| {r['optimizer']} | {r['declared_gib']:.2f} | {r['peak_gib']:.2f} | {dev:+.1%} "
                     f"| {r['allocated_gib']:.2f} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="bench/results/preset_memory.md")
    ap.add_argument("--presets", default="", help="comma-separated name prefixes, e.g. qwen3-8b,vistral-7b-chat")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--timeout", type=int, default=420, help="seconds per architecture")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    if args.worker:
        worker(args.worker.split(","), args.steps)
        return 0
    rows = []
    for group in gpu_preset_groups([f for f in args.presets.split(",") if f]):
        rows += run_group(group, args.steps, args.timeout)
        print(rows[-len(group):], flush=True)
    import torch

    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    command = "python bench/preset_memory.py " + " ".join(sys.argv[1:])
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(table(rows, device, command))
    Path(args.out).with_suffix(".jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    print(Path(args.out).read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
