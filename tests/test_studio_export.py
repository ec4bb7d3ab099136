"""The Export tab's work: a finished job of the runner exported as an adapter zip, a merged model
zip (safetensors + tokenizer + chat template) with its merge check, and a GGUF zip with its
Ollama Modelfile, only by the job's owner."""
from __future__ import annotations

import time
import zipfile

import pytest

from studio.app_factory import make_context
from studio.context import StudioSettings
from studio.export_tab import ExportRequest, check_text, export, exportable_jobs
from trainer_backend.config import RunConfig

pytestmark = pytest.mark.slow


def finished_job(ctx, model_dir, data_path, user: str) -> str:
    cfg = RunConfig.model_validate({
        "model": {"name_or_path": str(model_dir), "engine": "hf"},
        "data": {"path": str(data_path)},
        "template": {"max_seq_len": 64},
        "lora": {"r": 4, "alpha": 8},
        "train": {"max_steps": 2, "micro_batch_size": 2, "precision": "fp32", "gradient_checkpointing": "off"},
    })
    job_id = ctx.runner.submit(cfg, user)
    deadline = time.time() + 180
    while time.time() < deadline:
        ctx.runner.schedule()
        info = ctx.runner.get(job_id, user)
        if info.state in ("completed", "failed"):
            assert info.state == "completed", ctx.runner.log_tail(job_id, user)
            return job_id
        time.sleep(0.5)
    raise AssertionError("the job did not finish in 180 s")


def test_export_adapter_and_merged_model_of_a_finished_job(tmp_path, tiny_llama_dir):
    data = tmp_path / "data.jsonl"
    data.write_text('{"instruction": "Say hi", "output": "hi"}\n' * 8)
    ctx = make_context(StudioSettings(workdir=tmp_path / "work"))
    job_id = finished_job(ctx, tiny_llama_dir, data, "ann")

    assert [job for _, job in exportable_jobs(ctx, "ann")] == [job_id] and exportable_jobs(ctx, "bob") == []
    adapter_zip, check = export(ctx, "ann", job_id, ExportRequest("adapter"))
    adapter = zipfile.ZipFile(adapter_zip).namelist()
    assert "adapter_model.safetensors" in adapter and "adapter_config.json" in adapter
    assert "tokenizer.json" in adapter and check is None

    merged, check = export(ctx, "ann", job_id, ExportRequest("merged", dtype="fp32"))
    assert merged.is_relative_to(tmp_path / "work")  # exports stay inside the workdir
    names = zipfile.ZipFile(merged).namelist()
    assert "config.json" in names and any(n.endswith(".safetensors") for n in names)
    assert "adapter_model.safetensors" not in names
    assert "tokenizer.json" in names and "chat_template.jinja" in names
    assert check.dtype == "fp32" and check.greedy_agree == check.prompts
    assert check_text("vi", check).strip().startswith("Kiểm tra gộp (fp32, từ output)")

    gguf, check = export(ctx, "ann", job_id, ExportRequest("gguf", gguf="q8_0"))
    assert sorted(zipfile.ZipFile(gguf).namelist()) == ["Modelfile", "merge_check.json", "run-q8_0.gguf"]
    assert check.dtype == "q8_0"

    with pytest.raises(PermissionError, match=f"you have no job {job_id}"):
        export(ctx, "bob", job_id, ExportRequest("adapter"))
