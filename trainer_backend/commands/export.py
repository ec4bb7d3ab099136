"""`export JOB_DIR [--merge [--dtype D]] [--gguf f16|bf16|q8_0] [--out DIR]`: copy a job's
adapter (or weights) with its tokenizer, merge the adapter into the base model as safetensors, or
write the merged model as one GGUF file with an Ollama Modelfile. A job without `output/` is
exported from its newest checkpoint. Prints the folder written on stdout and the merge check on
stderr."""
from __future__ import annotations

import argparse
import sys

from trainer_backend.config import ConfigError
from trainer_backend.export_contract import GGUF_TYPES, MERGE_DTYPES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("job_dir", help="the job directory (output.dir of the run)")
    parser.add_argument("--merge", action="store_true", help="merge the LoRA adapter into the base weights")
    parser.add_argument("--dtype", choices=MERGE_DTYPES, default="auto",
                        help="storage dtype of the merged weights (auto = the base model's; fp32 keeps every update)")
    parser.add_argument("--gguf", choices=GGUF_TYPES, default=None,
                        help="write the merged model as one .gguf file (llama.cpp, Ollama, LM Studio) and a Modelfile")
    parser.add_argument("--out", default=None, help="destination folder (default: JOB_DIR/merged, adapter or gguf)")


def run(args: argparse.Namespace) -> int:
    from trainer_backend.models.export import export_job

    try:
        out = export_job(args.job_dir, merge=args.merge, out_dir=args.out, dtype=args.dtype, gguf=args.gguf)
    except ConfigError as err:
        print(err, file=sys.stderr)
        return 2
    print(out)
    return 0
