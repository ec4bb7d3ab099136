"""What is trained vs references the project did not write, per family, on real data.

    python bench/template_fidelity.py [--rows 150] [--source DIR] [--max-seq-len 100000]

For each family (tests/template_references.py): rows checked, rows dropped, and rows whose ids differ
from the tokenizer's joint encoding of the rendered text, whose text differs from the tokenizer's
apply_chat_template, whose trained text is not exactly each answer + end of turn, and (Mistral)
whose ids differ from mistral-common's fine-tuning encoding. `--source` runs the checks against
another checkout of the project (e.g. the previous release) to compare before and after.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=150, help="rows taken from each of the three data sets")
    p.add_argument("--source", type=Path, default=ROOT, help="checkout whose trainer_backend is checked")
    p.add_argument("--max-seq-len", type=int, default=100_000)
    p.add_argument("--only", nargs="*", help="family names")
    p.add_argument("--system-prompt", default=None, help="template.system_prompt for rows without one")
    args = p.parse_args()
    sys.path[:0] = [str(args.source), str(ROOT / "tests")]
    from conftest import CACHE, DATA, TOKENIZERS
    from template_references import FAMILIES, check, real_conversations
    from trainer_backend.config import TemplateConfig
    from trainer_backend.templates import build_examples, load_tokenizer

    with tempfile.TemporaryDirectory() as tmp:
        convs = real_conversations(DATA, Path(tmp), args.rows)
    print(f"source: {args.source}; {len(convs)} rows ({args.rows} chitchat, {args.rows} chatterbot, "
          f"{args.rows} English→Vietnamese); system prompt: {args.system_prompt!r}")
    print("| family | rows | dropped | ids ≠ joint encoding | text ≠ apply_chat_template | trained ≠ answers+eot "
          "| layout ≠ mistral-common | ids ≠ mistral-common |")
    print("|---|---|---|---|---|---|---|---|")
    for name, family in FAMILIES.items():
        if args.only and name not in args.only:
            continue
        try:
            tok = load_tokenizer(str(TOKENIZERS[family.tokenizer]), family.template)
            tcfg = TemplateConfig(enable_thinking=family.thinking, max_seq_len=args.max_seq_len,
                                  system_prompt=args.system_prompt)
        except Exception as err:   # an older checkout may lack a template or a field
            print(f"| {name} | not available: {str(err).splitlines()[0][:80]} |")
            continue
        t = check(family, tok, convs, tcfg, CACHE / "pkgs" / "mistral_common" / "data", build_examples)
        mc = f"{t.mistral_common} | {t.mistral_common_ids}" if family.mistral_common else "– | –"
        text = t.text if family.own_template else "–"
        print(f"| {name} | {t.rows} | {t.dropped} | {t.ids} | {text} | {t.trained} | {mc} |")
        if t.examples:
            print(f"|  | first rows differing: {t.examples} |", file=sys.stderr)


if __name__ == "__main__":
    main()
