"""`evaluate JOB_DIR [--data FILE] [--metrics a,b] [--max-rows N] [--device cpu|0] [--out DIR]`:
answer held-out prompts with the job's base model and its trained model, score both, and write
report.json and report.md (metrics base -> fine-tuned, per-row answers) to DIR (default
JOB_DIR/eval). Without --data the rows are the run's own held-out split."""
from __future__ import annotations

import argparse
import sys

from trainer_backend.config import ConfigError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("job_dir", help="the job directory (output.dir of the run)")
    parser.add_argument("--data", default=None, help="a dataset file to evaluate on instead of the run's held-out split")
    parser.add_argument("--format", default="auto", help="format of --data (auto, alpaca, sharegpt, messages)")
    parser.add_argument("--metrics", default="", help="comma separated (default: the run's eval.metrics, else all)")
    parser.add_argument("--max-rows", type=int, default=None, help="evaluate only the first N rows")
    parser.add_argument("--device", default="cpu", help="cpu or a GPU index")
    parser.add_argument("--out", default=None, help="folder of report.json and report.md (default: JOB_DIR/eval)")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from trainer_backend.data import DataError
    from trainer_backend.evaluation.job import evaluate_job, metrics_table, write_report
    from trainer_backend.templates import TemplateError

    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()] or None
    if args.max_rows is not None and args.max_rows < 1:
        print("--max-rows: must be at least 1", file=sys.stderr)
        return 2
    try:
        report = evaluate_job(args.job_dir, args.data, args.format, metrics, args.max_rows, args.device)
    except (ConfigError, DataError, TemplateError) as err:
        print(str(err).splitlines()[0], file=sys.stderr)
        return 2
    json_path, md_path = write_report(report, args.out or Path(args.job_dir) / "eval")
    print(metrics_table(report.metrics))
    print(f"\n{report.rows} rows; answers in {md_path} and {json_path}")
    return 0
