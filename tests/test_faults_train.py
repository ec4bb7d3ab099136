"""Faults inside the trainer: a diverged run fails as "diverged" and keeps its last good checkpoint,
a stop finishes the step under way and not one more, a full disk while checkpointing leaves no
half checkpoint and says so, checkpoints are pruned, SIGTERM ends a trainer stuck before its first
step, and the render pool cannot hang on a worker that starts late."""
from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from test_train_loop import CPU, make_examples, run_config
from trainer_backend.contracts import ExitCode, JobPaths
from trainer_backend.train import checkpoint as checkpoint_module
from trainer_backend.train.checkpoint import DiskFull, TrainState, prune_checkpoints, save_checkpoint
from trainer_backend.models.loading import load_for_training
from trainer_backend.train.events import EventLog, read_events
from trainer_backend.train.loop import StopFlag, fit, train_rank
from trainer_backend.train.sync.local import LocalSync

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples" / "demo_alpaca.jsonl"


def job_config(model_dir: Path, job_dir: Path, **train):
    cfg = run_config(model_dir, job_dir, **train)
    return cfg.with_overrides({"data.path": str(SAMPLES)})


def test_a_diverged_run_fails_as_diverged_at_its_step_and_keeps_the_last_good_checkpoint(tiny_llama_dir, tmp_path):
    job = tmp_path / "job"
    cfg = job_config(tiny_llama_dir, job, lr=1e30, warmup_steps=0, scheduler="constant", max_steps=6, save_every=1)
    assert train_rank(cfg, 0, 1, "cpu", LocalSync(), job) == ExitCode.DIVERGED
    errors = read_events(job, "error")
    assert [e["reason"] for e in errors] == ["diverged"]
    message = errors[0]["message"]
    good = JobPaths(job).finished_checkpoints()
    last_train = read_events(job, "train")[-1]["step"]
    assert message.startswith(f"training diverged at step {last_train + 1} (")
    assert f"the last good checkpoint step_{good[-1][0]} is kept" in message and "Lower train.lr (now 1e+30)" in message
    assert [e["status"] for e in read_events(job, "status")].count("completed") == 0
    assert not (job / "output").exists()
    from safetensors.torch import load_file
    for _, folder in good:
        assert all(torch.isfinite(t).all() for t in load_file(str(folder / "trainable.safetensors")).values())


class StopDuringStep(StopFlag):
    """Requests a stop from inside forward pass number `n` (one pass a step here), as a SIGTERM
    arriving in the middle of step n would."""

    def __init__(self, model: torch.nn.Module, n: int):
        super().__init__()
        self.calls = 0

        def hook(*_):
            self.calls += 1
            if self.calls == n:
                self.request()
        model.register_forward_hook(hook)


def test_stop_finishes_the_step_under_way_and_not_one_more(tiny_llama_dir, tmp_path):
    job = tmp_path / "job"
    cfg = run_config(tiny_llama_dir, job, max_steps=10, save_every=1, keep_checkpoints=2)
    loaded = load_for_training(cfg, CPU)
    result = fit(loaded, cfg, make_examples(40), [], job, sync=LocalSync(), device=CPU, events=EventLog(job),
                 stop=StopDuringStep(loaded.model, 3), pad_id=2)
    assert (result.status, result.step) == ("stopped", 3)
    assert [e["step"] for e in read_events(job, "train")] == [1, 2, 3]
    assert [step for step, _ in JobPaths(job).finished_checkpoints()] == [2, 3]   # pruned to the newest 2
    stopped = read_events(job, "status")[-1]
    assert (stopped["status"], stopped["step"], stopped["message"]) == ("stopped", 3, "checkpoint step_3")
    assert stopped["seconds"] >= 0


def test_pruning_keeps_the_newest_and_the_best_by_eval_loss(tmp_path):
    for step, loss in ((1, 2.0), (2, 1.2), (3, 1.5), (4, None), (5, 1.9)):
        folder = JobPaths(tmp_path).checkpoint(step)
        folder.mkdir(parents=True)
        (folder / "state.json").write_text(json.dumps({"step": step, "eval_loss": loss}))
    (JobPaths(tmp_path).checkpoints / "step_6.tmp").mkdir()
    removed = prune_checkpoints(tmp_path, keep=2)
    assert sorted(p.name for p in removed) == ["step_1", "step_3"]
    assert [s for s, _ in JobPaths(tmp_path).finished_checkpoints()] == [2, 4, 5]


def _params(n: int) -> list[tuple[str, torch.nn.Parameter]]:
    return [("w", torch.nn.Parameter(torch.ones(n)))]


def _save(job: Path, step: int, n: int) -> Path:
    named = _params(n)
    optimizer = torch.optim.SGD([p for _, p in named], lr=0.1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)
    return save_checkpoint(job, TrainState(step, 0, step, 10), named, optimizer, scheduler)


def test_a_full_disk_while_checkpointing_leaves_no_tmp_folder_and_keeps_older_checkpoints(small_disk):
    first = _save(small_disk, 1, 1000)
    with pytest.raises(DiskFull) as raised:
        _save(small_disk, 2, 2_000_000)   # 8 MB of weights on a 4 MiB disk
    assert raised.value.errno == errno.ENOSPC and str(raised.value.what) == "writing checkpoint step_2"
    assert sorted(p.name for p in JobPaths(small_disk).checkpoints.iterdir()) == ["step_1"]
    assert JobPaths(small_disk).latest_checkpoint() == first


def test_a_full_disk_while_checkpointing_fails_the_run_with_a_disk_full_message(tiny_llama_dir, tmp_path,
                                                                                   monkeypatch, capsys):
    """The same fault injected where no tmpfs can be mounted: torch reports a full disk as a
    RuntimeError of its zip writer, and the disk then has no space left."""
    def full_disk_save(*_args, **_kwargs):
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534")
    job = tmp_path / "job"
    cfg = job_config(tiny_llama_dir, job, max_steps=2)
    monkeypatch.setattr(checkpoint_module.torch, "save", full_disk_save)
    monkeypatch.setattr(checkpoint_module, "_free_bytes", lambda _folder: 0)
    assert train_rank(cfg, 0, 1, "cpu", LocalSync(), job) == ExitCode.DISK_FULL
    err = capsys.readouterr().err
    expected = (f"the disk is full while writing checkpoint step_2 ({job / 'checkpoints' / 'step_2'}): free space "
                "on that disk (delete old jobs, checkpoints or exports), or lower train.keep_checkpoints; "
                "then resume the job")
    assert err.strip().splitlines()[-1] == expected and "Traceback" not in err
    assert [(e["reason"], e["message"]) for e in read_events(job, "error")] == [("disk_full", expected)]
    assert list(JobPaths(job).checkpoints.iterdir()) == []


def test_sigterm_ends_a_trainer_stuck_before_its_first_step(tiny_llama_dir, tmp_path):
    fifo = tmp_path / "never_written.jsonl"
    os.mkfifo(fifo)   # reading it blocks in the kernel, like a hung network mount
    command = [sys.executable, "-m", "trainer_backend", "train", "smollm2-135m-demo",
               "--set", f"model.name_or_path={tiny_llama_dir}", "--set", f"output.dir={tmp_path / 'job'}",
               "--set", f"data.path={fifo}", "--set", "model.engine=hf", "--set", "train.precision=fp32"]
    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    events = tmp_path / "job" / "events.jsonl"
    deadline = time.monotonic() + 240
    while not (events.exists() and b"loading_data" in events.read_bytes()) and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(2.0)   # into the blocked read
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == -signal.SIGTERM


POOL_SCRIPT = """
import multiprocessing, os, signal, time
from trainer_backend.templates import render
signal.signal(signal.SIGTERM, lambda *_: None)          # the trainer's stop flag: SIGTERM only sets it
os.register_at_fork(after_in_child=lambda: time.sleep(2))  # workers slow to start, as on a loaded machine
with render._pool(multiprocessing.get_context("fork"), 2, None):
    pass                                                 # the task ends before the workers are up
print("pool closed")
"""


def test_the_render_pool_closes_even_when_its_workers_start_after_the_task(tmp_path):
    proc = subprocess.run([sys.executable, "-c", POOL_SCRIPT], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert (proc.returncode, proc.stdout.strip()) == (0, "pool closed"), proc.stderr
