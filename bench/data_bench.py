"""Data pipeline benchmark: render + mask + length policy + pack the 7,168 chitchat conversations.

    python bench/data_bench.py [--budget 2048] [--max-seq-len 2048]

Baseline measured in the same run: `apply_chat_template(tokenize=True)` per row, which gives ids
but no mask. Goal: the whole pipeline in <= 10 s on a 2-core CPU.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from trainer_backend.config import TemplateConfig  # noqa: E402
from trainer_backend.data import Conversation, Message  # noqa: E402
from trainer_backend.packing import pack  # noqa: E402
from trainer_backend.templates import apply_length_policy, load_tokenizer  # noqa: E402
from trainer_backend.templates.render import chat_renderer, render_conversation, tokenize_rendered  # noqa: E402

CHITCHAT = ROOT / ".cache" / "data" / "chitchat.json"
SMOLLM2 = ROOT / ".cache" / "models" / "SmolLM2-135M-Instruct"


def chitchat_conversations(path: Path) -> list[Conversation]:
    """Every chitchat conversation: the first speaker is the user, runs of one speaker are merged,
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


def timed(stages: list, name: str, fn, rows_of, tokens_of):
    start = time.perf_counter()
    result = fn()
    stages.append((name, time.perf_counter() - start, rows_of(result), tokens_of(result)))
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=int, default=2048, help="packing token budget")
    parser.add_argument("--max-seq-len", type=int, default=2048)
    args = parser.parse_args()
    tokenizer = load_tokenizer(str(SMOLLM2))
    tcfg = TemplateConfig(max_seq_len=args.max_seq_len)
    stages: list[tuple[str, float, int, int]] = []
    n_tokens = lambda examples: sum(len(e.input_ids) for e in examples)  # noqa: E731

    print(f"{len(json.loads(CHITCHAT.read_text(encoding='utf-8')))} conversations in chitchat.json")
    convs = timed(stages, "load chitchat.json", lambda: chitchat_conversations(CHITCHAT), len, lambda _: 0)
    renderer = chat_renderer(tokenizer, tcfg)
    rendered = timed(stages, "render + find spans", lambda: [render_conversation(c, renderer, tcfg) for c in convs],
                     len, lambda _: 0)
    examples = timed(stages, "tokenize segments", lambda: tokenize_rendered(rendered, tokenizer), len, n_tokens)
    kept = timed(stages, "length policy", lambda: [x for x in (apply_length_policy(e, tcfg) for e in examples)
                                                   if not isinstance(x, str)], len, n_tokens)
    bins = timed(stages, f"pack (budget {args.budget})", lambda: pack(kept, args.budget), len,
                 lambda b: sum(n_tokens(x) for x in b))
    total = sum(s[1] for s in stages)

    messages = [[{"role": m.role, "content": m.content} for m in c.messages] for c in convs]
    start = time.perf_counter()
    baseline = [tokenizer.apply_chat_template(m, tokenize=True, return_dict=False) for m in messages]
    baseline_s = time.perf_counter() - start
    baseline_tokens = sum(len(ids) for ids in baseline)

    print(f"{'stage':<28}{'seconds':>9}{'rows':>8}{'tokens':>11}")
    for name, seconds, rows, tokens in stages:
        print(f"{name:<28}{seconds:>9.2f}{rows:>8}{tokens:>11}")
    print(f"{'TOTAL render+mask+pack':<28}{total:>9.2f}{len(kept):>8}{n_tokens(kept):>11}")
    print(f"{'baseline apply_chat_template':<28}{baseline_s:>9.2f}{len(baseline):>8}{baseline_tokens:>11}")
    fill = n_tokens(kept) / (len(bins) * args.budget)
    print(f"\n{len(bins)} packs of <= {args.budget} tokens, {fill:.1%} filled; "
          f"{sum(e.n_trained for e in kept)} trained tokens; {platform.processor() or platform.machine()}")
    return 0 if total <= 10 else 1


if __name__ == "__main__":
    sys.exit(main())
