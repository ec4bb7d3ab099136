"""`preview --data D --model M`: the rendered text of each row and exactly which tokens are trained.

With --json: one JSON object per row, {"row", "input_ids", "trained", "text", "truncated"}.
Without: the decoded row with trained spans between [[ and ]]. Preference files (DPO, ORPO, SimPO)
show each pair's chosen and rejected sequence (JSON: {"row", "prompt_len", "chosen": {...},
"rejected": {...}}), KTO files each completion with its label ("desirable"). Rows dropped by the length policy and
the counts go to stderr. Bad input: one line on stderr, exit 2.
"""
from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

from transformers.utils import logging as transformers_logging

from trainer_backend.config import ConfigError, DataConfig, ModelConfig, TemplateConfig, load_config, resolve_config_path
from trainer_backend.data import DataError, load_dataset
from trainer_backend.templates import (TEMPLATE_CHOICES, Example, TemplateError, build_examples,
                                       load_tokenizer_for_preview, token_texts)
from trainer_backend.templates.pairs import build_preference_examples


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, help="dataset file or folder (see `inspect`)")
    parser.add_argument("--model", required=True, help="model/tokenizer folder, or a preset name (see presets/)")
    parser.add_argument("--format", default="auto", choices=DataConfig.model_fields["format"].annotation.__args__)
    parser.add_argument("--template", choices=TEMPLATE_CHOICES, help="default: the preset's, else auto")
    parser.add_argument("--loss", choices=["response_only", "last_turn", "full"])
    parser.add_argument("--max-seq-len", type=int, dest="max_seq_len")
    parser.add_argument("--overflow", choices=["truncate", "drop"])
    parser.add_argument("--rows", type=int, help="only the first N valid rows")
    parser.add_argument("--json", action="store_true", help="one JSON object per row")


def resolve_model(model: str) -> tuple[ModelConfig, TemplateConfig]:
    """A folder is used as is; a preset (or config file) gives its model and template settings."""
    if Path(model).is_dir():
        return ModelConfig(name_or_path=model), TemplateConfig()
    config = load_config(resolve_config_path(model))
    return config.model, config.template


def template_config(base: TemplateConfig, args: argparse.Namespace) -> TemplateConfig:
    if args.max_seq_len is not None and args.max_seq_len < 16:
        raise ConfigError(f"--max-seq-len must be at least 16, got {args.max_seq_len}")
    if args.rows is not None and args.rows < 1:
        raise ConfigError(f"--rows must be at least 1, got {args.rows}")
    overrides = {"name": args.template, "loss": args.loss, "max_seq_len": args.max_seq_len, "overflow": args.overflow}
    return base.model_copy(update={k: v for k, v in overrides.items() if v is not None})


def marked_text(example: Example, tokenizer) -> str:
    """The tokens' own text with each trained run wrapped in [[ ]]."""
    _, pieces = token_texts(tokenizer, example.text)
    parts = []
    for trained, run in itertools.groupby(zip(pieces, example.trained), key=lambda pair: pair[1]):
        text = "".join(piece for piece, _ in run)
        parts.append(f"[[{text}]]" if trained else text)
    return "".join(parts)


def run(args: argparse.Namespace) -> int:
    transformers_logging.set_verbosity_error()  # tokenizer-loading notices would bury the one-line messages
    try:
        model, base = resolve_model(args.model)
        tcfg = template_config(base, args)
        tokenizer, stand_in = load_tokenizer_for_preview(model.name_or_path, tcfg.name, model.offline_tokenizer)
        dataset = load_dataset(args.data, format=args.format)
    except (ConfigError, DataError, TemplateError) as err:
        print(f"preview: {err}", file=sys.stderr)
        return 2
    conversations = dataset.conversations[:args.rows] if args.rows else dataset.conversations
    if not conversations:
        print(f"preview: {args.data}: no valid rows ({len(dataset.errors)} errors; run `inspect` to see them)",
              file=sys.stderr)
        return 2
    if stand_in:
        print(f"preview: the model hub cannot be reached: rendered with the offline tokenizer {stand_in} "
              f"(same family as {model.name_or_path})", file=sys.stderr)
    preference = dataset.format in ("preference", "kto")
    examples, report = (build_preference_examples if preference else build_examples)(conversations, tokenizer, tcfg)
    for example in examples:
        if preference:
            show_sequences(example, tokenizer, args.json)
        else:
            show(example, example.row, "", tokenizer, args.json)
    for issue in report.issues:
        print(f"preview: {issue}", file=sys.stderr)
    print(f"preview: {report.summary()}", file=sys.stderr)
    return 0 if examples else 2


def show(example: Example, row: int, what: str, tokenizer, as_json: bool) -> None:
    if as_json:
        print(json.dumps({"row": row, "input_ids": example.input_ids, "trained": example.trained,
                          "text": example.text, "truncated": example.truncated}, ensure_ascii=False))
        return
    flag = ", truncated" if example.truncated else ""
    print(f"--- row {row}{what}: {len(example.input_ids)} tokens, {example.n_trained} trained{flag}")
    print(marked_text(example, tokenizer))


def show_sequences(unit, tokenizer, as_json: bool) -> None:
    """A pair's two sequences, or a KTO row's one with its label."""
    sides = [("chosen", unit.chosen), ("rejected", unit.rejected)] if hasattr(unit, "chosen") else \
        [("desirable" if unit.desirable else "undesirable", unit.sequence)]
    if as_json:
        print(json.dumps({"row": unit.row, "prompt_len": unit.prompt_len, **{name: {
            "input_ids": e.input_ids, "trained": e.trained, "truncated": e.truncated} for name, e in sides}}))
        return
    for name, example in sides:
        show(example, unit.row, f" {name}", tokenizer, False)
