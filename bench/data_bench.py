"""Data pipeline benchmark: render + mask + length policy + pack the chitchat conversations.

    python bench/data_bench.py [--budget 2048] [--max-seq-len 2048] [--check 200] [--workers N]

Two readings of `chitchat.json` (7,168 conversations; `messages` is a list of groups, one group per
burst of one speaker):
- faithful: speakers mapped to user/assistant, runs of one speaker merged, a trailing user turn
  dropped; 4,017 conversations keep an assistant turn (3,150 have a single speaker).
- groups: every group is one turn, turns alternate user/assistant, so all 7,168 conversations go
  through render + mask (those without an assistant turn then have no trained token and are dropped
  by the length policy).

Render + mask is `render_and_mask_many`'s path, timed stage by stage; `--check N` first asserts that
it gives the slow reference path's ids and masks on N rows. Baseline measured in the same run:
`apply_chat_template(tokenize=True)` per row (faithful set), which gives ids but no mask.
Goal: render + mask + pack of a whole set in <= 10 s on a 2-core CPU.
"""
from __future__ import annotations

import os

# The Rust tokenizer's batch encoder runs in parallel unless this says false.
if os.environ.get("TOKENIZERS_PARALLELISM", "").lower() in ("false", "0", "no", "off"):
    print("TOKENIZERS_PARALLELISM was false: set to true for the benchmark")
os.environ["TOKENIZERS_PARALLELISM"] = "true"

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from trainer_backend.config import TemplateConfig  # noqa: E402
from trainer_backend.data import Conversation, Message  # noqa: E402
from trainer_backend.packing import pack  # noqa: E402
from trainer_backend.templates import apply_length_policy, load_tokenizer, render_and_mask_many  # noqa: E402
from trainer_backend.templates.render import ConversationRenderer, _render_all, chat_renderer, tokenize_rendered  # noqa: E402

CHITCHAT = ROOT / ".cache" / "data" / "chitchat.json"
SMOLLM2 = ROOT / ".cache" / "models" / "SmolLM2-135M-Instruct"


def chitchat_conversations(path: Path) -> list[Conversation]:
    """The faithful reading: the first speaker is the user, runs of one speaker are merged,
    a trailing user turn is dropped (a conversation must end with the assistant)."""
    data = json.loads(path.read_text(encoding="utf-8"))
    convs = []
    for row, key in enumerate(sorted(data)):
        turns: list[tuple[str, str]] = []  # (sender, text)
        for group in data[key]["messages"]:
            for message in group:
                text = message["text"].strip()
                if not text:
                    continue
                if turns and turns[-1][0] == message["sender"]:
                    turns[-1] = (message["sender"], turns[-1][1] + "\n" + text)
                else:
                    turns.append((message["sender"], text))
        roles = ["user" if i % 2 == 0 else "assistant" for i in range(len(turns))]
        messages = tuple(Message(role, text) for role, (_, text) in zip(roles, turns))
        if messages and messages[-1].role == "user":
            messages = messages[:-1]
        if messages:
            convs.append(Conversation(row=row, messages=messages))
    return convs


def chitchat_group_conversations(path: Path) -> list[Conversation]:
    """Every conversation: each message group is one turn (its texts joined by newlines), turns
    alternate user/assistant from the first group on."""
    data = json.loads(path.read_text(encoding="utf-8"))
    convs = []
    for row, key in enumerate(sorted(data)):
        texts = ["\n".join(t for t in (m["text"].strip() for m in group) if t) for group in data[key]["messages"]]
        texts = [t for t in texts if t]
        messages = tuple(Message("user" if i % 2 == 0 else "assistant", t) for i, t in enumerate(texts))
        convs.append(Conversation(row=row, messages=messages))
    return convs


def timed(stages: list, name: str, fn, rows_of, tokens_of):
    start = time.perf_counter()
    result = fn()
    stages.append((name, time.perf_counter() - start, rows_of(result), tokens_of(result)))
    return result


def n_tokens(examples) -> int:
    return sum(len(e.input_ids) for e in examples)


def check_against_slow_path(convs: list[Conversation], tokenizer, tcfg: TemplateConfig) -> None:
    fast, fast_errors = render_and_mask_many(convs, tokenizer, tcfg)
    slow, slow_errors = render_and_mask_many(convs, tokenizer, tcfg, fast=False)
    assert [(e.row, e.input_ids, e.trained, e.text) for e in fast] == \
        [(e.row, e.input_ids, e.trained, e.text) for e in slow], "fast path differs from the slow path"
    assert fast_errors == slow_errors
    print(f"check: fast path == slow path on {len(convs)} rows ({sum(map(len, fast))} tokens)")


def run_set(label: str, convs: list[Conversation], tokenizer, tcfg: TemplateConfig, budget: int,
            workers: int | None) -> tuple[list, float, int]:
    stages: list[tuple[str, float, int, int]] = []
    renderer = ConversationRenderer(chat_renderer(tokenizer, tcfg), tcfg)
    outcomes = timed(stages, "render + find spans", lambda: _render_all(convs, renderer, workers), len, lambda _: 0)
    rendered = [r for r in outcomes if not isinstance(r, Exception)]
    examples = timed(stages, "tokenize segments", lambda: tokenize_rendered(rendered, tokenizer), len, n_tokens)
    kept = timed(stages, "length policy", lambda: [x for x in (apply_length_policy(e, tcfg) for e in examples)
                                                   if not isinstance(x, str)], len, n_tokens)
    bins = timed(stages, f"pack (budget {budget})", lambda: pack(kept, budget), len,
                 lambda b: sum(n_tokens(x) for x in b))
    total = sum(s[1] for s in stages)
    print(f"\n[{label}] {len(convs)} conversations, "
          f"{sum(len(c.messages) for c in convs) / max(len(convs), 1):.1f} messages each on average")
    print(f"{'stage':<28}{'seconds':>9}{'rows':>8}{'tokens':>11}")
    for name, seconds, rows, tokens in stages:
        print(f"{name:<28}{seconds:>9.2f}{rows:>8}{tokens:>11}")
    print(f"{'TOTAL render+mask+pack':<28}{total:>9.2f}{len(kept):>8}{n_tokens(kept):>11}")
    fill = n_tokens(kept) / (len(bins) * budget) if bins else 0.0
    print(f"{len(bins)} packs of <= {budget} tokens, {fill:.1%} filled; {sum(e.n_trained for e in kept)} trained "
          f"tokens; {len(rendered) - sum(1 for r in rendered if r.plain_text)} rows rendered; "
          f"{len(outcomes) - len(rendered)} template errors")
    return examples, total, len(kept)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=int, default=2048, help="packing token budget")
    parser.add_argument("--max-seq-len", type=int, default=2048)
    parser.add_argument("--check", type=int, default=200, help="rows compared with the slow path first (0: none)")
    parser.add_argument("--workers", type=int, default=None, help="render processes (default: 2 for large sets)")
    parser.add_argument("--no-baseline", action="store_true", help="skip the apply_chat_template baseline")
    args = parser.parse_args()
    tokenizer = load_tokenizer(str(SMOLLM2))
    tcfg = TemplateConfig(max_seq_len=args.max_seq_len)
    print(f"{len(json.loads(CHITCHAT.read_text(encoding='utf-8')))} conversations in chitchat.json; "
          f"load average {os.getloadavg()[0]:.2f}; TOKENIZERS_PARALLELISM={os.environ['TOKENIZERS_PARALLELISM']}")
    start = time.perf_counter()
    faithful = chitchat_conversations(CHITCHAT)
    groups = chitchat_group_conversations(CHITCHAT)
    print(f"load chitchat.json (both readings): {time.perf_counter() - start:.2f} s")
    if args.check:
        check_against_slow_path(faithful[:args.check], tokenizer, tcfg)

    totals = {}
    for label, convs in (("faithful", faithful), ("groups", groups)):
        load = os.getloadavg()[0]
        examples, total, kept = run_set(label, convs, tokenizer, tcfg, args.budget, args.workers)
        totals[label] = total
        print(f"load average before this set: {load:.2f}")

    if not args.no_baseline:
        messages = [[{"role": m.role, "content": m.content} for m in c.messages] for c in faithful]
        start = time.perf_counter()
        baseline = [tokenizer.apply_chat_template(m, tokenize=True, return_dict=False) for m in messages]
        baseline_s = time.perf_counter() - start
        print(f"\n{'baseline apply_chat_template':<28}{baseline_s:>9.2f}{len(baseline):>8}"
              f"{sum(len(ids) for ids in baseline):>11}  (faithful set, ids only, no mask)")
    print(f"\nload average {os.getloadavg()[0]:.2f}; {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs")
    return 0 if max(totals.values()) <= 10 else 1


if __name__ == "__main__":
    sys.exit(main())
