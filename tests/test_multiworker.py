"""Multi-worker training end to end: the real `train` command, launcher, workers and shm sync on
CPU workers with a tiny random llama. N ranks must train exactly what one rank trains on the
union of their batches; a dead or hung rank fails the run quickly and leaves nothing behind."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from multiworker_runs import MAX_NORM, ROOT, start_train, train, trainable, write_config
from trainer_backend.train.events import read_events
from trainer_backend.contracts import sync_job_id
from trainer_backend.train.sync.shm_files import job_folder, pid_alive

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("workers,micro,accum", [(2, 3, 2), (3, 2, 2)])  # global batch 12, as the reference
def test_n_workers_equal_one_worker_on_the_union(multiworker, one_worker, workers, micro, accum):
    tmp, model, data = multiworker
    name = f"shm{workers}"
    stale = job_folder(sync_job_id(tmp / name))
    stale.mkdir(parents=True)  # left by a killed run: garbage counters, an owner that is gone
    (stale / ".owner-pid").write_text("999999999")
    (stale / "control").write_bytes(b"\xff" * 65536)
    result = train(write_config(tmp, model, data, name, ["cpu"] * workers, micro, accum))
    assert result.returncode == 0, result.stderr[-2000:]
    assert not stale.exists()

    ours, ref = trainable(tmp / name), trainable(one_worker)
    assert ours.keys() == ref.keys() and len(ref) > 0
    assert max(float((ours[k] - ref[k]).abs().max()) for k in ref) <= 1e-5
    assert max(float(ref[k].abs().max()) for k in ref if "lora_B" in k) > 1e-3  # LoRA B starts at 0: it trained
    our_events, ref_events = read_events(tmp / name, "train"), read_events(one_worker, "train")
    assert [e["step"] for e in our_events] == [1, 2, 3, 4, 5]
    for a, b in zip(our_events, ref_events):
        assert a["loss"] == pytest.approx(b["loss"], abs=1e-5)
        assert a["grad_norm"] == pytest.approx(b["grad_norm"], rel=1e-4)
        assert a["grad_norm"] > MAX_NORM  # clipped: equality proves the sync happens before clipping


def worker_pids(job_dir: Path) -> dict[int, int]:
    """rank -> pid of the running workers of a job, read from /proc."""
    pids = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            args = (proc / "cmdline").read_bytes().decode().split("\0")
        except OSError:
            continue
        if "trainer_backend.train.worker" in args and str(job_dir) in args:
            pids[int(args[args.index("--rank") + 1])] = int(proc.name)
    return pids


def wait_for_step(job_dir: Path, step: int, launcher: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while not any(e["step"] >= step for e in read_events(job_dir, "train")):
        assert launcher.poll() is None, launcher.stderr.read()
        assert time.monotonic() < deadline, "training did not reach the step in time"
        time.sleep(0.2)


@pytest.mark.parametrize("fate", ["killed", "hung"])
def test_a_dead_or_hung_worker_fails_the_run_and_leaves_nothing(multiworker, fate):
    tmp, model, data = multiworker
    name = f"fate-{fate}"
    job_dir = tmp / name
    # A death is seen at once, whatever the sync timeout: give it one no loaded machine reaches, so
    # only the stopped rank can trip it in the hung case (a 2-core CI box can stall a step for seconds).
    timeout_s = 600 if fate == "killed" else 8
    launcher = start_train(write_config(tmp, model, data, name, ["cpu", "cpu"], micro=2, accum=1, steps=500,
                                        timeout_s=timeout_s))
    try:
        wait_for_step(job_dir, 1, launcher)
        pids = worker_pids(job_dir)
        assert sorted(pids) == [0, 1]
        os.kill(pids[1], signal.SIGKILL if fate == "killed" else signal.SIGSTOP)
        code = launcher.wait(timeout=300)
        stderr = launcher.stderr.read()
    finally:
        if launcher.poll() is None:
            launcher.kill()
    assert code == 1
    expected = ("rank 1 (device cpu) was killed by SIGKILL; stopped all ranks" if fate == "killed"
                else f"rank 1 (device cpu) stopped responding for {timeout_s} s; stopping all ranks")
    assert stderr.strip().splitlines()[-1] == expected
    errors = read_events(job_dir, "error")
    assert errors and errors[-1]["message"] == expected
    assert errors[-1]["reason"] == ("killed" if fate == "killed" else "sync")
    assert not any(pid_alive(pid) for pid in pids.values())
    assert not job_folder(sync_job_id(job_dir)).exists()


def test_sigterm_stops_every_worker_at_the_same_step(multiworker):
    tmp, model, data = multiworker
    job_dir = tmp / "stopped"
    launcher = start_train(write_config(tmp, model, data, "stopped", ["cpu", "cpu"], micro=2, accum=1, steps=500))
    try:
        wait_for_step(job_dir, 1, launcher)
        pids = worker_pids(job_dir)
        launcher.send_signal(signal.SIGTERM)
        code = launcher.wait(timeout=60)
    finally:
        if launcher.poll() is None:
            launcher.kill()
    assert code == 10
    stopped = [e for e in read_events(job_dir, "status") if e["status"] == "stopped"]
    assert len(stopped) == 1
    step = stopped[0]["step"]
    assert (job_dir / "checkpoints" / f"step_{step}" / "trainable.safetensors").exists()
    for rank in (0, 1):  # each worker says where it stopped: the same step
        log = (job_dir / "workers" / f"rank{rank}.log").read_text()
        assert f"stopped at step {step} of 500" in log
    assert not any(pid_alive(pid) for pid in pids.values())
    assert not job_folder(sync_job_id(job_dir)).exists()


def test_torchrun_start_equals_one_worker(multiworker, one_worker):
    """The multi-node entry: torchrun starts the workers itself, which then use the nccl backend
    (gloo on CPU workers) with the rank and world size torchrun gives them."""
    tmp, model, data = multiworker
    config = write_config(tmp, model, data, "torchrun", ["cpu", "cpu"], micro=3, accum=2)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
                             f"--master_port={port}", "-m", "trainer_backend.train.worker", "--config", str(config)],
                            cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-2000:]
    ours, ref = trainable(tmp / "torchrun"), trainable(one_worker)
    assert max(float((ours[k] - ref[k]).abs().max()) for k in ref) <= 1e-5
    losses = [e["loss"] for e in read_events(tmp / "torchrun", "train")]
    assert losses == pytest.approx([e["loss"] for e in read_events(one_worker, "train")], abs=1e-5)
