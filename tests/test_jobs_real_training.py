"""Stop and resume of a real CPU training job (the real train command on a tiny llama)."""
from __future__ import annotations

import json
import time

import pytest

from fake_worker import live_pids, wait_until
from trainer_backend.config import RunConfig
from trainer_backend.jobs import JobRunner

pytestmark = pytest.mark.slow


def write_dataset(path) -> None:
    rows = [{"instruction": f"Repeat the number {i}.", "output": f"The number is {i}. " * 3} for i in range(64)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def tiny_run(model_dir, data_path, max_steps: int) -> RunConfig:
    return RunConfig.model_validate({
        "name": "tiny", "method": "lora",
        "model": {"name_or_path": str(model_dir), "engine": "hf"},
        "data": {"path": str(data_path)},
        "template": {"max_seq_len": 64, "packing": False},
        "lora": {"r": 8, "alpha": 16},
        "train": {"max_steps": max_steps, "micro_batch_size": 2, "lr": 5e-3, "scheduler": "constant",
                  "precision": "fp32", "gradient_checkpointing": "off", "seed": 0},
    })


def test_stop_then_resume_a_real_training_job(tiny_llama_dir, tmp_path):
    data = tmp_path / "data.jsonl"
    write_dataset(data)
    runner = JobRunner(tmp_path / "work", gpus=[], min_free_gib=0, grace_s=30.0)
    job_id = runner.submit(tiny_run(tiny_llama_dir, data, max_steps=20), "ann")
    wait_until(lambda: runner.get(job_id, "ann").progress.step >= 3, timeout_s=120, runner=runner)
    info = runner.get(job_id, "ann")
    pids, pgid = info.pids, info.pgid

    runner.stop(job_id, "ann")
    began = time.monotonic()
    wait_until(lambda: runner.get(job_id, "ann").state == "stopped", timeout_s=30)
    assert time.monotonic() - began < 30.0
    info = runner.get(job_id, "ann")
    assert info.exit_code == 10, runner.log_tail(job_id, "ann")
    assert live_pids([], pgid) == []
    wait_until(lambda: not live_pids(pids), timeout_s=5)
    stopped_at = info.progress.step
    assert (info.job_dir / "checkpoints" / f"step_{stopped_at}").is_dir()
    assert stopped_at < 20

    runner.resume(job_id, "ann")
    wait_until(lambda: runner.get(job_id, "ann").state == "completed", timeout_s=180, runner=runner)
    events, _ = runner.events(job_id, "ann")
    losses = [(e["step"], e["loss"]) for e in events if e["kind"] == "train"]
    steps = [s for s, _ in losses]
    assert steps == list(range(1, 21))  # no step repeated, none skipped
    loss = dict(losses)
    # From the checkpoint, not from scratch: a fresh random model is back at ln(vocab) = loss[1];
    # the resumed one stays near where the trend had brought it.
    assert loss[stopped_at] < loss[1] - 0.1, losses
    assert loss[stopped_at + 1] < loss[1] - (loss[1] - loss[stopped_at]) / 2, losses
    assert (info.job_dir / "output").is_dir()
