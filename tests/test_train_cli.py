"""`python -m trainer_backend train` as the job runner sees it: exit codes, the events contract,
SIGTERM -> checkpoint + exit 10 -> --resume on the same trajectory, OOM and config errors."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from trainer_backend.__main__ import main
from trainer_backend.config import ConfigError, RunConfig, load_config, parse_override
from trainer_backend.device_rules import check_devices
from trainer_backend.train import loop
from trainer_backend.train.events import read_events
from trainer_backend.train.sync.local import LocalSync

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples" / "demo_alpaca.jsonl"


def overrides(model_dir: Path, job_dir: Path, *extra: str) -> list[str]:
    return [f"model.name_or_path={model_dir}", f"output.dir={job_dir}", f"data.path={SAMPLES}",
            "model.engine=hf", "template.max_seq_len=128", "train.micro_batch_size=2", "train.max_steps=4",
            "train.precision=fp32", *extra]


def cli(model_dir: Path, job_dir: Path, *extra: str) -> list[str]:
    args = ["train", "smollm2-135m-demo"]
    for item in overrides(model_dir, job_dir, *extra):
        args += ["--set", item]
    return args


def test_completed_run_writes_the_job_directory(tiny_llama_dir, tmp_path):
    job = tmp_path / "job"
    assert main(cli(tiny_llama_dir, job, "data.eval_ratio=0.1", "train.eval_every=2")) == 0
    events = read_events(job)
    statuses = [(e["status"], e.get("stage")) for e in events if e["kind"] == "status"]
    assert statuses == [("preparing", "planning"), ("preparing", "loading_data"), ("preparing", "rendering"),
                        ("preparing", "loading_model"), ("started", None), ("checkpoint", None), ("completed", None)]
    train = [e for e in events if e["kind"] == "train"]
    assert [e["step"] for e in train] == [1, 2, 3, 4]
    assert set(train[0]) == {"t", "kind", "step", "loss", "lr", "grad_norm", "tokens_per_s", "epoch", "eta_s",
                             "gpu_mem_gib"}
    assert train[0]["gpu_mem_gib"] == [] and train[0]["tokens_per_s"] > 0
    assert [e["step"] for e in events if e["kind"] == "eval"] == [2, 4]
    assert read_events(job, "status")[4]["total_steps"] == 4
    saved = load_config(job / "config.yaml")
    assert (saved.model.engine, saved.train.precision, saved.train.micro_batch_size) == ("hf", "fp32", 2)
    out = job / "output"
    assert (out / "adapter_model.safetensors").exists() and (out / "adapter_config.json").exists()
    assert "<|im_start|>" in (out / "chat_template.jinja").read_text()
    assert "step 4 loss" in (job / "train.log").read_text()


def last_line(text: str) -> str:
    return text.strip().splitlines()[-1]


GPU_ONLY_ON_CPU = [
    (["model.engine=unsloth"], "'model.engine': unsloth needs a CUDA GPU and this run is on cpu; use engine: hf (or auto)"),
    (["method=qlora"], "'method': qlora loads the model in 4-bit with bitsandbytes, which needs a CUDA GPU; "
                       "use method: lora on CPU"),
    (["train.optimizer=adamw_8bit"], "'train.optimizer': adamw_8bit (bitsandbytes) needs a CUDA GPU; "
                                     "use optimizer: adamw on CPU"),
    (["train.precision=fp16"], "'train.precision': fp16 needs a CUDA GPU; use fp32 or bf16 on CPU"),
]


@pytest.mark.parametrize("extra, message", GPU_ONLY_ON_CPU)
def test_gpu_only_choices_on_cpu_exit_2_with_one_line(tiny_llama_dir, tmp_path, capsys, extra, message):
    job = tmp_path / "job"
    assert main(cli(tiny_llama_dir, job, *extra)) == 2
    assert last_line(capsys.readouterr().err) == message
    error = read_events(job, "error")[-1]
    assert (error["reason"], error["message"]) == ("config", message)


@pytest.mark.parametrize("extra, message", GPU_ONLY_ON_CPU)
def test_the_check_before_queuing_gives_the_trainers_message(extra, message):
    cfg = RunConfig().with_overrides(dict(parse_override(item) for item in extra))
    with pytest.raises(ConfigError) as caught:
        check_devices(cfg)
    assert str(caught.value) == message
    check_devices(cfg.with_overrides({"sync.devices": [0]}))   # on a GPU it is the trainer's business


def test_bad_config_and_bad_data_exit_2(tiny_llama_dir, tmp_path, capsys):
    assert main(cli(tiny_llama_dir, tmp_path / "a", "train.lrr=1")) == 2
    assert "unknown key 'train.lrr'" in last_line(capsys.readouterr().err)
    missing = tmp_path / "nope.jsonl"
    assert main(cli(tiny_llama_dir, tmp_path / "b", f"data.path={missing}")) == 2
    err = last_line(capsys.readouterr().err)
    assert str(missing) in err
    assert read_events(tmp_path / "b", "error")[-1]["reason"] == "data"
    assert main(cli(tiny_llama_dir, tmp_path / "c") + ["--resume"]) == 2
    assert last_line(capsys.readouterr().err) == (f"--resume: no checkpoint in {tmp_path / 'c' / 'checkpoints'}; "
                                                  "start without --resume")


def test_out_of_memory_becomes_an_oom_error_with_the_levers(tiny_llama_dir, tmp_path, monkeypatch, capsys):
    calls = []

    def run_step_out_of_memory(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real_run_step(*args, **kwargs)

    real_run_step = loop.run_step
    monkeypatch.setattr(loop, "run_step", run_step_out_of_memory)
    job = tmp_path / "job"
    cfg = load_config("smollm2-135m-demo", overrides(tiny_llama_dir, job))
    assert loop.train_rank(cfg, 0, 1, "cpu", LocalSync(), job) == 3
    expected = ("out of GPU memory at step 1 (train.micro_batch_size 2, template.max_seq_len 128, method lora): "
                "lower train.micro_batch_size (raise train.grad_accum to keep the effective batch), turn on "
                "train.gradient_checkpointing, lower template.max_seq_len, or use method: qlora")
    error = read_events(job, "error")[-1]
    assert (error["reason"], error["step"], error["message"]) == ("oom", 1, expected)
    err = capsys.readouterr().err
    assert last_line(err) == expected and "Traceback" not in err


@pytest.mark.slow
def test_sigterm_checkpoints_exits_10_and_resume_follows_the_same_trajectory(tiny_llama_dir, tmp_path):
    steps = "train.max_steps=12"
    straight = tmp_path / "straight"
    cfg = load_config("smollm2-135m-demo", overrides(tiny_llama_dir, straight, steps))
    assert loop.train_rank(cfg, 0, 1, "cpu", LocalSync(), straight) == 0

    job = tmp_path / "job"
    command = [sys.executable, "-m", "trainer_backend"] + cli(tiny_llama_dir, job, steps)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while len(read_events(job, "train")) < 2 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 10, err
    stopped = read_events(job, "status")[-1]
    assert stopped["status"] == "stopped" and 2 <= stopped["step"] < 12
    assert (job / "checkpoints" / f"step_{stopped['step']}" / "state.json").exists()
    assert last_line(err) == f"stopped at step {stopped['step']} of 12; continue with --resume"

    resumed = subprocess.run(command + ["--resume"], cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert resumed.returncode == 0, resumed.stderr
    a = {e["step"]: e["loss"] for e in read_events(straight, "train")}
    b = {e["step"]: e["loss"] for e in read_events(job, "train")}
    assert sorted(b) == list(range(1, 13))
    for step in range(1, 13):
        assert b[step] == pytest.approx(a[step], abs=1e-6), f"step {step}"
    from safetensors.torch import load_file
    wa = load_file(str(straight / "output" / "adapter_model.safetensors"))
    wb = load_file(str(job / "output" / "adapter_model.safetensors"))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
