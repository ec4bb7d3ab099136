"""DPO throughput and memory: our trainer vs TRL's DPOTrainer on Unsloth, same pairs, one command.

    python bench/dpo_bench.py --out bench/results/dpo_bench.md [--arch qwen2.5-7b] [--steps 12] [--batch 2]
                              [--chunks 512,128] [--optimizers adamw_8bit,adamw] [--rounds 2]

Model: a random-init Qwen2.5-7B shape (random weights train at the speed of real ones) with the
benches' ChatML byte tokenizer, LoRA r=16 on all linear layers, bf16, one GPU. Data: the same
preference pairs for both (prompt 128 letters, chosen and rejected 384 letters each, i.e. about
540 tokens a sequence with the template), `--batch` pairs a step, no accumulation.
- "TRL + Unsloth": `import unsloth` first (it patches TRL's trainers), FastLanguageModel +
  get_peft_model(use_gradient_checkpointing="unsloth"), then trl.DPOTrainer with DPOConfig's
  defaults (sigmoid loss, beta 0.1, reference = adapters disabled, fused LM head) except the
  batch, steps, learning rate and bf16. It tokenizes the conversational pairs with the same chat
  template.
- "ours": the trainer's loading path and loop (train.objective dpo, engine unsloth, checkpointing on),
  once per `--optimizers` entry. Under Unsloth, DPOConfig's defaults are `optim: adamw_8bit` and
  `weight_decay: 0.001` (Unsloth rewrites TRL's config defaults); the first entry, adamw_8bit, is the
  same optimizer and the one compared with TRL. `adamw` (fp32 state, the trainer's default and the
  one its exactness proofs use) keeps 4x the optimizer state: 8 bytes a LoRA parameter, not 2.
tokens/s counts the tokens of both sequences of every pair, over the steps after the first 3.
Peak = torch.cuda.max_memory_allocated from the start of training on both sides (after the model
is loaded and, for ours, after the warm-up pass: neither side counts its loading); the planner's
estimate of our run is printed next to it (`allocated` is the comparable figure; `peak` adds the
allocator reserve and the CUDA context).
`--memory-trace DIR` also writes, for each run, what is alive at its peak (bench/memory_peak.py) to
DIR/peak-<run>.md; the trace slows the steps, so its tokens/s are not comparable. `--profile DIR`
writes torch's profile of steps 4-6 of each run (bench/step_profile.py) to DIR/profile-<run>.md.
Each run is its own subprocess (importing unsloth patches transformers and TRL). `--chunks` runs ours
once per LM-head chunk (positions scored at a time, LOGP_HEAD_CHUNK) and optimizer: the trade
between the step's peak and its speed; the first chunk with the first optimizer is the run reported
against TRL. `--rounds N` runs all of them N times in turn and reports medians (the table is
rewritten after each round): the same run's tokens/s moved by a quarter between rounds on one
machine, and a round's ratio cancels that drift.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("UNSLOTH_DISABLE_STATISTICS", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import memory_peak  # noqa: E402
import random_models  # noqa: E402
from step_profile import StepProfile  # noqa: E402
from trainer_backend.config import LOGP_HEAD_CHUNK  # noqa: E402

WARMUP = 3
PROMPT, COMPLETION, SEQ = 128, 384, 1024


def write_pairs(path: Path, n: int, seed: int = 0) -> Path:
    rng = random.Random(seed)
    rows = [{"prompt": [{"role": "user", "content": random_models.letters(rng, PROMPT)}],
             "chosen": [{"role": "assistant", "content": random_models.letters(rng, COMPLETION)}],
             "rejected": [{"role": "assistant", "content": random_models.letters(rng, COMPLETION)}]}
            for _ in range(n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def our_config(folder: str, data: Path, job: Path, batch: int, steps: int, optimizer: str = "adamw_8bit"):
    from trainer_backend.config import RunConfig

    return RunConfig.model_validate({
        "method": "lora", "model": {"name_or_path": folder, "engine": "unsloth"},
        "data": {"path": str(data)}, "template": {"max_seq_len": SEQ, "packing": False},
        "lora": {"r": 16, "alpha": 32, "dropout": 0.0, "target_modules": "all-linear"},
        "train": {"objective": "dpo", "micro_batch_size": batch, "grad_accum": 1, "max_steps": steps, "lr": 5e-6,
                  "scheduler": "constant", "precision": "bf16", "gradient_checkpointing": "on", "seed": 0,
                  "optimizer": optimizer, "weight_decay": 0.001},   # TRL's defaults under Unsloth
        "preference": {"beta": 0.1, "loss_type": "sigmoid"},
        "sync": {"devices": [0]}, "output": {"dir": str(job)},
    })


def pair_tokens(folder: str, data: Path, batch: int, steps: int) -> int:
    """Tokens of both sequences of the pairs one step trains (the same for every step here)."""
    from trainer_backend.data import load_dataset
    from trainer_backend.templates import load_tokenizer
    from trainer_backend.templates.pairs import build_preference_examples

    cfg = our_config(folder, data, Path("/tmp"), batch, steps)
    pairs, _ = build_preference_examples(load_dataset(data).conversations, load_tokenizer(folder), cfg.template)
    return sum(len(p.input_ids) for p in pairs[:batch])


class Probes:
    """What a child measures besides its timing: the peak from `start()` (where training starts),
    with `trace_dir` what is alive at it, with `profile_dir` where steps 4-6 spend their time."""

    def __init__(self, name: str, trace_dir: str, profile_dir: str):
        self.name, self.trace_dir = name, trace_dir
        self.profile = StepProfile(Path(profile_dir, f"profile-{name}.md"), WARMUP + 1, WARMUP + 3) \
            if profile_dir else None

    def start(self) -> None:
        import torch

        torch.cuda.reset_peak_memory_stats()
        if self.trace_dir:
            memory_peak.start()

    def step_end(self) -> None:
        if self.profile:
            self.profile.step_end()

    def finish(self) -> None:
        if self.trace_dir:
            Path(self.trace_dir, f"peak-{self.name}.md").write_text(f"# {self.name}\n\n" + memory_peak.report())


def child_trl(folder: str, data: Path, batch: int, steps: int, probes: Probes) -> dict:
    import unsloth  # noqa: F401  (before trl and transformers: it patches them)
    import torch
    from datasets import load_dataset
    from transformers import TrainerCallback
    from trl import DPOConfig, DPOTrainer
    from unsloth import FastLanguageModel

    model, tokenizer = FastLanguageModel.from_pretrained(folder, max_seq_length=SEQ, dtype=torch.bfloat16,
                                                         load_in_4bit=False, local_files_only=True)
    model = FastLanguageModel.get_peft_model(model, r=16, lora_alpha=32, lora_dropout=0.0, bias="none",
                                             target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                                             "up_proj", "down_proj"],
                                             use_gradient_checkpointing="unsloth", random_state=0)
    times: list[float] = []

    class Clock(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            torch.cuda.synchronize()
            times.append(time.perf_counter())
            probes.step_end()

    args = DPOConfig(output_dir="/tmp/dpo_bench_trl", per_device_train_batch_size=batch,
                     gradient_accumulation_steps=1, max_steps=steps, learning_rate=5e-6, bf16=True,
                     logging_steps=1, report_to=[], save_strategy="no", max_length=SEQ, seed=0)
    trainer = DPOTrainer(model=model, ref_model=None, args=args, processing_class=tokenizer,
                         train_dataset=load_dataset("json", data_files=str(data), split="train"),
                         callbacks=[Clock()])
    probes.start()
    trainer.train()
    return {"seconds_per_step": (times[-1] - times[WARMUP - 1]) / (steps - WARMUP),
            "first_loss": trainer.state.log_history[0].get("loss"),
            "optimizer": str(getattr(args.optim, "value", args.optim))}


def child_ours(folder: str, data: Path, batch: int, steps: int, chunk: int, optimizer: str, probes: Probes) -> dict:
    import unsloth  # noqa: F401  (first, as the trainer's CLI does for GPU runs)
    import torch

    from trainer_backend.models.engine import resolve_engine
    # the module, not the package's function of the same name: the sweep sets its LOGP_HEAD_CHUNK
    planner_estimate = importlib.import_module("trainer_backend.planner.estimate")
    from trainer_backend.train import loop
    from trainer_backend.train.events import read_events
    from trainer_backend.train.objectives import logps
    from trainer_backend.train.sync.local import LocalSync

    logps.LOGP_HEAD_CHUNK = planner_estimate.LOGP_HEAD_CHUNK = chunk   # the sweep's one variable

    job = Path("/tmp/dpo_bench_ours")
    shutil.rmtree(job, ignore_errors=True)
    cfg = resolve_engine(our_config(folder, data, job, batch, steps, optimizer), torch.device("cuda", 0))
    estimate = planner_estimate.estimate_resolved(cfg)
    fit = loop.fit

    def fit_from_a_fresh_peak(*args, **kwargs):   # TRL's peak, too, is reset after its loading
        probes.start()
        return fit(*args, **kwargs)

    clip_and_step = loop.clip_and_step

    def step_and_tick(*args, **kwargs):   # clip_and_step ends every optimizer step
        norm = clip_and_step(*args, **kwargs)
        probes.step_end()
        return norm

    loop.fit, loop.clip_and_step = fit_from_a_fresh_peak, step_and_tick
    code = loop.train_rank(cfg, 0, 1, 0, LocalSync(), job)
    if code != 0:
        raise RuntimeError(f"training exited {code}: {(job / 'train.log').read_text()[-500:]}")
    t = {e["step"]: e["t"] for e in read_events(job, "train")}
    first = read_events(job, "train")[0]["loss"]
    return {"seconds_per_step": (t[steps] - t[WARMUP]) / (steps - WARMUP), "first_loss": first,
            "planner_peak_gib": estimate.peak_gib, "planner_allocated_gib": estimate.allocated_gib, "chunk": chunk,
            "optimizer": optimizer}


def child(mode: str, arch: str, batch: int, steps: int, chunk: int, optimizer: str, trace_dir: str,
          profile_dir: str) -> None:
    if mode == "trl":
        import unsloth  # noqa: F401
    import torch

    folder = str(random_models.make_model_dir(Path(f"/tmp/models/{arch}"), random_models.architecture(arch)))
    data = write_pairs(Path("/tmp/dpo_bench_pairs.jsonl"), batch * steps)
    probes = Probes("trl" if mode == "trl" else f"ours-{chunk}-{optimizer}", trace_dir, profile_dir)
    result = child_trl(folder, data, batch, steps, probes) if mode == "trl" else \
        child_ours(folder, data, batch, steps, chunk, optimizer, probes)
    probes.finish()
    tokens = pair_tokens(folder, data, batch, steps)
    result.update(mode=mode, tokens_per_s=tokens / result["seconds_per_step"], tokens_per_step=tokens,
                  peak_gib=torch.cuda.max_memory_allocated() / 2 ** 30)
    print("RESULT " + json.dumps(result), flush=True)


def run_child(mode: str, arch: str, batch: int, steps: int, chunk: int = 0, optimizer: str = "",
              trace_dir: str = "", profile_dir: str = "") -> dict:
    cmd = [sys.executable, __file__, "--child", mode, "--arch", arch, "--batch", str(batch), "--steps", str(steps),
           "--chunk", str(chunk), "--optimizer", optimizer, "--memory-trace", trace_dir, "--profile", profile_dir]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:] or ["no output"]
    return {"mode": mode, "chunk": chunk, "optimizer": optimizer, "error": " | ".join(tail)[:400]}


def table(rounds: list[list[dict]], arch: str, batch: int, steps: int) -> str:
    """`rounds`: each round's results, TRL's run first, then ours once per chunk and optimizer; the
    first of ours is compared with TRL. tokens/s is the median over the rounds (each round's value
    in brackets), the speed ratio the median of the rounds' ratios: a round runs both sides back to
    back, so the host's drift between rounds cancels out of the ratio."""
    import statistics

    import torch

    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    command = "python bench/dpo_bench.py " + " ".join(a for a in sys.argv[1:])
    lines = [f"# DPO: ours vs TRL DPOTrainer on Unsloth ({arch} shape, LoRA r=16, bf16)", "",
             f"{time.strftime('%Y-%m-%d')}, {device}, `{command.strip()}`, {batch} pairs a step, {steps} steps, "
             f"{len(rounds)} round(s)", "",
             "| run | tokens/s | peak GiB (measured) | planner allocated / peak GiB | step-1 loss |",
             "|---|---|---|---|---|"]
    for runs in zip(*rounds):
        r = runs[0]
        if r["mode"] == "trl":
            label = f"TRL DPOTrainer + Unsloth (defaults: optim {r.get('optimizer', '?')})"
        else:
            label = f"ours (train.objective: dpo), train.optimizer {r['optimizer']}, LM head {r['chunk']} a chunk"
        failed = [x for x in runs if "error" in x]
        if failed:
            lines.append(f"| {label} | failed: {failed[0]['error']} | | | |")
            continue
        speeds = [x["tokens_per_s"] for x in runs]
        each = f" ({', '.join(f'{v:.0f}' for v in speeds)})" if len(runs) > 1 else ""
        plan = f"{r['planner_allocated_gib']:.2f} / {r['planner_peak_gib']:.2f}" if "planner_peak_gib" in r else "–"
        lines.append(f"| {label} | {statistics.median(speeds):.0f}{each} | {r['peak_gib']:.2f} | {plan} | "
                     f"{r['first_loss']:.4f} |")
    pairs = [(rnd[0], rnd[1]) for rnd in rounds if "error" not in rnd[0] and "error" not in rnd[1]]
    if pairs:
        trl, ours = pairs[0]
        ratio = statistics.median(o["tokens_per_s"] / t["tokens_per_s"] for t, o in pairs)
        lines += ["", f"ours ({ours['optimizer']}, chunk {ours['chunk']}) / TRL: {ratio:.2f}× tokens/s, "
                      f"{ours['peak_gib'] / trl['peak_gib']:.3f}× peak memory "
                      f"({ours['peak_gib'] - trl['peak_gib']:+.2f} GiB); planner allocated vs measured: "
                      f"{100 * (ours['planner_allocated_gib'] / ours['peak_gib'] - 1):+.1f}%"]
    return "\n".join(lines) + "\n"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--child", choices=["trl", "ours"])
    p.add_argument("--arch", default="qwen2.5-7b")
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--steps", type=int, default=12)
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "dpo_bench.md"))
    p.add_argument("--chunks", default=str(LOGP_HEAD_CHUNK), help="LM-head chunks to run ours with, e.g. 512,128")
    p.add_argument("--optimizers", default="adamw_8bit,adamw",
                   help="train.optimizer values to run ours with; the first is TRL's default under Unsloth")
    p.add_argument("--memory-trace", default="", metavar="DIR", help="write what is alive at each run's peak to DIR")
    p.add_argument("--rounds", type=int, default=1, help="run every side this many times, in turn")
    p.add_argument("--profile", default="", metavar="DIR", help="write each run's profile of steps 4-6 to DIR")
    p.add_argument("--chunk", type=int, default=LOGP_HEAD_CHUNK, help=argparse.SUPPRESS)
    p.add_argument("--optimizer", default="adamw_8bit", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        child(args.child, args.arch, args.batch, args.steps, args.chunk, args.optimizer, args.memory_trace,
              args.profile)
        return 0
    for folder in (args.memory_trace, args.profile):
        if folder:
            Path(folder).mkdir(parents=True, exist_ok=True)
    runs = [("trl", 0, "")] + [("ours", int(c), o) for c in args.chunks.split(",") for o in args.optimizers.split(",")]
    rounds = []
    for _ in range(args.rounds):   # the table is rewritten after each round: a cut-short sitting keeps its rounds
        rounds.append([run_child(mode, args.arch, args.batch, args.steps, chunk, optimizer, args.memory_trace,
                                 args.profile) for mode, chunk, optimizer in runs])
        text = table(rounds, args.arch, args.batch, args.steps)
        Path(args.out).write_text(text)
    print(text)
    return 0 if all("error" not in r for rnd in rounds for r in rnd) else 1


if __name__ == "__main__":
    sys.exit(main())
