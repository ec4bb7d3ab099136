"""`python -m trainer_backend.serve.preview --data D --model M --template-config JSON [...]`: one JSON
object on stdout with what the studio's Data and Template tabs show: per-row tokens (each token's own
text, spaces included, grouped in runs of trained / masked) or the row's error, the build report of
the whole dataset and the facts behind its checks.

`--template-config` is the run's whole TemplateConfig (JSON), the object the trainer renders with.
It calls the same functions the trainer calls (load_dataset, load_tokenizer, render_and_mask_many,
apply_length_policy, build_examples), so what the studio shows is what a job trains.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any

END_OF_TURN_TOKENS = ("<|im_end|>", "<|eot_id|>", "</s>", "<end_of_turn>", "<|end|>")


def token_runs(pieces: list[str], trained: list[bool]) -> list[list[Any]]:
    """[[text, trained], ...]: each token's own text (templates.token_texts), neighbours with the same flag joined."""
    runs: list[list[Any]] = []
    for piece, flag in zip(pieces, trained):
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


def preview_rows(convs, tokenizer, tcfg, eot: set[int]) -> list[dict[str, Any]]:
    """The shown rows in order: each one's tokens as it will be trained, or its error."""
    from trainer_backend.templates import apply_length_policy, render_and_mask_many, token_texts

    examples, errors = render_and_mask_many(convs, tokenizer, tcfg)
    shown = {e.row: {"row": e.row, "error": e.message.to_json()} for e in errors}
    for example in examples:
        outcome = apply_length_policy(example, tcfg)
        kept = example if isinstance(outcome, str) else outcome
        ids, pieces = token_texts(tokenizer, example.text)
        assert ids == example.input_ids, "the shown tokens must be the trained ones"
        shown[example.row] = {
            "row": example.row,
            "runs": token_runs(pieces[:len(kept.input_ids)], kept.trained),
            "input_ids": kept.input_ids, "trained": kept.trained,
            "n_tokens": len(kept.input_ids),
            "n_trained": sum(kept.trained),
            "truncated": kept.truncated,
            "dropped": outcome if isinstance(outcome, str) else None,
            "eot_trained": any(t and i in eot for i, t in zip(kept.input_ids, kept.trained)),
        }
    return [shown[c.row] for c in convs]


def sequence_runs(example, tokenizer) -> list[list[Any]]:
    """Runs of one rendered sequence (possibly truncated): its tokens' own texts, as the trainer sees them."""
    from trainer_backend.templates import token_texts

    _, pieces = token_texts(tokenizer, example.text)
    return token_runs(pieces[:len(example.input_ids)], example.trained)


def preference_preview(unit, tokenizer, eot: set[int]) -> dict[str, Any]:
    """A kept pair (chosen runs, rejected runs) or KTO row (its completion, `desirable`)."""
    first = _first_trained(unit)
    out = {"row": unit.row, "runs": sequence_runs(first, tokenizer),
           "n_tokens": len(unit.input_ids), "n_trained": unit.n_trained, "truncated": unit.truncated,
           "dropped": None, "eot_trained": any(t and i in eot for i, t in zip(first.input_ids, first.trained))}
    if hasattr(unit, "rejected"):
        out["rejected_runs"] = sequence_runs(unit.rejected, tokenizer)
    else:
        out["desirable"] = unit.desirable
    return out


def _first_trained(unit):
    """The sequence whose end-of-turn token the checks look at: an SFT example, a pair's chosen one."""
    return unit.chosen if hasattr(unit, "chosen") else getattr(unit, "sequence", unit)


def analyze(args: argparse.Namespace) -> dict[str, Any]:
    from trainer_backend.config import TemplateConfig
    from trainer_backend.data import load_dataset
    from trainer_backend.templates import build_examples, load_tokenizer_for_preview
    from trainer_backend.templates.pairs import build_preference_examples

    columns = json.loads(args.columns) if args.columns else None
    data = load_dataset(args.data, format=args.format, columns=columns,
                        drop_trailing_user=not args.keep_trailing_user)
    tcfg = TemplateConfig.model_validate_json(args.template_config)
    tokenizer, stand_in = load_tokenizer_for_preview(args.model, tcfg.name, args.offline_tokenizer or None)
    eot = end_of_turn_ids(tokenizer)
    later = [conv for conv in data.conversations if conv.row >= args.start_row]
    if data.format in ("preference", "kto"):   # the same builder as the trainer's for these objectives
        examples, report = build_preference_examples(data.conversations, tokenizer, tcfg)
        shown = [preference_preview(unit, tokenizer, eot) for unit in examples if unit.row >= args.start_row][: args.rows]
    else:
        examples, report = build_examples(data.conversations, tokenizer, tcfg)
        shown = preview_rows(later[: args.rows], tokenizer, tcfg, eot)
    return {
        "model": args.model, "template": tcfg.name, "format": data.format, "stand_in": stand_in,
        "rows": data.rows, "valid_rows": data.valid_rows, "max_seq_len": tcfg.max_seq_len,
        "report": {"rows_in": report.rows_in, "kept": report.kept, "truncated": report.truncated,
                   "cut_tokens": report.cut_tokens, "split": report.split, "dropped": report.dropped,
                   "issues": [{"row": e.row, "field": e.field, "message": e.message.to_json()} for e in report.issues]},
        "lengths": [len(e.input_ids) for e in examples],
        "trained_tokens": sum(e.n_trained for e in examples),
        "eot_trained_rows": sum(any(t and i in eot for i, t in zip(f.input_ids, f.trained))
                                for f in map(_first_trained, examples)),
        "unlike_inference_rows": sum(getattr(_first_trained(e), "unlike_inference", 0) > 0 for e in examples),
        "examples": shown,
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m trainer_backend.serve.preview", description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True)
    p.add_argument("--format", default="auto")
    p.add_argument("--columns", default="", help="JSON object mapping your columns to the format's fields")
    p.add_argument("--keep-trailing-user", action="store_true",
                   help="reject chats that end on a user turn instead of dropping that turn")
    p.add_argument("--model", required=True)
    p.add_argument("--template-config", default="{}", help="the run's TemplateConfig as JSON")
    p.add_argument("--offline-tokenizer", default="", help="a local tokenizer of the model's family, used "
                   "when the model's hub repository cannot be reached")
    p.add_argument("--rows", type=int, default=50, help="rows rendered token by token for display")
    p.add_argument("--start-row", type=int, default=0, help="the rows rendered for display start at this source row")
    return p.parse_args(argv)


def failure_notice(err: Exception):
    """What a user-fixable failure says, as a notice the studio shows in the user's language."""
    from trainer_backend.data import DataError
    from trainer_backend.messages import msg
    from trainer_backend.templates import TemplateError

    if isinstance(err, DataError):
        return msg("job.at", where=err.path, message=err.notice)
    if isinstance(err, TemplateError):
        return err.notice
    return msg("detail", detail=str(err).splitlines()[0] if str(err) else type(err).__name__)


def main(argv: list[str] | None = None) -> int:
    from trainer_backend.data import DataError
    from trainer_backend.templates import TemplateError

    args = parse_args(argv)
    try:
        result = analyze(args)
    except (DataError, TemplateError, ValueError, OSError) as err:
        # A user-fixable problem: one English line on stderr, and its notice on stdout for the studio.
        notice = failure_notice(err)
        print(str(notice).splitlines()[0], file=sys.stderr)
        json.dump({"error": notice.to_json()}, sys.stdout, ensure_ascii=False)
        return 2
    json.dump(result, sys.stdout, ensure_ascii=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
