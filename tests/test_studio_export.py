"""The Export tab's work: a finished job of the runner exported as an adapter zip and as a merged
model zip (safetensors + tokenizer + chat template), only by the job's owner."""
from __future__ import annotations

import time
import zipfile

import pytest

from studio.app_factory import make_context
from studio.context import StudioSettings
from studio.export_tab import export
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

    adapter = zipfile.ZipFile(export(ctx, "ann", job_id, merge=False)).namelist()
    assert "adapter_model.safetensors" in adapter and "adapter_config.json" in adapter
    assert "tokenizer.json" in adapter

    merged = export(ctx, "ann", job_id, merge=True)
    assert merged.is_relative_to(tmp_path / "work")  # exports stay inside the workdir
    names = zipfile.ZipFile(merged).namelist()
    assert "config.json" in names and any(n.endswith(".safetensors") for n in names)
    assert "adapter_model.safetensors" not in names
    assert "tokenizer.json" in names and "chat_template.jinja" in names

    with pytest.raises(PermissionError, match=f"you have no job {job_id}"):
        export(ctx, "bob", job_id, merge=False)
