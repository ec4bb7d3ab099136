"""Export: the merged model is plain transformers weights whose logits equal base + adapter; a bf16
base is merged in fp32 and rounded once, and the rounding is measured and reported; a stopped job
is exported from its newest checkpoint."""
from __future__ import annotations

import json

import pytest
import torch
from peft import PeftModel
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer

from trainer_backend.__main__ import main
from trainer_backend.config import ConfigError, load_config
from trainer_backend.contracts import ExitCode
from trainer_backend.export_contract import MATERIAL_LOGIT_DIFF, MergeCheck
from trainer_backend.models.export import export_job
from trainer_backend.models.merge_check import answers, compare, prompt_ids
from trainer_backend.train import loop
from trainer_backend.train.sync.local import LocalSync

from test_train_cli import cli, overrides
from test_train_loop import StopAfter


def chat_ids(tok, text="What is the capital of France?"):
    return tok.apply_chat_template([{"role": "user", "content": text}], add_generation_prompt=True,
                                   return_tensors="pt", return_dict=True)["input_ids"]


@pytest.fixture(scope="module")
def bf16_job(tmp_path_factory, tiny_llama_dir):
    """A bf16 base (like the demo model) with an adapter trained on it in fp32."""
    root = tmp_path_factory.mktemp("bf16")
    base = root / "base"
    AutoModelForCausalLM.from_pretrained(tiny_llama_dir).to(torch.bfloat16).save_pretrained(base)
    AutoTokenizer.from_pretrained(tiny_llama_dir).save_pretrained(base)
    job = root / "job"
    assert main(cli(base, job, "train.lr=0.01", "train.max_steps=3")) == 0
    return base, job


def test_merged_logits_equal_base_plus_adapter(tiny_llama_dir, tmp_path, capsys):
    job = tmp_path / "job"
    # a high learning rate so the adapter is far from its zero start and the check has teeth
    assert main(cli(tiny_llama_dir, job, "train.lr=0.01", "train.max_steps=3")) == 0
    capsys.readouterr()
    assert main(["export", str(job), "--merge", "--out", str(tmp_path / "merged")]) == 0
    printed = capsys.readouterr()
    assert printed.out.strip() == str(tmp_path / "merged")
    assert printed.err.strip().splitlines()[-1].startswith("merge check (fp32, from output): max logit difference")

    merged_dir = tmp_path / "merged"
    assert (merged_dir / "model.safetensors").exists() and not (merged_dir / "adapter_config.json").exists()
    merged = AutoModelForCausalLM.from_pretrained(merged_dir).eval()
    base = AutoModelForCausalLM.from_pretrained(tiny_llama_dir).eval()
    with_adapter = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_llama_dir), job / "output").eval()
    tok = AutoTokenizer.from_pretrained(merged_dir)
    ids = chat_ids(tok)
    with torch.no_grad():
        lm, la, lb = merged(ids).logits, with_adapter(ids).logits, base(ids).logits
    assert (la - lb).abs().max() > 1e-2, "the adapter must change the model"
    torch.testing.assert_close(lm, la, atol=1e-4, rtol=0)
    assert tok.chat_template == AutoTokenizer.from_pretrained(job / "output").chat_template


def test_bf16_base_is_merged_in_fp32_rounded_once_and_the_error_is_reported(bf16_job, tmp_path, capsys):
    base, job = bf16_job
    out = export_job(job, merge=True, out_dir=tmp_path / "merged")
    merged = load_file(str(out / "model.safetensors"))
    assert {t.dtype for t in merged.values()} == {torch.bfloat16}  # auto = the base's dtype

    # The reference the project did not write: peft's merge of the adapter into the fp32 base.
    exact = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32),
                                      job / "output").merge_and_unload()
    exact_weights = dict(exact.named_parameters())
    for name, tensor in merged.items():
        assert torch.equal(tensor, exact_weights[name].detach().to(torch.bfloat16)), name
    # The reported check is what an independent measurement of the saved model finds.
    check = MergeCheck.load(out)
    assert (check.dtype, check.prompts, check.source) == ("bf16", 3, "output")
    assert f"max logit difference vs base + adapter {check.max_logit_diff:.4g}" in capsys.readouterr().err
    tok = AutoTokenizer.from_pretrained(out)
    prompts = prompt_ids(tok)
    reference = answers(PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32),
                                                  job / "output"), prompts, tok.pad_token_id)
    saved = answers(AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32), prompts, tok.pad_token_id)
    diff, agree = compare(reference, saved)
    assert diff > 0 and check.max_logit_diff == pytest.approx(diff, abs=1e-5)
    assert check.greedy_agree == agree


def test_fp32_merged_export_keeps_the_trained_model(bf16_job, tmp_path):
    _, job = bf16_job
    out = export_job(job, merge=True, out_dir=tmp_path / "m32", dtype="fp32")
    assert {t.dtype for t in load_file(str(out / "model.safetensors")).values()} == {torch.float32}
    check = MergeCheck.load(out)
    assert check.dtype == "fp32" and check.max_logit_diff < 1e-4 and check.greedy_agree == check.prompts


def test_merge_check_advises_fp32_only_when_the_rounding_is_material():
    fine = MergeCheck("bf16", MATERIAL_LOGIT_DIFF / 2, 3, 3, "output")
    changed = MergeCheck("bf16", 0.01, 2, 3, "output")
    large = MergeCheck("bf16", MATERIAL_LOGIT_DIFF * 2, 3, 3, "step_4")
    assert not fine.material and "--dtype fp32" not in fine.summary()
    assert changed.material and large.material
    assert changed.summary().endswith("greedy answers agree on 2/3 prompts; rounding to bf16 changed the model: "
                                      "export with --dtype fp32 to keep the trained model exactly")
    assert "--dtype fp32" not in MergeCheck("fp32", 0.0, 2, 3, "output").summary()


def test_stopped_job_is_exported_from_its_newest_checkpoint(tiny_llama_dir, tmp_path, capsys):
    job = tmp_path / "job"
    cfg = load_config("smollm2-135m-demo", overrides(tiny_llama_dir, job, "train.lr=0.01"))
    # as a SIGTERM once step 1 is logged: the run checkpoints step 1 and stops
    assert loop.train_rank(cfg, 0, 1, "cpu", LocalSync(), job, stop=StopAfter(job, 1)) == ExitCode.STOPPED
    assert not (job / "output").exists() and (job / "checkpoints" / "step_1").exists()

    adapter = export_job(job, merge=False)
    assert adapter == job / "adapter-step_1"
    merged = export_job(job, merge=True)
    assert merged == job / "merged-step_1" and MergeCheck.load(merged).source == "step_1"
    # peft reads the checkpoint's adapter, and the merged model computes what it computes
    with_adapter = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_llama_dir), adapter).eval()
    trained = load_file(str(job / "checkpoints" / "step_1" / "trainable.safetensors"))
    lora = {n: p for n, p in with_adapter.named_parameters() if "lora_" in n}
    assert set(lora) == set(trained) and all(torch.equal(lora[n], trained[n]) for n in lora)
    ids = chat_ids(AutoTokenizer.from_pretrained(merged))
    with torch.no_grad():
        torch.testing.assert_close(AutoModelForCausalLM.from_pretrained(merged)(ids).logits,
                                   with_adapter(ids).logits, atol=1e-4, rtol=0)

    capsys.readouterr()
    assert main(["export", str(tmp_path / "empty")]) == 2
    assert capsys.readouterr().err.strip() == (f"{tmp_path / 'empty'}: no trained model there (no output/ and no "
                                               "checkpoint); export a job that has completed or saved a checkpoint")


def test_export_without_merge_copies_the_adapter(tiny_llama_dir, tmp_path):
    job = tmp_path / "job"
    assert main(cli(tiny_llama_dir, job, "train.max_steps=1")) == 0
    out = export_job(job, merge=False)
    assert out == job / "adapter"
    assert (out / "adapter_model.safetensors").read_bytes() == (job / "output" / "adapter_model.safetensors").read_bytes()
    with pytest.raises(ConfigError, match="is the job's own output folder"):
        export_job(job, merge=False, out_dir=job / "output")
    assert json.loads((out / "adapter_config.json").read_text())["r"] == 16
