"""The planner's speed-up: our trainer with every field `auto` vs raw Unsloth defaults (one GPU).

    source .gpu-bundle/install.sh && python bench/plan_bench.py --out bench/results/plan_speed.md

Qwen2.5-7B shape (random init), LoRA r=16 all-linear, seq 2048, effective batch 16 sequences:
  1. raw Unsloth with its defaults: use_gradient_checkpointing="unsloth", micro-batch 4, grad accum 4;
  2. `python -m trainer_backend train` with method/checkpointing/micro-batch `auto` (full GPU);
  3. the same on a simulated 24 GB GPU (torch.cuda.set_per_process_memory_fraction) and a 24 GiB budget.
Each runs in its own subprocess; tokens/s is the mean over optimizer steps after the first two.
"""
from __future__ import annotations

import argparse
import datetime
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from memory_accuracy import MODELS, ROOT, make_models  # noqa: E402
from random_models import timed_random_steps, write_alpaca_letters  # noqa: E402

ARCH = "qwen2.5-7b"
SEQ, EFFECTIVE, STEPS, WARM = 2048, 16, 8, 2
WORK = Path("/tmp/plan-bench")


def baseline_worker() -> None:
    """Raw Unsloth as a user would start it: its default checkpointing, micro-batch 4, accum 4."""
    import unsloth  # noqa: F401  (patches transformers first)
    import torch
    from unsloth import FastLanguageModel

    model, _ = FastLanguageModel.from_pretrained(str(MODELS / ARCH), max_seq_length=SEQ, dtype=torch.bfloat16,
                                                 load_in_4bit=False, local_files_only=True)
    model = FastLanguageModel.get_peft_model(
        model, r=16, lora_alpha=32, lora_dropout=0.0, bias="none", use_gradient_checkpointing="unsloth",
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
    model.train()  # Unsloth checkpoints only in training mode
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-4, fused=True)
    times = timed_random_steps(model, opt, batch=4, seq=SEQ, steps=STEPS, accum=4)
    tps = EFFECTIVE * SEQ / (sum(times[WARM:]) / len(times[WARM:]))
    print("RESULT " + json.dumps(dict(tokens_per_s=tps, peak_gib=torch.cuda.max_memory_allocated() / 2**30,
                                      plan="unsloth checkpointing, micro-batch 4 x accum 4")), flush=True)


def trainer_cmd(out_dir: Path, data: Path, gpu_gib: float | None) -> list[str]:
    sets = {"model.name_or_path": str(MODELS / ARCH), "data.path": str(data), "output.dir": str(out_dir),
            "template.max_seq_len": SEQ, "template.name": "chatml", "method": "auto",
            "train.micro_batch_size": "auto", "train.gradient_checkpointing": "auto",
            "train.effective_batch_size": EFFECTIVE, "train.max_steps": STEPS, "train.save_every": 0,
            "train.warmup_steps": 0, "sync.devices": "[0]", "lora.r": 16, "lora.alpha": 32}
    if gpu_gib is not None:
        sets["planner.gpu_mem_gib"] = gpu_gib
    args = ["train", "qwen2.5-7b-instruct"] + [a for k, v in sets.items() for a in ("--set", f"{k}={v}")]
    fraction = "" if gpu_gib is None else (
        f"torch.cuda.set_per_process_memory_fraction({gpu_gib} * 2**30 / torch.cuda.mem_get_info()[1]); ")
    code = ("import sys, torch; " + fraction +
            "from trainer_backend.__main__ import main; sys.exit(main(sys.argv[1:]))")
    return [sys.executable, "-c", code, *args]


def trainer_run(name: str, data: Path, gpu_gib: float | None) -> dict:
    out_dir = WORK / name
    subprocess.run(["rm", "-rf", str(out_dir)], check=True)
    proc = subprocess.run(trainer_cmd(out_dir, data, gpu_gib), cwd=ROOT, capture_output=True, text=True, timeout=400)
    events = [json.loads(line) for line in (out_dir / "events.jsonl").read_text().splitlines()] \
        if (out_dir / "events.jsonl").exists() else []
    train = [e for e in events if e.get("kind") == "train"]
    if proc.returncode != 0 or len(train) <= WARM:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return dict(error=f"exit {proc.returncode}: {tail[:200]}")
    import yaml

    resolved = yaml.safe_load((out_dir / "config.yaml").read_text())
    t = resolved["train"]
    return dict(tokens_per_s=sum(e["tokens_per_s"] for e in train[WARM:]) / len(train[WARM:]),
                peak_gib=max(max(e["gpu_mem_gib"] or [0]) for e in train),
                predicted_gib=resolved["planner"]["expected_peak_gib"],
                plan=f"{resolved['method']}, checkpointing {t['gradient_checkpointing']}, "
                     f"micro-batch {t['micro_batch_size']} x accum {t['grad_accum']}")


def subprocess_result(args: list[str]) -> dict:
    proc = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, timeout=400)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if not lines:
        return dict(error=(proc.stderr.strip().splitlines() or ["no output"])[-1][:200])
    return json.loads(lines[-1][7:])


def render(rows: dict, device: str, command: str) -> str:
    base = rows["raw Unsloth defaults"].get("tokens_per_s")
    lines = ["# Planner speed: all-`auto` trainer vs raw Unsloth defaults\n",
             f"- date: {datetime.date.today()}\n- device: {device}\n- command: `{command}`\n"
             f"- Qwen2.5-7B shape, LoRA r=16 all-linear, seq {SEQ}, effective batch {EFFECTIVE} sequences, "
             f"{STEPS} optimizer steps (mean of steps {WARM + 1}-{STEPS})\n",
             "| run | plan | tokens/s | vs raw Unsloth | allocated peak GiB | planner's peak GiB |",
             "|---|---|---|---|---|---|"]
    for name, r in rows.items():
        if "error" in r:
            lines.append(f"| {name} | failed: {r['error']} | | | | |")
            continue
        ratio = f"{r['tokens_per_s'] / base:.2f}x" if base else ""
        lines.append(f"| {name} | {r['plan']} | {r['tokens_per_s']:,.0f} | {ratio} | {r['peak_gib']:.1f} | "
                     f"{r.get('predicted_gib', '')} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="bench/results/plan_speed.md")
    ap.add_argument("--baseline", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--make", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.baseline:
        baseline_worker()
        return 0
    if args.make:
        make_models([ARCH])
        return 0
    WORK.mkdir(parents=True, exist_ok=True)
    device = subprocess.run([sys.executable, __file__, "--make"], capture_output=True, text=True, check=True).stdout
    device = next(line[7:] for line in device.splitlines() if line.startswith("DEVICE "))
    data = WORK / "data.jsonl"
    write_alpaca_letters(data, rows=EFFECTIVE * STEPS + 16, seq=SEQ)
    rows = {"raw Unsloth defaults": subprocess_result(["--baseline"]),
            "trainer, all auto (80 GB)": trainer_run("auto80", data, None),
            "trainer, all auto, 24 GB simulated": trainer_run("auto24", data, 24.0)}
    Path(args.out).write_text(render(rows, device, f"python bench/plan_bench.py --out {args.out}"))
    print(Path(args.out).read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
