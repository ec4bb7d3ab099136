"""DPO learns on a real preference set: SmolLM2-135M-Instruct + LoRA on CPU.

The set is built from the offline chatterbot corpus (question → answer pairs): for each question,
chosen = one of its answers, rejected = the answer of another question. Train and held-out pairs
ask different questions. Held-out pair accuracy = the share of held-out pairs whose chosen
completion the model finds more likely than the rejected one (mean log-prob per completion
token, so that answer lengths do not decide), measured before and after training; the eval event
also gives DPO's own reward accuracy on the held-out pairs.

    python bench/dpo_learning.py [--steps 30] [--pairs-per-step 8] [--lr 1e-3] [--train-pairs 240] [--eval-pairs 100]

writes bench/results/dpo_learning.md (date, device, command, numbers).
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections import OrderedDict
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from trainer_backend.config import load_config  # noqa: E402
from trainer_backend.data import load_dataset  # noqa: E402
from trainer_backend.templates import load_tokenizer  # noqa: E402
from trainer_backend.templates.pairs import build_preference_examples  # noqa: E402
from trainer_backend.train.events import read_events  # noqa: E402
from trainer_backend.train.loop import train_rank  # noqa: E402
from trainer_backend.train.objectives.logps import sequence_logps  # noqa: E402
from trainer_backend.train.sync.local import LocalSync  # noqa: E402

CORPUS = ROOT / ".cache" / "data" / "chatterbot_alpaca.jsonl"
MODEL = ROOT / ".cache" / "models" / "SmolLM2-135M-Instruct"


def write_preference_sets(out: Path, n_train: int, n_eval: int, seed: int = 0) -> tuple[Path, Path]:
    """Train and held-out pair files over disjoint questions."""
    answers: OrderedDict[str, list[str]] = OrderedDict()
    for line in CORPUS.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        answers.setdefault(row["instruction"], []).append(row["output"])
    questions = list(answers)
    rng = random.Random(seed)
    rng.shuffle(questions)
    if len(questions) < n_train + n_eval:
        raise SystemExit(f"the corpus has {len(questions)} distinct questions, fewer than {n_train + n_eval}")
    paths = []
    for name, chunk in (("train", questions[:n_train]), ("eval", questions[n_train:n_train + n_eval])):
        rows = []
        for q in chunk:
            other = rng.choice([o for o in chunk if o != q])
            rows.append({"prompt": q, "chosen": rng.choice(answers[q]), "rejected": rng.choice(answers[other])})
        path = out / f"{name}.jsonl"
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
        paths.append(path)
    return paths[0], paths[1]


@torch.no_grad()
def pair_accuracy(model, cfg, pairs, pad_id: int) -> float:
    """Share of pairs whose chosen completion has the higher mean log-prob per token."""
    model.eval()
    right = 0
    for start in range(0, len(pairs), 8):
        chunk = pairs[start:start + 8]
        out = sequence_logps(model, [p.chosen for p in chunk] + [p.rejected for p in chunk], cfg, pad_id,
                             torch.device("cpu"))
        mean = out.completion / out.completion_len
        right += int((mean[:len(chunk)] > mean[len(chunk):]).sum())
    return right / len(pairs)


def run(work: Path, steps: int, n_train: int, n_eval: int, pairs_per_step: int, lr: float, beta: float = 0.1) -> dict:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    work.mkdir(parents=True, exist_ok=True)
    train_path, eval_path = write_preference_sets(work, n_train, n_eval)
    job = work / "job"
    cfg = load_config("smollm2-135m-demo", {
        "model.name_or_path": str(MODEL), "data.path": str(train_path), "data.eval_path": str(eval_path),
        "output.dir": str(job), "train.objective": "dpo", "train.max_steps": steps,
        "train.micro_batch_size": pairs_per_step, "train.grad_accum": 1, "train.lr": lr, "train.warmup_steps": 1,
        "template.max_seq_len": 128, "template.system_prompt": "Answer the question.", "preference.beta": beta,
        "train.precision": "fp32"})
    tokenizer = load_tokenizer(str(MODEL))
    held_out, _ = build_preference_examples(load_dataset(eval_path).conversations, tokenizer, cfg.template)
    base = AutoModelForCausalLM.from_pretrained(MODEL, dtype=torch.float32)
    before = pair_accuracy(base, cfg, held_out, tokenizer.pad_token_id)
    start = time.perf_counter()
    code = train_rank(cfg, 0, 1, "cpu", LocalSync(), job)
    seconds = time.perf_counter() - start
    if code != 0:
        raise SystemExit(f"training failed with exit code {code}; see {job / 'train.log'}")
    tuned = PeftModel.from_pretrained(base, job / "output")
    after = pair_accuracy(tuned, cfg, held_out, tokenizer.pad_token_id)
    train_events, eval_events = read_events(job, "train"), read_events(job, "eval")
    return {"before": before, "after": after, "held_out_pairs": len(held_out), "steps": steps,
            "pairs_per_step": pairs_per_step, "lr": lr,
            "train_pairs": n_train, "seconds": seconds, "first_loss": train_events[0]["loss"],
            "last_loss": train_events[-1]["loss"], "eval_reward_accuracy": eval_events[-1]["reward_accuracy"],
            "eval_margin": eval_events[-1]["reward_margin"]}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--pairs-per-step", type=int, default=8)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--train-pairs", type=int, default=240)
    p.add_argument("--eval-pairs", type=int, default=100)
    p.add_argument("--work", default=str(ROOT / "workdir" / "bench" / "dpo_learning"))
    args = p.parse_args()
    r = run(Path(args.work), args.steps, args.train_pairs, args.eval_pairs, args.pairs_per_step, args.lr)
    command = "python bench/dpo_learning.py " + " ".join(sys.argv[1:])
    table = "\n".join([
        "# DPO learning on a real preference set (chatterbot, SmolLM2-135M-Instruct, LoRA r=16, CPU)",
        "", f"{time.strftime('%Y-%m-%d')}, CPU ({torch.get_num_threads()} threads), `{command.strip()}`", "",
        "| held-out pairs | accuracy before | accuracy after | DPO reward accuracy (held-out) | reward margin "
        "| train loss first → last | steps × pairs | time |",
        "|---|---|---|---|---|---|---|---|",
        f"| {r['held_out_pairs']} | {r['before']:.1%} | {r['after']:.1%} | {r['eval_reward_accuracy']:.1%} "
        f"| {r['eval_margin']:.3f} | {r['first_loss']:.4f} → {r['last_loss']:.4f} | {r['steps']} × {r['pairs_per_step']} "
        f"| {r['seconds']:.0f} s |", "",
        "Accuracy = share of held-out pairs (questions never trained on) whose chosen answer has the higher mean "
        "log-prob per token than the other question's answer.", ""])
    out = ROOT / "bench" / "results" / "dpo_learning.md"
    out.write_text(table, encoding="utf-8")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
