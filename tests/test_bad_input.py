"""Bad input that used to give a traceback, a wrong message or no word at all: each now gives one
line naming the file, row or key and what to do (or a warning where the value is legal)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from trainer_backend.config import ConfigError, RunConfig, load_config, validate_config
from trainer_backend.data import DataError, load_dataset
from trainer_backend.data.readers import read_records

ROW = {"instruction": "Say hi", "output": "hi"}


def deep(levels: int) -> str:
    return "[" * levels + "]" * levels


def test_one_deeply_nested_jsonl_row_is_a_row_error_and_the_others_load(tmp_path):
    path = tmp_path / "deep.jsonl"
    path.write_text(json.dumps(ROW) + "\n" + '{"instruction": ' + deep(100_000) + ', "output": "x"}\n')
    rows = read_records(path)
    assert rows.records[0] == ROW and rows.records[1] is None
    assert [(e.row, str(e.message)) for e in rows.errors] == [
        (1, "line 2 is nested too deeply to read (hundreds of levels of lists or objects); flatten it")]


@pytest.mark.parametrize("name, text, message", [
    ("deep.json", "[" + deep(100_000) + "]",
     "the file is nested too deeply to read (hundreds of levels of lists or objects); flatten it"),
    ("rows.csv", 'instruction,input,output\n"Say hi,,hi\nSay bye,,bye\n',
     'line 2 opens a quoted field that is never closed; add the closing quote, or write a quote inside a field as ""'),
    ("rows.json", json.dumps({"data": [ROW, ROW]}, indent=2),   # pretty-printed: not to be read as JSON lines
     "the file is one JSON object, not rows; put the rows in a JSON array [{...}, {...}] or write one object per "
     "line (JSON lines)"),
])
def test_a_file_that_is_not_rows_is_one_error_naming_it_and_the_fix(tmp_path, name, text, message):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(DataError) as raised:
        read_records(path)
    assert str(raised.value) == f"{path}: {message}"


def test_a_json_row_with_a_key_twice_is_refused(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text(json.dumps(ROW) + '\n{"instruction": "a", "output": "b", "instruction": "c"}\n')
    rows = read_records(path)
    assert [(e.row, str(e.message)) for e in rows.errors] == [
        (1, "line 2 has the key 'instruction' twice in one object; keep one")]
    loaded = load_dataset(path)
    assert loaded.rows == 2 and len(loaded.conversations) == 1


def write_yaml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "run.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("text, sets, message", [
    ("train:\n  lr: 1e-4\n  max_steps: 5\n  lr: 0.5\n", [],
     "{path}: line 4: the key 'lr' appears twice in one mapping; keep one"),
    ("train: 5\n", ["train.max_steps=2"],
     "'train' is 5 in the config, not a section of keys, so 'train.max_steps' cannot be set; write train: as a "
     "mapping (e.g. train: {{}})"),
    ("name: x\ntrain:\n  max_steps: 0\n", [],   # the key and the rule, not the whole config
     "{path}: invalid run config: 'train.max_steps': must be -1 (use epochs) or a positive number of "
     "steps (got 0)"),
])
def test_a_bad_config_file_is_one_line_naming_the_key(tmp_path, text, sets, message):
    path = write_yaml(tmp_path, text)
    with pytest.raises(ConfigError) as raised:
        load_config(path, sets)
    assert str(raised.value) == message.format(path=path)


def test_a_multi_line_yaml_error_becomes_one_line(tmp_path):
    path = write_yaml(tmp_path, "train:\n  lr: [1e-4\n  max_steps: 5\n")
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: not valid YAML (")


@pytest.mark.parametrize("section, values, key", [
    ("train", {"lr": float("inf")}, "train.lr"),
    ("train", {"lr": float("nan")}, "train.lr"),
    ("train", {"seed": 2 ** 32}, "train.seed"),
    ("train", {"seed": -1}, "train.seed"),
    ("lora", {"target_modules": []}, "lora.target_modules"),
])
def test_values_that_would_crash_the_job_are_config_errors_naming_the_key(section, values, key):
    with pytest.raises(ConfigError) as raised:
        validate_config({section: values})
    message = str(raised.value)
    assert message.startswith(f"invalid run config: '{key}': ") and "\n" not in message


def test_an_absurd_learning_rate_is_a_warning():
    assert RunConfig.model_validate({"train": {"lr": 5.0}}).warnings() == [
        "'train.lr' 5 is far above the usual range for lora (1e-5 to 0.01); the loss will likely diverge"]
    assert RunConfig().warnings() == []


def test_max_seq_len_beyond_the_models_context_is_a_warning(tiny_llama_dir):
    from transformers import AutoConfig

    from trainer_backend.train.loop import context_warnings

    model = torch.nn.Module()
    model.config = AutoConfig.from_pretrained(tiny_llama_dir)   # max_position_embeddings 2048
    long = RunConfig.model_validate({"template": {"max_seq_len": 4096}})
    assert context_warnings(long, model) == [
        "'template.max_seq_len' 4096 is beyond the model's context of 2048 tokens; positions past it were never "
        "trained and quality usually drops"]
    assert context_warnings(RunConfig(), model) == []


@pytest.mark.parametrize("device, message", [
    ("cpu", "'model.attn_implementation': flash_attention_2 runs on CUDA GPUs only; use sdpa or auto"),
    ("cuda", "'model.attn_implementation': flash_attention_2 needs the flash-attn package, which is not installed; "
             "pip install flash-attn, or use sdpa or auto"),
])
def test_flash_attention_2_without_its_package_or_gpu_is_a_config_error(device, message, monkeypatch):
    import importlib.util

    from trainer_backend.models.loading import check_attention

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "flash_attn" else real(name, *a))
    cfg = RunConfig.model_validate({"model": {"attn_implementation": "flash_attention_2"}})
    with pytest.raises(ConfigError) as raised:
        check_attention(cfg, torch.device(device))
    assert str(raised.value) == message


def test_lora_on_a_gpt2_style_model_adapts_its_conv1d_layers(tmp_path, smollm2_dir):
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

    from trainer_backend.models.loading import load_for_training

    tok = AutoTokenizer.from_pretrained(smollm2_dir)
    GPT2LMHeadModel(GPT2Config(vocab_size=len(tok), n_embd=32, n_layer=1, n_head=2, n_positions=128)).save_pretrained(tmp_path)
    cfg = RunConfig.model_validate({"model": {"name_or_path": str(tmp_path), "engine": "hf"},
                                    "train": {"precision": "fp32", "gradient_checkpointing": "off"}})
    loaded = load_for_training(cfg, torch.device("cpu"))
    adapted = sorted({n.split(".lora_")[0].rsplit(".", 1)[-1] for n, _ in loaded.trainable()})
    assert adapted == ["c_attn", "c_fc", "c_proj"]
    ids = torch.tensor([[1, 2, 3, 4]])
    loss = loaded.model(input_ids=ids, labels=ids).loss
    loss.backward()
    assert all(p.grad is not None for _, p in loaded.trainable())
