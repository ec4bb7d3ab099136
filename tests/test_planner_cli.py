"""`python -m trainer_backend plan`: JSON shape, the estimate of a config given as is, clear errors."""
from __future__ import annotations

import json

from trainer_backend.__main__ import main
from trainer_backend.planner import estimate, plan
from trainer_backend.presets import load_preset


def run_json(capsys, *argv) -> dict:
    assert main(["plan", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_json_of_an_auto_preset_is_the_plan(capsys):
    out = run_json(capsys, "qwen2.5-7b-instruct", "--gpu-mem", "48")
    assert set(out) >= {"peak_gib", "plan", "why"}
    expected = plan(load_preset("qwen2.5-7b-instruct"), 48, 1.5)
    assert out["peak_gib"] == round(expected.peak_gib, 3)
    assert out["plan"]["micro_batch_size"] == expected.config.train.micro_batch_size
    assert out["plan"]["gradient_checkpointing"] == expected.config.train.gradient_checkpointing
    assert out["peak_gib"] <= 48 - 1.5


def test_concrete_config_is_estimated_as_given_with_overrides(capsys):
    out = run_json(capsys, "qwen2.5-7b-instruct-48gb", "--gpu-mem", "24", "--set", "train.micro_batch_size=1")
    cfg = load_preset("qwen2.5-7b-instruct-48gb").with_overrides({"train.micro_batch_size": 1})
    assert out["plan"]["micro_batch_size"] == 1
    assert out["peak_gib"] == round(estimate(cfg).peak_gib, 3)
    assert out["fits"] is (estimate(cfg).peak_gib <= 24)


def test_text_output_has_the_table(capsys):
    assert main(["plan", "qwen3-8b", "--gpu-mem", "80"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("plan: ") and "| weights |" in text and "**peak" in text


def test_errors_are_one_line_naming_the_cause(capsys):
    assert main(["plan", "qwen2.5-7b-instruct"]) == 2
    assert "--gpu-mem" in capsys.readouterr().err
    assert main(["plan", "qwen2.5-7b-instruct", "--gpu-mem", "8", "--set", "method=lora"]) == 2
    assert "nothing fits in 8 GiB" in capsys.readouterr().err
    assert main(["plan", "no-such-preset", "--gpu-mem", "8"]) == 2
    assert "no-such-preset" in capsys.readouterr().err
