"""Real-length data: this trainer (every field `auto`) vs Unsloth's notebook recipe, and the
fixed-length ceiling, one epoch each, in one run on one GPU.

    source .gpu-bundle/install.sh && python bench/realdata_bench.py --out bench/results/realdata.md

Data (offline cache, scripts/fetch_assets.py): 200 chitchat conversations (ShareGPT, truncated at
2048 tokens) and chatterbot Alpaca rows of 20-200 tokens, rendered with a Qwen tokenizer (Qwen3's
vocabulary, the Qwen2.5 ChatML template). Model: Qwen2.5-7B shape, random init, LoRA r=16 all-linear.
Runs, each in its own process:
  - this trainer: `python -m trainer_backend train qwen2.5-7b-instruct` with only the model and the
    data set (planner, packing, attention kernel all as shipped);
  - Unsloth's notebook recipe: FastLanguageModel + TRL SFTTrainer (batch 2 x accum 4, adamw_8bit,
    its gradient checkpointing) + train_on_responses_only, once with its defaults and once with
    packing=True;
  - this trainer on 2048-token rows (the fixed-length ceiling: no masks, no padding).
Reported: loop time (first step to last), real tokens/s (tokens of the data, pad excluded), trained
tokens/s (tokens in the loss), peak allocated GiB, launch to first step (process start to the end
of the first optimizer step). `--sets` and `--runs` pick a subset; `--launch-0.5b` adds the startup
profile of a Qwen2.5-0.5B shape, `--launch-runner 0.5b,7b` the run of each shape submitted to a
JobRunner on GPU 0: twice in its warm worker (trainer_backend/jobs/warm.py), then once cold
(`--runner-jobs` picks which).
"""
from __future__ import annotations

import argparse
import datetime
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from random_models import architecture, make_model_dir, write_alpaca_letters  # noqa: E402

SEQ, CHITCHAT_ROWS, ALPACA_ROWS, FIXED_ROWS = 2048, 200, 600, 96
QWEN_05B = dict(model_type="qwen2", num_hidden_layers=24, hidden_size=896, num_attention_heads=14,
                num_key_value_heads=2, intermediate_size=4864, vocab_size=151936, tie_word_embeddings=True)
RECIPE_CHATML = ("<|im_start|>user\n", "<|im_start|>assistant\n")


# ---- data -----------------------------------------------------------------------------------
def qwen_tokenizer(cache: Path):
    from transformers import AutoTokenizer

    from trainer_backend.templates import FALLBACK_TEMPLATES

    tok = AutoTokenizer.from_pretrained(cache / "tokenizers" / "qwen3")
    tok.chat_template = FALLBACK_TEMPLATES["chatml"]
    return tok


def write_sets(cache: Path, work: Path, tok) -> dict[str, Path]:
    """chitchat: the first 200 conversations; alpaca: the first 600 chatterbot rows whose rendered
    length is 20-200 tokens (measured with the template the trainer uses)."""
    from trainer_backend.config import TemplateConfig
    from trainer_backend.data import load_dataset
    from trainer_backend.templates import build_examples

    chitchat = work / "chitchat.jsonl"
    with (cache / "data" / "chitchat_sharegpt.jsonl").open() as src, chitchat.open("w") as out:
        for _, line in zip(range(CHITCHAT_ROWS), src):
            out.write(line)
    rows = [json.loads(line) for line in (cache / "data" / "chatterbot_alpaca.jsonl").open()]
    convs = load_dataset(str(cache / "data" / "chatterbot_alpaca.jsonl")).conversations
    examples, _ = build_examples(convs, tok, TemplateConfig(max_seq_len=SEQ))
    keep = [e.row for e in examples if 20 <= len(e.input_ids) <= 200][:ALPACA_ROWS]
    alpaca = work / "alpaca.jsonl"
    alpaca.write_text("".join(json.dumps(rows[i]) + "\n" for i in keep))
    return {"chitchat": chitchat, "alpaca": alpaca}


def data_tokens(path: Path, tok) -> dict:
    from trainer_backend.config import TemplateConfig
    from trainer_backend.data import load_dataset
    from trainer_backend.templates import build_examples

    examples, report = build_examples(load_dataset(str(path)).conversations, tok, TemplateConfig(max_seq_len=SEQ))
    return dict(rows=len(examples), tokens=sum(len(e.input_ids) for e in examples),
                trained=sum(e.n_trained for e in examples), truncated=report.truncated)


# ---- runs ------------------------------------------------------------------------------------
def model_dirs(work: Path, tok) -> tuple[Path, Path]:
    """The Qwen2.5-7B shape with the byte tokenizer (for the fixed-length rows) and the same
    weights, linked, with the Qwen tokenizer (for the real data)."""
    bytes_model, qwen_model = work / "qwen7b-bytes", work / "qwen7b-qwen"
    make_model_dir(bytes_model, architecture("qwen2.5-7b"))
    qwen_model.mkdir(exist_ok=True)
    for f in bytes_model.iterdir():
        if f.suffix in (".safetensors", ".json") and "token" not in f.name and not (qwen_model / f.name).exists():
            (qwen_model / f.name).symlink_to(f)
    tok.save_pretrained(qwen_model)
    return bytes_model, qwen_model


def trainer_run(model: Path, data: Path, out: Path, extra: dict | None = None) -> dict:
    """`train qwen2.5-7b-instruct` with the model and data only; times from its events."""
    shutil.rmtree(out, ignore_errors=True)
    args = [a for item in run_sets(model, data, {"output.dir": str(out), **(extra or {})}) for a in ("--set", item)]
    start = time.time()
    proc = subprocess.run([sys.executable, "-m", "trainer_backend", "train", "qwen2.5-7b-instruct", *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=900)
    timings = run_timings(out, start)
    if proc.returncode != 0 or timings is None:
        return dict(error=f"exit {proc.returncode}: {(proc.stderr.strip().splitlines() or ['-'])[-1][:300]}",
                    log=proc.stderr[-4000:])
    return timings


def run_sets(model: Path, data: Path, extra: dict) -> list[str]:
    """The `--set` items of our runs: only the model and the data set (and what `extra` adds)."""
    sets = {"model.name_or_path": str(model), "data.path": str(data), "train.save_every": 0, **extra}
    return [f"{k}={v}" for k, v in sets.items()]


def run_timings(out: Path, start: float) -> dict | None:
    """Times of the run in `out` from its events, launch counted from `start`; None without a step."""
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()] \
        if (out / "events.jsonl").exists() else []
    train = [e for e in events if e["kind"] == "train"]
    started = next((e for e in events if e["kind"] == "status" and e.get("status") == "started"), None)
    if not train or started is None:
        return None
    import yaml

    resolved = yaml.safe_load((out / "config.yaml").read_text())
    t = resolved["train"]
    first = train[0]
    first_tokens = first["tokens_per_s"] * (first["t"] - started["t"])
    return dict(loop_s=train[-1]["t"] - started["t"], first_step_s=first["t"] - started["t"],
                launch_s=first["t"] - start, steady_s=train[-1]["t"] - first["t"],
                first_tokens=first_tokens, steps=len(train), peak_gib=max(max(e["gpu_mem_gib"] or [0]) for e in train),
                plan=f"{resolved['method']}, checkpointing {t['gradient_checkpointing']}, micro-batch "
                     f"{t['micro_batch_size']} x accum {t['grad_accum']}, packing {resolved['template']['packing']}, "
                     f"attention {resolved['model']['attn_implementation']}",
                startup=startup_laps(out))


def startup_laps(out: Path) -> list[str]:
    """The stages a run's train.log timed (trainer_backend/train/startup.py), "model load 9.7 s"."""
    return [line.split("startup: ", 1)[1] for line in (out / "train.log").read_text().splitlines()
            if "startup: " in line]


def recipe_worker(model: str, variants: list[tuple[str, bool]], started: float) -> None:
    """Unsloth's notebook recipe, as its Qwen2.5 notebook writes it (defaults otherwise), for each
    (data file, packing) in turn on one loaded model: loading once saves a minute of bench time, and
    the adapters' values do not change the speed. Launch to first step is the first variant's."""
    import unsloth  # noqa: F401
    from unsloth import FastLanguageModel
    from unsloth.chat_templates import train_on_responses_only

    import torch
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import SFTConfig, SFTTrainer

    from trainer_backend.data import load_dataset

    model_, tok = FastLanguageModel.from_pretrained(model, max_seq_length=SEQ, dtype=None, load_in_4bit=False,
                                                    local_files_only=True)
    model_ = FastLanguageModel.get_peft_model(
        model_, r=16, lora_alpha=16, lora_dropout=0, bias="none", use_gradient_checkpointing="unsloth",
        random_state=3407, target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
    stamps: list[float] = []

    class FirstStep(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            stamps.append(time.time())

    for data, packing in variants:
        texts = [tok.apply_chat_template([{"role": m.role, "content": m.content} for m in c.messages], tokenize=False)
                 for c in load_dataset(data).conversations]
        trainer = SFTTrainer(model=model_, processing_class=tok, train_dataset=Dataset.from_dict({"text": texts}),
                             callbacks=[FirstStep()],
                             args=SFTConfig(dataset_text_field="text", max_length=SEQ, packing=packing,
                                            per_device_train_batch_size=2, gradient_accumulation_steps=4,
                                            warmup_steps=5, num_train_epochs=1, learning_rate=2e-4, logging_steps=1,
                                            optim="adamw_8bit", weight_decay=0.01, lr_scheduler_type="linear",
                                            seed=3407, output_dir="/tmp/recipe", report_to="none",
                                            save_strategy="no"))
        trainer = train_on_responses_only(trainer, instruction_part=RECIPE_CHATML[0], response_part=RECIPE_CHATML[1])
        ds = trainer.train_dataset
        tokens = sum(len(ids) for ids in ds["input_ids"])
        trained = sum(sum(1 for x in labels if x != -100) for labels in ds["labels"]) \
            if "labels" in ds.column_names else 0
        torch.cuda.reset_peak_memory_stats()
        first = len(stamps)
        begin = time.time()
        trainer.train()
        end = time.time()
        print("RESULT " + json.dumps(dict(
            file=Path(data).name, packing=packing, loop_s=end - begin,
            launch_s=stamps[0] - started if first == 0 else None,
            steps=len(stamps) - first, tokens=tokens, trained=trained,
            peak_gib=torch.cuda.max_memory_allocated() / 2 ** 30,
            plan=f"batch 2 x accum 4, checkpointing unsloth, adamw_8bit, packing {packing}")), flush=True)


def recipe_runs(model: Path, variants: list[tuple[Path, bool]], stdout: Path) -> list[dict]:
    """One process for all variants; its RESULT lines also land in `stdout` as they come."""
    started = time.time()
    spec = ",".join(f"{d}:{int(p)}" for d, p in variants)
    with stdout.open("w") as out:
        proc = subprocess.run([sys.executable, __file__, "--recipe", str(model), spec, str(started)],
                              cwd=ROOT, stdout=out, stderr=subprocess.PIPE, text=True, timeout=900)
    found = [json.loads(line[7:]) for line in stdout.read_text().splitlines() if line.startswith("RESULT ")]
    error = dict(error=(proc.stderr.strip().splitlines() or ["no output"])[-1][:300], log=proc.stderr[-4000:])
    return found + [error] * (len(variants) - len(found))


RUNNER_JOBS = {"warm": "warm worker", "warm2": "warm worker, second job", "cold": "cold start"}


def runner_launches(model: Path, data: Path, work: Path, extra: dict, jobs: list[str]) -> dict[str, dict]:
    """The same run as jobs of a JobRunner on GPU 0: `warm` and `warm2` in one runner's warm worker
    (the second sees the first's compile caches, a lab's steady state), `cold` in a runner without
    one. Launch = submit to the first step; the wait for a worker to be ready is not part of it (a
    lab server has one long before)."""
    from trainer_backend.config import load_config
    from trainer_backend.jobs import JobRunner
    from trainer_backend.jobs.paths import WarmPaths

    cfg = load_config("qwen2.5-7b-instruct", run_sets(model, data, extra))
    rows = {}
    for warm, names in ((True, [RUNNER_JOBS[j] for j in jobs if j != "cold"]),
                        (False, [RUNNER_JOBS[j] for j in jobs if j == "cold"])):
        if not names:
            continue
        shutil.rmtree(work / "runner", ignore_errors=True)
        runner = JobRunner(work / "runner", gpus=[0], min_free_gib=0, warm_workers=warm)
        runner.start_background()
        try:
            for name in names:
                deadline = time.monotonic() + 600
                while warm and not WarmPaths.ready_on(runner.workdir, 0) and time.monotonic() < deadline:
                    time.sleep(0.2)
                rows[f"job runner, {name}"] = runner_job(runner, cfg, warm)
        finally:
            runner.close()
    return rows


def runner_job(runner, cfg, warm: bool) -> dict:
    start = time.time()
    job_id = runner.submit(cfg, "bench", gpus=[0])
    while (info := runner.get(job_id, "bench")).state in ("queued", "running", "stopping"):
        time.sleep(0.2)
    timings = run_timings(info.job_dir, start) if info.state == "completed" else None
    if timings is None:
        reason = str(info.exit_reason) if info.state == "failed" else f"{info.state}: {info.exit_reason}"
        return dict(error=reason, log=runner.log_tail(job_id, "bench", 40))
    if warm and "--- in warm worker" not in (info.job_dir / "console.log").read_text():
        timings["plan"] += "; started cold: no warm worker was ready (see warm/gpu0.log)"
    return timings


# ---- table ----------------------------------------------------------------------------------
def rates(r: dict, tokens: int, trained: int) -> dict:
    """tokens/s over the loop; for our runs also the steady rate (steps after the first)."""
    out = dict(real=tokens / r["loop_s"], trained=trained / r["loop_s"])
    if "steady_s" in r and r["steady_s"] > 0:
        out["steady"] = (tokens - r["first_tokens"]) / r["steady_s"]
    return out


def goals(results: dict, stats: dict) -> list[str]:
    """The issue's ratios: real-length vs fixed-length tokens/s, and vs the faster recipe variant."""
    def rate(key, field="real"):
        r = results.get(key, {})
        if "error" in r or "loop_s" not in r:
            return None
        s = stats[key[0]]
        return rates(r, r.get("tokens", s["tokens"]), r.get("trained", s["trained"])).get(field)

    out = []
    ours = ("chitchat", "this trainer, all auto")
    fixed = ("fixed 2048", "this trainer, all auto")
    if rate(ours) and rate(fixed):
        out.append(f"- real-length / fixed-length real tokens/s: {rate(ours) / rate(fixed):.0%} over the loop, "
                   f"{rate(ours, 'steady') / rate(fixed, 'steady'):.0%} after the first step")
    for data in ("chitchat", "alpaca"):
        recipes = [x for x in (rate((data, "Unsloth recipe")), rate((data, "Unsloth recipe, packing=True"))) if x]
        if recipes and rate((data, "this trainer, all auto")):
            out.append(f"- {data}: this trainer / the faster Unsloth recipe, real tokens/s over the loop: "
                       f"{rate((data, 'this trainer, all auto')) / max(recipes):.1f}x")
    return out + [""]


def render(results: dict, stats: dict, device: str, command: str) -> str:
    lines = ["# Real-length data vs Unsloth's notebook recipe and the fixed-length ceiling\n",
             f"- date: {datetime.date.today()}\n- device: {device}\n- command: `{command}`\n"
             "- Qwen2.5-7B shape (random init), LoRA r=16 all-linear, bf16, one epoch; the trainer's runs are "
             "`train qwen2.5-7b-instruct` with only the model and data set\n"]
    for name, s in stats.items():
        lines.append(f"- {name}: {s['rows']} rows, {s['tokens']:,} real tokens, {s['trained']:,} trained, "
                     f"{s['truncated']} truncated at {SEQ}")
    lines += ["", "| data | run | plan | loop s | real tokens/s | trained tokens/s | steady real tokens/s | "
              "peak GiB | launch to first step s |", "|---|---|---|---|---|---|---|---|---|"]
    for (data, run), r in results.items():
        if "error" in r:
            lines.append(f"| {data} | {run} | failed: {r['error']} | | | | | | |")
            continue
        s = stats[data]
        tokens, trained = (r["tokens"], r["trained"]) if "tokens" in r else (s["tokens"], s["trained"])
        v = {} if r.get("launch_only") else rates(r, tokens, trained)   # a few steps, not the epoch: no rates
        rate = {k: f"{x:,.0f}" for k, x in v.items()}
        lines.append(f"| {data} | {run} | {r['plan']} | {r['loop_s']:.1f} | {rate.get('real', '')} | "
                     f"{rate.get('trained', '')} | {rate.get('steady', '')} | {r['peak_gib']:.1f} | "
                     f"{'' if r.get('launch_s') is None else format(r['launch_s'], '.1f')} |")
    lines += [""] + goals(results, stats)
    for (data, run), r in results.items():
        if r.get("startup"):
            lines.append(f"- startup of {data} / {run}: " + "; ".join(r["startup"]) +
                         f"; first step {r['first_step_s']:.1f} s")
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="bench/results/realdata.md")
    ap.add_argument("--cache", default=str(ROOT / ".cache"), help="offline assets (scripts/fetch_assets.py)")
    ap.add_argument("--work", default="/tmp/realdata-bench")
    ap.add_argument("--sets", default="chitchat,alpaca")
    ap.add_argument("--runs", default="auto,recipe,recipe-packed,fixed")
    ap.add_argument("--launch-0.5b", dest="launch_05b", action="store_true")
    ap.add_argument("--launch-runner", default="", metavar="SHAPES",
                    help="0.5b and/or 7b: that run as JobRunner jobs (launch = submit to step 1)")
    ap.add_argument("--runner-jobs", default="warm,warm2,cold", help="which of " + ", ".join(RUNNER_JOBS))
    ap.add_argument("--keep", metavar="JSONL", help="rows of an earlier run of the same sitting to show beside these")
    ap.add_argument("--recipe", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.recipe:
        variants = [(d, p == "1") for d, p in (v.rsplit(":", 1) for v in args.recipe[1].split(","))]
        recipe_worker(args.recipe[0], variants, float(args.recipe[2]))
        return 0
    import torch

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    tok = qwen_tokenizer(Path(args.cache))
    paths = write_sets(Path(args.cache), work, tok)
    sets = args.sets.split(",")
    stats = {name: data_tokens(paths[name], tok) for name in sets}
    runs = [r for r in args.runs.split(",") if r]
    bytes_model, qwen_model = model_dirs(work, tok) if runs else (None, None)  # a 7B shape takes a minute
    results: dict = {}
    for row in ([json.loads(line) for line in Path(args.keep).read_text().splitlines() if line] if args.keep else []):
        stats.setdefault(row["data"], row.pop("set_stats"))   # a kept row brings its data set's counts
        results[row.pop("data"), row.pop("run")] = row
    device = torch.cuda.get_device_name(0)
    command = "python bench/realdata_bench.py " + " ".join(sys.argv[1:])

    def report() -> None:
        """Rewrite the table after every run: a run cut short still leaves the ones before it."""
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(render(results, stats, device, command))
        Path(args.out).with_suffix(".jsonl").write_text(
            "".join(json.dumps(dict(data=k[0], run=k[1], set_stats=stats[k[0]],
                                    **{x: y for x, y in v.items() if x != "log"})) + "\n"
                    for k, v in results.items()))

    def fixed_run() -> None:
        from transformers import AutoTokenizer

        fixed = work / "fixed.jsonl"
        write_alpaca_letters(fixed, rows=FIXED_ROWS, seq=SEQ)
        stats["fixed 2048"] = data_tokens(fixed, AutoTokenizer.from_pretrained(bytes_model))
        results["fixed 2048", "this trainer, all auto"] = trainer_run(bytes_model, fixed, work / "fixed")
        report()

    for i, name in enumerate(sets):
        if "auto" in runs:
            results[name, "this trainer, all auto"] = trainer_run(qwen_model, paths[name], work / f"auto-{name}")
            report()
        if i == 0 and "fixed" in runs:  # the ceiling right after the first real-length run
            fixed_run()
    variants = [(name, packing) for name in sets for packing, run in ((False, "recipe"), (True, "recipe-packed"))
                if run in runs]
    if variants:
        for (name, packing), r in zip(variants, recipe_runs(qwen_model, [(paths[n], p) for n, p in variants],
                                                         Path(args.out).with_name("recipe_stdout.txt"))):
            results[name, "Unsloth recipe" + (", packing=True" if packing else "")] = r
        report()
    launch_run = {"model.architecture": "{}", "train.max_steps": 3}
    shapes = [x for x in args.launch_runner.split(",") if x]
    if args.launch_05b or shapes:
        stats.setdefault("chitchat", data_tokens(paths["chitchat"], tok))
    if args.launch_05b or "0.5b" in shapes:
        small = make_model_dir(work / "qwen05b", QWEN_05B)
        tok.save_pretrained(small)
    if args.launch_05b:
        results["chitchat", "this trainer, all auto, Qwen2.5-0.5B shape"] = dict(trainer_run(
            small, paths["chitchat"], work / "auto-05b", launch_run), launch_only=True)
        report()
    jobs = args.runner_jobs.split(",")
    for shape in shapes:
        model = small if shape == "0.5b" else model_dirs(work, tok)[1]
        label = "Qwen2.5-0.5B shape" if shape == "0.5b" else "Qwen2.5-7B shape"
        for name, r in runner_launches(model, paths["chitchat"], work, launch_run, jobs).items():
            results["chitchat", f"this trainer, all auto, {label}, {name}"] = dict(r, launch_only=True)
        report()
    print(Path(args.out).read_text())
    for k, v in results.items():
        if "log" in v:
            print(f"--- {k} stderr ---\n{v['log']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
