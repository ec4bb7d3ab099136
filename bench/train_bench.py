"""Training throughput and memory: raw Unsloth vs transformers+PEFT vs our trainer, in one command.

    python bench/train_bench.py --out bench/results/train_bench.md [--archs qwen1.5b,qwen7b] [--steps 12]

Each configuration runs in its own subprocess (importing unsloth patches transformers). Models are
random-init Qwen2.5-1.5B/7B shapes built from a config and saved to /tmp (random weights train at
the speed of real ones); data are random tokens, seq 2048, no padding; LoRA r=16 on all linear
layers, bf16, fused AdamW. tokens/s is measured over steps 4-12 (the first 3 warm up kernels).
"raw unsloth" is the setup of the reference bench: FastLanguageModel.from_pretrained +
get_peft_model(use_gradient_checkpointing="unsloth") and a bare forward/backward/step loop.
"ours" goes through the trainer's real loading path (models.load_for_training) and loop (fit).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("UNSLOTH_DISABLE_STATISTICS", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import random_models  # noqa: E402
VOCAB = 1000  # random ids drawn below this, as in the reference bench
WARMUP = 3
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]

ARCHS = {"qwen1.5b": "qwen2.5-1.5b", "qwen7b": "qwen2.5-7b"}   # bench name -> calibrated shape
# (arch, mode, micro-batch): the batches of the reference table
RUNS = [("qwen1.5b", "raw_unsloth", 8), ("qwen1.5b", "hf", 8), ("qwen1.5b", "ours", 8),
        ("qwen7b", "raw_unsloth", 4), ("qwen7b", "hf", 4), ("qwen7b", "ours", 4),
        ("qwen7b", "raw_unsloth_4bit", 4), ("qwen7b", "ours_qlora", 4)]


# ---- child processes ---------------------------------------------------------------------------
def make_model_dir(arch: str) -> str:
    return str(random_models.make_model_dir(Path(f"/tmp/models/{arch}"), random_models.architecture(ARCHS[arch])))


def child_raw(mode: str, folder: str, bsz: int, seq: int, steps: int) -> dict:
    import torch

    if mode.startswith("raw_unsloth"):
        from unsloth import FastLanguageModel

        model, _ = FastLanguageModel.from_pretrained(folder, max_seq_length=seq, dtype=torch.bfloat16,
                                                     load_in_4bit=mode.endswith("4bit"), local_files_only=True)
        model = FastLanguageModel.get_peft_model(model, r=16, lora_alpha=32, lora_dropout=0.0, bias="none",
                                                 target_modules=LORA_TARGETS, use_gradient_checkpointing="unsloth",
                                                 random_state=0)
    else:
        from peft import LoraConfig, get_peft_model
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.bfloat16, attn_implementation="sdpa").cuda()
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
        model = get_peft_model(model, LoraConfig(task_type="CAUSAL_LM", r=16, lora_alpha=32, lora_dropout=0.0,
                                                 bias="none", target_modules=LORA_TARGETS))
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4, fused=True)
    times = random_models.timed_random_steps(model, optimizer, bsz, seq, steps)
    return {"tokens_per_s": bsz * seq / (sum(times[WARMUP:]) / len(times[WARMUP:]))}


def child_ours(mode: str, folder: str, bsz: int, seq: int, steps: int) -> dict:
    import random
    import shutil

    import unsloth  # noqa: F401  (first, as the trainer's CLI does for GPU runs)
    import torch

    sys.path.insert(0, str(ROOT))
    from trainer_backend.config import RunConfig
    from trainer_backend.models.engine import resolve_engine
    from trainer_backend.models.loading import load_for_training
    from trainer_backend.templates.example import Example
    from trainer_backend.train.events import EventLog, read_events
    from trainer_backend.train.loop import StopFlag, fit
    from trainer_backend.train.sync.local import LocalSync

    job = Path(f"/tmp/train_bench_job_{mode}")
    shutil.rmtree(job, ignore_errors=True)
    device = torch.device("cuda", 0)
    cfg = RunConfig.model_validate({
        "method": "qlora" if mode == "ours_qlora" else "lora",
        "model": {"name_or_path": folder, "engine": "unsloth"},
        "template": {"max_seq_len": seq, "packing": False},  # rows of one length: nothing to pack
        "lora": {"r": 16, "alpha": 32, "dropout": 0.0, "target_modules": "all-linear"},
        "train": {"micro_batch_size": bsz, "grad_accum": 1, "max_steps": steps, "lr": 1e-4,
                  "scheduler": "constant", "precision": "bf16", "gradient_checkpointing": "on", "seed": 0},
        "sync": {"devices": [0]},
        "output": {"dir": str(job)},
    })
    cfg = resolve_engine(cfg, device)
    rng = random.Random(0)
    examples = [Example(row=i, input_ids=[rng.randrange(VOCAB) for _ in range(seq)],
                        trained=[False] + [True] * (seq - 1), text="") for i in range(bsz * steps)]
    loaded = load_for_training(cfg, device)
    fit(loaded, cfg, examples, [], job, sync=LocalSync(), device=device, events=EventLog(job), stop=StopFlag(),
        pad_id=VOCAB)
    t = {e["step"]: e["t"] for e in read_events(job, "train")}
    return {"tokens_per_s": bsz * seq * (steps - WARMUP) / (t[steps] - t[WARMUP])}


def child(arch: str, mode: str, bsz: int, seq: int, steps: int) -> None:
    if mode.startswith("raw_unsloth"):
        import unsloth  # noqa: F401  (must come before transformers)
    import torch

    folder = make_model_dir(arch)
    torch.cuda.reset_peak_memory_stats()
    run = child_ours if mode.startswith("ours") else child_raw
    result = run(mode, folder, bsz, seq, steps)
    result.update(arch=arch, mode=mode, bsz=bsz, peak_gib=torch.cuda.max_memory_allocated() / 2 ** 30)
    print("RESULT " + json.dumps(result), flush=True)


# ---- the driver --------------------------------------------------------------------------------
def run_child(arch: str, mode: str, bsz: int, seq: int, steps: int) -> dict:
    cmd = [sys.executable, __file__, "--child", arch, mode, str(bsz), "--seq", str(seq), "--steps", str(steps)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
    return {"arch": arch, "mode": mode, "bsz": bsz, "error": tail[0][:200]}


LABELS = {"raw_unsloth": "raw unsloth", "hf": "transformers+peft", "ours": "ours (unsloth engine)",
          "raw_unsloth_4bit": "raw unsloth 4-bit", "ours_qlora": "ours QLoRA (unsloth 4-bit)"}
BASELINE = {"ours": "raw_unsloth", "ours_qlora": "raw_unsloth_4bit"}


def table(results: list[dict]) -> str:
    by_key = {(r["arch"], r["mode"]): r for r in results}
    rows = ["| model shape | engine | batch | tokens/s | peak GiB | vs raw unsloth (speed, memory) |",
            "|---|---|---|---|---|---|"]
    for r in results:
        if "error" in r:
            rows.append(f"| {r['arch']} | {LABELS[r['mode']]} | {r['bsz']} | failed: {r['error']} | | |")
            continue
        base = by_key.get((r["arch"], BASELINE.get(r["mode"], "")))
        versus = ""
        if base and "error" not in base:
            versus = (f"{r['tokens_per_s'] / base['tokens_per_s']:.1%}, "
                      f"{r['peak_gib'] / base['peak_gib']:.1%}")
        rows.append(f"| {r['arch']} | {LABELS[r['mode']]} | {r['bsz']} | {r['tokens_per_s']:,.0f} | "
                    f"{r['peak_gib']:.1f} | {versus} |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="also write the table (with date, device, command) here")
    parser.add_argument("--archs", default="qwen1.5b,qwen7b")
    parser.add_argument("--modes", default="", help="comma-separated subset of the modes (default: all)")
    parser.add_argument("--seq", type=int, default=2048)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--child", nargs=3, metavar=("ARCH", "MODE", "BSZ"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        arch, mode, bsz = args.child
        child(arch, mode, int(bsz), args.seq, args.steps)
        return
    archs = args.archs.split(",")
    modes = set(args.modes.split(",")) if args.modes else set(LABELS)
    results = [run_child(arch, mode, bsz, args.seq, args.steps) for arch, mode, bsz in RUNS
               if arch in archs and mode in modes]
    import torch

    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    text = (f"Date: {time.strftime('%Y-%m-%d')}, device: {device}, seq {args.seq}, steps {args.steps} "
            f"(tokens/s over steps {WARMUP + 1}-{args.steps}), LoRA r=16 all-linear, bf16, checkpointing on.\n"
            f"Command: python bench/train_bench.py {' '.join(sys.argv[1:])}\n\n{table(results)}\n")
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
