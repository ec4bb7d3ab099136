"""`export JOB_DIR [--merge] [--out DIR]`: copy a finished job's adapter (or weights) with its
tokenizer, or merge the adapter into the base model as safetensors. Prints the folder written."""
from __future__ import annotations

import argparse
import sys

from trainer_backend.config import ConfigError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("job_dir", help="the job directory (output.dir of the run)")
    parser.add_argument("--merge", action="store_true", help="merge the LoRA adapter into the base weights")
    parser.add_argument("--out", default=None, help="destination folder (default: JOB_DIR/merged or JOB_DIR/adapter)")


def run(args: argparse.Namespace) -> int:
    from trainer_backend.models.export import export_job

    try:
        out = export_job(args.job_dir, merge=args.merge, out_dir=args.out)
    except ConfigError as err:
        print(err, file=sys.stderr)
        return 2
    print(out)
    return 0
