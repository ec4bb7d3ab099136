"""`python -m trainer_backend <command>`: each command lives in trainer_backend/commands/<name>.py
and exposes `add_arguments(parser)` and `run(args) -> int`."""
from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS = {
    "inspect": "Read a dataset, detect its format, report row-level errors.",
    "preview": "Render and mask rows with a model's chat template: trained vs masked tokens.",
    "config": "Print an example run config.",
    "train": "Run a config (one worker per device).",
    "plan": "Predict peak GPU memory and resolve `auto` fields.",
    "export": "Write a job's adapter, or the merged model, with its tokenizer.",
    "evaluate": "Answer held-out prompts with a job's base and trained model; metrics and answers as JSON and Markdown.",
    "jobs": "List, stop, resume jobs of a workdir.",
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="python -m trainer_backend", description="Headless fine-tuning backend: data, templates, training, jobs, planning.")
    sub = parser.add_subparsers(dest="command", required=True)
    chosen = None
    for name, help_text in COMMANDS.items():
        command_parser = sub.add_parser(name, help=help_text, description=help_text)
        # Only the chosen command is imported: some pull in transformers or torch, which would
        # make every other command slow to start.
        if argv and argv[0] == name:
            chosen = importlib.import_module(f"trainer_backend.commands.{name}")
            chosen.add_arguments(command_parser)
    args = parser.parse_args(argv)
    return chosen.run(args)


if __name__ == "__main__":
    sys.exit(main())
