"""`python -m trainer_backend.serve.preview --data D --model M [...]`: one JSON object on stdout with
what the studio's Data and Template tabs show: per-row tokens (decoded one id at a time, grouped in
runs of trained / masked), the build report of the whole dataset and the facts behind its checks.

It calls the same functions the trainer calls (load_dataset, load_tokenizer, render_and_mask,
apply_length_policy, build_examples), so what the studio shows is what a job trains.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any

END_OF_TURN_TOKENS = ("<|im_end|>", "<|eot_id|>", "</s>", "<end_of_turn>", "<|end|>")


def token_runs(input_ids: list[int], trained: list[bool], decode) -> list[list[Any]]:
    """[[text, trained], ...]: each id decoded on its own, neighbours with the same flag joined."""
    runs: list[list[Any]] = []
    for token_id, flag in zip(input_ids, trained):
        piece = decode([token_id])
        if runs and runs[-1][1] == flag:
            runs[-1][0] += piece
        else:
            runs.append([piece, flag])
    return runs


def end_of_turn_ids(tokenizer) -> set[int]:
    vocab = tokenizer.get_vocab()
    ids = {vocab[t] for t in END_OF_TURN_TOKENS if t in vocab}
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    return ids


def preview_row(conv, tokenizer, tcfg, eot: set[int]) -> dict[str, Any]:
    from trainer_backend.templates import apply_length_policy, render_and_mask

    example = render_and_mask(conv, tokenizer, tcfg)
    outcome = apply_length_policy(example, tcfg)
    shown = example if isinstance(outcome, str) else outcome
    return {
        "row": example.row,
        "runs": token_runs(shown.input_ids, shown.trained, tokenizer.decode),
        "n_tokens": len(shown.input_ids),
        "n_trained": sum(shown.trained),
        "truncated": shown.truncated,
        "dropped": outcome if isinstance(outcome, str) else None,
        "eot_trained": any(t and i in eot for i, t in zip(shown.input_ids, shown.trained)),
    }


def preference_preview(unit, tokenizer, eot: set[int]) -> dict[str, Any]:
    """A kept pair (chosen runs, rejected runs) or KTO row (its completion, `desirable`)."""
    first = _first_trained(unit)
    out = {"row": unit.row, "runs": token_runs(first.input_ids, first.trained, tokenizer.decode),
           "n_tokens": len(unit.input_ids), "n_trained": unit.n_trained, "truncated": unit.truncated,
           "dropped": None, "eot_trained": any(t and i in eot for i, t in zip(first.input_ids, first.trained))}
    if hasattr(unit, "rejected"):
        out["rejected_runs"] = token_runs(unit.rejected.input_ids, unit.rejected.trained, tokenizer.decode)
    else:
        out["desirable"] = unit.desirable
    return out


def _first_trained(unit):
    """The sequence whose end-of-turn token the checks look at: an SFT example, a pair's chosen one."""
    return unit.chosen if hasattr(unit, "chosen") else getattr(unit, "sequence", unit)


def analyze(args: argparse.Namespace) -> dict[str, Any]:
    from trainer_backend.config import TemplateConfig
    from trainer_backend.data import load_dataset
    from trainer_backend.templates import build_examples, load_tokenizer
    from trainer_backend.templates.pairs import build_preference_examples

    columns = json.loads(args.columns) if args.columns else None
    data = load_dataset(args.data, format=args.format, columns=columns)
    tcfg = TemplateConfig(name=args.template, loss=args.loss, max_seq_len=args.max_seq_len,
                          overflow=args.overflow, system_prompt=args.system_prompt or None)
    tokenizer = load_tokenizer(args.model, template=args.template)
    eot = end_of_turn_ids(tokenizer)
    if data.format in ("preference", "kto"):   # the same builder as the trainer's for these objectives
        examples, report = build_preference_examples(data.conversations, tokenizer, tcfg)
        shown = [preference_preview(unit, tokenizer, eot) for unit in examples[: args.rows]]
    else:
        examples, report = build_examples(data.conversations, tokenizer, tcfg)
        shown = [preview_row(conv, tokenizer, tcfg, eot) for conv in data.conversations[: args.rows]]
    return {
        "model": args.model, "template": args.template, "format": data.format,
        "rows": data.rows, "valid_rows": data.valid_rows, "max_seq_len": args.max_seq_len,
        "report": {"rows_in": report.rows_in, "kept": report.kept, "truncated": report.truncated,
                   "cut_tokens": report.cut_tokens, "split": report.split, "dropped": report.dropped,
                   "issues": [{"row": e.row, "field": e.field, "message": e.message} for e in report.issues]},
        "lengths": [len(e.input_ids) for e in examples],
        "trained_tokens": sum(e.n_trained for e in examples),
        "eot_trained_rows": sum(any(t and i in eot for i, t in zip(f.input_ids, f.trained))
                                for f in map(_first_trained, examples)),
        "examples": shown,
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m trainer_backend.serve.preview", description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True)
    p.add_argument("--format", default="auto")
    p.add_argument("--columns", default="", help="JSON object mapping your columns to the format's fields")
    p.add_argument("--model", required=True)
    p.add_argument("--template", default="auto")
    p.add_argument("--loss", default="response_only")
    p.add_argument("--max-seq-len", type=int, default=2048)
    p.add_argument("--overflow", default="truncate")
    p.add_argument("--system-prompt", default="")
    p.add_argument("--rows", type=int, default=50, help="rows rendered token by token for display")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    from trainer_backend.data import DataError
    from trainer_backend.templates import TemplateError

    args = parse_args(argv)
    try:
        result = analyze(args)
    except (DataError, TemplateError, ValueError, OSError) as err:
        # A user-fixable problem: one line the studio shows as is.
        print(str(err).splitlines()[0] if str(err) else type(err).__name__, file=sys.stderr)
        return 2
    json.dump(result, sys.stdout, ensure_ascii=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
