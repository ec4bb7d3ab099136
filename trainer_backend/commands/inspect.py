"""`inspect PATH`: read a dataset, detect its format, report row-level errors.

Exit 0 when at least one row is valid; 2 when none is or the file cannot be read, with a one-line
message on stderr.
"""
from __future__ import annotations

import argparse
import json
import sys

from trainer_backend.data import DataError, LoadedDataset, load_dataset

MAX_ERRORS = 100
SUMMARY_ERRORS = 5


class UsageError(ValueError):
    pass


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", help="JSON, JSONL, CSV, Parquet file or a datasets save_to_disk folder")
    parser.add_argument("--format", default="auto", choices=["auto", "alpaca", "sharegpt", "messages", "text"])
    parser.add_argument("--columns", default="", metavar="COL=FIELD,...",
                        help="map your columns to the format's fields, e.g. prompt=instruction,response=output")
    parser.add_argument("--strict", action="store_true", help="fail on the first invalid row")
    parser.add_argument("--keep-trailing-user", action="store_true",
                        help="treat a chat ending on a user turn as invalid instead of dropping that turn")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def parse_columns(text: str) -> dict[str, str]:
    mapping = {}
    for pair in filter(None, (part.strip() for part in text.split(","))):
        source, sep, target = pair.partition("=")
        if not sep or not source.strip() or not target.strip():
            raise UsageError(f"--columns: '{pair}' is not COLUMN=FIELD (e.g. prompt=instruction)")
        mapping[source.strip()] = target.strip()
    return mapping


def report(dataset: LoadedDataset) -> dict:
    return {
        "format": dataset.format,
        "rows": dataset.rows,
        "valid_rows": dataset.valid_rows,
        "errors": [{"row": e.row, "field": e.field, "message": str(e.message)} for e in dataset.errors[:MAX_ERRORS]],
        "errors_total": len(dataset.errors),
        "trailing_user_dropped": len(dataset.trimmed_rows),
        "reason": str(dataset.reason),
    }


def summary(dataset: LoadedDataset) -> str:
    lines = [f"{dataset.path}: {dataset.format} ({dataset.reason})",
             f"{dataset.valid_rows} of {dataset.rows} rows valid, {len(dataset.errors)} errors"
             + (f", {len(dataset.trimmed_rows)} trailing user turns dropped" if dataset.trimmed_rows else "")]
    lines += [f"  {error}" for error in dataset.errors[:SUMMARY_ERRORS]]
    if len(dataset.errors) > SUMMARY_ERRORS:
        lines.append(f"  ... {len(dataset.errors) - SUMMARY_ERRORS} more (use --json to see up to {MAX_ERRORS})")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    try:
        dataset = load_dataset(args.path, format=args.format, columns=parse_columns(args.columns),
                               strict=args.strict, drop_trailing_user=not args.keep_trailing_user)
    except (DataError, UsageError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(json.dumps(report(dataset)) if args.json else summary(dataset))
    if dataset.valid_rows == 0:
        first = f"; first: {dataset.errors[0]}" if dataset.errors else ""
        print(f"error: {dataset.path}: no valid rows ({len(dataset.errors)} errors){first}", file=sys.stderr)
        return 2
    return 0
