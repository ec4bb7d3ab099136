"""User YAML is bounded: aliases refused before they expand, sizes and nesting capped, in every
place a user's YAML is parsed (config files, --set, the Train form)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from studio.config_form import FormError, field_specs, from_form, to_form
from trainer_backend.config import ConfigError, RunConfig, load_config, parse_override
from trainer_backend.safe_yaml import MAX_DEPTH, YamlError, YamlRefused, dump_yaml, load_yaml

ROOT = Path(__file__).resolve().parent.parent


def alias_bomb(levels: int = 8) -> str:
    """Under 250 characters that expand to 9**levels list items once anything walks them."""
    lines = ['a0: &a0 ["x","x","x","x","x","x","x","x","x"]']
    for i in range(1, levels):
        p = f"*a{i - 1}"
        lines.append(f"a{i}: &a{i} [{','.join([p] * 9)}]")
    return "\n".join(lines)


def test_aliases_are_refused_and_plain_yaml_still_reads():
    assert load_yaml("lr: 2.0e-4\ndevices: [0, 1]\n", "run.yaml") == {"lr": 2.0e-4, "devices": [0, 1]}
    with pytest.raises(YamlRefused, match=r"run.yaml: YAML aliases \(\*a0\) are not accepted"):
        load_yaml(alias_bomb(), "run.yaml")
    with pytest.raises(YamlRefused, match=f"nested deeper than {MAX_DEPTH}"):
        load_yaml("[" * 200 + "]" * 200, "run.yaml")
    with pytest.raises(YamlRefused, match="over the 100-byte limit"):
        load_yaml("x: " + "y" * 200, "field", max_bytes=100)
    with pytest.raises(YamlError, match="run.yaml: not valid YAML"):
        load_yaml("a: [1, 2", "run.yaml")


def test_the_form_takes_an_alias_bomb_as_plain_text_and_bounds_every_field():
    specs = field_specs()
    keys = [s.key for s in specs]
    values = to_form(RunConfig(), specs)
    values[keys.index("description")] = alias_bomb()
    assert from_form(RunConfig(), specs, values).description == alias_bomb()  # never expanded
    values[keys.index("description")] = "x" * 20_000
    with pytest.raises(FormError, match=r"'description': 20,000 bytes is over the 16,384-byte limit"):
        from_form(RunConfig(), specs, values)


def test_set_overrides_refuse_aliases_and_oversized_values():
    with pytest.raises(ConfigError, match="--set model.architecture: YAML aliases"):
        parse_override("model.architecture={" + alias_bomb().replace("\n", ", ") + "}")
    with pytest.raises(ConfigError, match="over the"):
        parse_override("description=" + "x" * 20_000)
    assert parse_override("name=not: yaml: here") == ("name", "not: yaml: here")   # plain text stays text


def test_config_files_are_size_capped_and_alias_free(tmp_path):
    big = tmp_path / "big.yaml"
    big.write_text("description: '" + "x" * 300_000 + "'\n")
    with pytest.raises(ConfigError, match="big.yaml: 300,016 bytes of YAML is over"):
        load_config(big)
    shared = [1, 2]
    text = dump_yaml({"a": shared, "b": shared})
    assert "&" not in text and load_yaml(text, "x") == {"a": [1, 2], "b": [1, 2]}


def test_the_train_command_refuses_an_alias_bomb_instead_of_hanging(tmp_path):
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("model:\n  architecture:\n" + "\n".join("    " + line for line in alias_bomb(9).splitlines()))
    out = subprocess.run([sys.executable, "-m", "trainer_backend", "train", str(bomb)], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines()[-1] == f"{bomb}: YAML aliases (*a0) are not accepted; write the value out"
