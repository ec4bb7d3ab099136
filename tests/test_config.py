"""The run-config schema from the user's side: the commented example, and errors naming the key."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from trainer_backend.commands.config import example_yaml
from trainer_backend.config import ConfigError, RunConfig, load_config, validate_config

ROOT = Path(__file__).resolve().parent.parent


def test_example_is_complete_valid_and_commented():
    text = example_yaml()
    data = yaml.safe_load(text)
    assert validate_config(data) == RunConfig()
    assert set(data) == set(RunConfig.model_fields)
    lines = text.splitlines()
    # every described field is preceded by its description, inside its own section
    for section, value in RunConfig():
        fields = type(value).model_fields if hasattr(type(value), "model_fields") else {}
        start = lines.index(f"{section}:") if fields else 0
        for key, field in fields.items():
            if field.description:
                i = next(n for n in range(start, len(lines)) if lines[n].startswith(f"  {key}:"))
                assert lines[i - 1].startswith(f"  # {field.description}"), f"{section}.{key}"
    assert "  # Peak learning rate." in lines and "  lr: 0.0002" in lines
    assert "  # [linear | cosine | constant] " not in text  # choices follow the description on the same line
    assert "  # Learning-rate decay after warmup. [linear | cosine | constant]" in lines


def test_config_example_command_prints_it():
    out = subprocess.run([sys.executable, "-m", "trainer_backend", "config", "--example"], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    assert out == example_yaml()


def write(tmp_path, text: str):
    path = tmp_path / "run.yaml"
    path.write_text(text)
    return path


def test_unknown_key_is_named(tmp_path):
    path = write(tmp_path, "train:\n  lrr: 0.1\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(err.value) == f"{path}: invalid run config: unknown key 'train.lrr'"


def test_wrong_type_is_named(tmp_path):
    path = write(tmp_path, "train:\n  lr: fast\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(err.value).startswith(f"{path}: invalid run config: 'train.lr': ")
    assert "(got 'fast')" in str(err.value)


def test_set_overrides_parse_yaml_values(tmp_path):
    path = write(tmp_path, "train:\n  lr: 0.1\n")
    cfg = load_config(path, ["train.lr=1e-4", "sync.devices=[0,1]", "train.max_steps=7"])
    assert (cfg.train.lr, cfg.sync.devices, cfg.train.max_steps) == (1e-4, [0, 1], 7)
    with pytest.raises(ConfigError, match=r"unknown key 'trian'"):
        load_config(path, ["trian.lr=1"])


def test_presets_find_their_bundled_files_from_any_working_directory(tmp_path, monkeypatch):
    from trainer_backend.config import PROJECT_ROOT, load_config

    monkeypatch.chdir(tmp_path)
    cfg = load_config("smollm2-135m-demo")
    assert cfg.data.path == str(PROJECT_ROOT / "samples" / "demo_alpaca.jsonl")
    assert cfg.model.name_or_path.startswith(str(PROJECT_ROOT))
    assert load_config("qwen3-8b").model.name_or_path == "Qwen/Qwen3-8B"  # hub ids stay as they are


def test_on_and_off_read_as_yaml_booleans_are_the_documented_switch(tmp_path):
    """YAML 1.1 reads an unquoted on/off as true/false: in --set, a hand-written file and the form."""
    base = tmp_path / "run.yaml"
    base.write_text("train:\n  gradient_checkpointing: off\n", encoding="utf-8")
    assert load_config(base).train.gradient_checkpointing == "off"
    assert load_config(base, ["train.gradient_checkpointing=on"]).train.gradient_checkpointing == "on"
    assert RunConfig().with_overrides(["train.gradient_checkpointing=off"]).train.gradient_checkpointing == "off"
    for value in ("auto", "on", "off"):
        assert RunConfig().with_overrides({"train.gradient_checkpointing": value}).train.gradient_checkpointing == value


def test_offload_is_no_longer_a_choice():
    """It ran exactly like `on` on both engines; the config refuses it instead of pretending."""
    with pytest.raises(ConfigError, match="'train.gradient_checkpointing'.*'auto', 'off' or 'on'"):
        validate_config({"train": {"gradient_checkpointing": "offload"}})
