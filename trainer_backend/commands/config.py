"""`config --example`: a complete, valid run config with every field commented (the comments come
from the schema's field descriptions, so they cannot drift from it).
`config CONFIG [--set k=v ...]`: validate a config (file or preset) and print it in full."""
from __future__ import annotations

import argparse
import sys
import typing
import yaml
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from trainer_backend.config import ConfigError, RunConfig, load_config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", nargs="?", help="run config YAML or preset name to validate and print")
    parser.add_argument("--example", action="store_true", help="print a commented example config")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")


def run(args: argparse.Namespace) -> int:
    if args.example or not args.config:
        print(example_yaml(), end="")
        return 0
    try:
        print(load_config(args.config, args.overrides).to_yaml(), end="")
    except ConfigError as err:
        print(err, file=sys.stderr)
        return 2
    return 0


def example_yaml(cfg: RunConfig | None = None) -> str:
    header = ["# A fine-tuning run: python -m trainer_backend train THIS_FILE.yaml [--set key=value]",
              "# Every field is optional; the values below are the defaults."]
    return "\n".join(header + commented_lines(cfg or RunConfig())) + "\n"


def commented_lines(section: BaseModel, indent: int = 0) -> list[str]:
    pad = "  " * indent
    lines = []
    for name, info in type(section).model_fields.items():
        value = getattr(section, name)
        comment = field_comment(info)
        if isinstance(value, BaseModel):
            lines.append("")
            lines += [f"{pad}# {comment}"] if comment else []
            lines.append(f"{pad}{name}:")
            lines += commented_lines(value, indent + 1)
            continue
        lines += [f"{pad}# {comment}"] if comment else []
        lines.append(f"{pad}{name}: {inline_yaml(value)}")
    return lines


def field_comment(info: FieldInfo) -> str:
    parts = [info.description] if info.description else []
    if typing.get_origin(info.annotation) is typing.Literal:
        parts.append("[" + " | ".join(str(c) for c in typing.get_args(info.annotation)) + "]")
    return " ".join(parts)


def inline_yaml(value: object) -> str:
    """One-line YAML for a value: scalars plain, lists and maps in flow style ([0, 1], {})."""
    text = yaml.safe_dump(value, default_flow_style=True, allow_unicode=True, width=10_000)
    return text.removesuffix("\n").removesuffix("\n...").strip()
