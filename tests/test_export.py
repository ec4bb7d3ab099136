"""Export: the merged model is plain transformers weights whose logits equal base + adapter."""
from __future__ import annotations

import pytest
import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer

from trainer_backend.__main__ import main
from trainer_backend.config import ConfigError
from trainer_backend.models.export import export_job

from test_train_cli import cli


def test_merged_logits_equal_base_plus_adapter(tiny_llama_dir, tmp_path, capsys):
    job = tmp_path / "job"
    # a high learning rate so the adapter is far from its zero start and the check has teeth
    assert main(cli(tiny_llama_dir, job, "train.lr=0.01", "train.max_steps=3")) == 0
    capsys.readouterr()
    assert main(["export", str(job), "--merge", "--out", str(tmp_path / "merged")]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "merged")

    merged_dir = tmp_path / "merged"
    assert (merged_dir / "model.safetensors").exists() and not (merged_dir / "adapter_config.json").exists()
    merged = AutoModelForCausalLM.from_pretrained(merged_dir).eval()
    base = AutoModelForCausalLM.from_pretrained(tiny_llama_dir).eval()
    with_adapter = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_llama_dir), job / "output").eval()
    tok = AutoTokenizer.from_pretrained(merged_dir)
    ids = tok.apply_chat_template([{"role": "user", "content": "What is the capital of France?"}],
                                  add_generation_prompt=True, return_tensors="pt", return_dict=True)["input_ids"]
    with torch.no_grad():
        lm, la, lb = merged(ids).logits, with_adapter(ids).logits, base(ids).logits
    assert (la - lb).abs().max() > 1e-2, "the adapter must change the model"
    torch.testing.assert_close(lm, la, atol=1e-4, rtol=0)
    assert tok.chat_template == AutoTokenizer.from_pretrained(job / "output").chat_template


def test_export_without_merge_copies_the_adapter_and_refuses_unfinished_jobs(tiny_llama_dir, tmp_path):
    job = tmp_path / "job"
    assert main(cli(tiny_llama_dir, job, "train.max_steps=1")) == 0
    out = export_job(job, merge=False)
    assert out == job / "adapter"
    assert (out / "adapter_model.safetensors").read_bytes() == (job / "output" / "adapter_model.safetensors").read_bytes()
    with pytest.raises(ConfigError) as err:
        export_job(tmp_path / "empty", merge=True)
    assert str(err.value) == f"{tmp_path / 'empty' / 'output'}: no trained model there; export a job that has completed"
