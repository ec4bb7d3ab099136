"""Warm workers (trainer_backend/jobs/warm.py) on CPU. A runner given GPU index 0 starts a worker
with CUDA_VISIBLE_DEVICES=0; there is no GPU, so torch.cuda.is_available() is False and it imports
torch and the loop without unsloth. Jobs are submitted for GPU 0 (so they take the single-GPU path
and claim that worker) and their config.yaml is then turned into a CPU run, which this machine trains."""
from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import threading
import time

import psutil
import pytest
import torch

from fake_worker import FAKE_COMMAND, live_pids, wait_until
from test_jobs_real_training import tiny_run, write_dataset
from trainer_backend.config import load_config
from trainer_backend.contracts import read_json
from trainer_backend.jobs import JobRunner, registry, warm
from trainer_backend.jobs.outcome import classify
from trainer_backend.jobs.paths import JobPaths, WarmPaths
from trainer_backend.jobs.processes import alive, start_time
from trainer_backend.jobs.runner import DEFAULT_TRAIN_COMMAND
from trainer_backend.jobs.supervise import Supervisor

TRAIN = list(DEFAULT_TRAIN_COMMAND)
NICED = [shutil.which("nice") or "nice", "-n", "10", *TRAIN]   # the studio's train command
# With a GPU the worker imports unsloth and then takes unsloth runs only, not these CPU runs.
CPU_ONLY = pytest.mark.skipif(torch.cuda.is_available(), reason="fakes GPU 0 on a machine without CUDA")
TIMING = {"t", "seconds", "eta_s", "tokens_per_s"}   # clock readings in events


@pytest.fixture
def tiny_cfg(tiny_llama_dir, tmp_path):
    data = tmp_path / "data.jsonl"
    write_dataset(data)
    return lambda max_steps=3: tiny_run(tiny_llama_dir, data, max_steps)


def make_runner(workdir, warm_workers: bool = True, command: list[str] = TRAIN) -> JobRunner:
    return JobRunner(workdir, gpus=[0], min_free_gib=0, grace_s=30.0, warm_workers=warm_workers,
                     train_command=command)


def submit_on_cpu(runner: JobRunner, cfg, user: str = "ann") -> str:
    job_id = runner.submit(cfg, user, gpus=[0])
    path = runner.get(job_id, user).config_path
    load_config(path).with_overrides({"sync.devices": ["cpu"]}).save(path)
    return job_id


def ready_worker(runner: JobRunner) -> int:
    """Run schedule passes until GPU 0 has a ready warm worker; its pid."""
    wait_until(lambda: WarmPaths.ready_on(runner.workdir, 0), timeout_s=120, runner=runner)
    return read_json(WarmPaths.ready_on(runner.workdir, 0)[0].ready)["pid"]


def finish(runner: JobRunner, job_id: str, state: str = "completed"):
    wait_until(lambda: runner.get(job_id, "ann").state == state, timeout_s=240, runner=runner)
    return runner.get(job_id, "ann")


def comparable(runner: JobRunner, job_id: str) -> list[str]:
    """The job's events without clock readings, its directory written as JOB."""
    events, _ = runner.events(job_id, "ann")
    job_dir = str(runner.get(job_id, "ann").job_dir)
    return [json.dumps({k: v for k, v in e.items() if k not in TIMING}).replace(job_dir, "JOB")
            for e in events]


def training_in_warm_worker(runner: JobRunner, tiny_cfg) -> tuple[int, str]:
    """(worker pid, job id) of a long job that the ready worker of GPU 0 runs, past step 2."""
    pid = ready_worker(runner)
    job_id = submit_on_cpu(runner, tiny_cfg(max_steps=500))
    wait_until(lambda: runner.get(job_id, "ann").progress.step >= 2, timeout_s=120, runner=runner)
    assert runner.get(job_id, "ann").pgid == pid
    return pid, job_id


def zombie_children() -> list[int]:
    return [p.pid for p in psutil.Process().children() if p.status() == psutil.STATUS_ZOMBIE]


def test_only_a_single_gpu_trainer_backend_train_command_runs_warm():
    niced = ["/usr/bin/nice", "-n", "10", sys.executable, "-m", "trainer_backend", "train"]
    assert warm.warm_gpu(TRAIN, [3]) == 3
    assert warm.warm_gpu(niced, [1]) == 1
    assert warm.worker_argv(niced) == ["/usr/bin/nice", "-n", "10", sys.executable, "-m",
                                       "trainer_backend.jobs.warm_worker"]
    assert warm.warm_gpu(TRAIN, []) is None            # CPU job
    assert warm.warm_gpu(TRAIN, [0, 1]) is None        # multi-GPU job
    assert warm.warm_gpu(FAKE_COMMAND, [0]) is None    # another command
    assert warm.cli_args(niced, [*niced, "job/config.yaml", "--resume"]) == ["train", "job/config.yaml", "--resume"]
    assert warm.cli_args(TRAIN, [*TRAIN, "job/config.yaml"]) == ["train", "job/config.yaml"]


def test_a_worker_that_imported_unsloth_runs_only_jobs_that_import_it(tmp_path, tiny_cfg):
    config = tmp_path / "config.yaml"
    tiny_cfg().with_overrides({"sync.devices": [0]}).save(config)                     # engine: hf
    assert not warm.fits({"cuda": True}, config)
    assert warm.fits({"cuda": False}, config)                   # no unsloth in it: the same imports
    tiny_cfg().with_overrides({"sync.devices": [0], "model.engine": "auto"}).save(config)
    assert warm.fits({"cuda": True}, config)
    config.write_text("train: {lr: fast}\n")                   # the cold start reports it
    assert not warm.fits({"cuda": True}, config)


def test_runners_without_gpus_or_with_another_command_start_no_worker(tmp_path):
    for runner in (JobRunner(tmp_path / "a", gpus=[], min_free_gib=0, warm_workers=True),
                   JobRunner(tmp_path / "b", gpus=[0], min_free_gib=0, train_command=FAKE_COMMAND, warm_workers=True),
                   make_runner(tmp_path / "c", warm_workers=False),
                   JobRunner(tmp_path / "d", gpus=[0], min_free_gib=0)):   # off unless asked for
        runner.schedule()
        assert not (runner.workdir / "warm").exists()


@pytest.mark.slow
@CPU_ONLY
@pytest.mark.skipif(shutil.which("nice") is None, reason="the studio's command needs nice")
def test_a_warm_job_ends_as_the_same_cold_job_and_leaves_no_zombie(tmp_path, tiny_cfg):
    """With the studio's command (niced): the worker must get the train arguments without the prefix."""
    cold = make_runner(tmp_path / "cold", warm_workers=False, command=NICED)
    cold_id = submit_on_cpu(cold, tiny_cfg())
    cold_info = finish(cold, cold_id)

    runner = make_runner(tmp_path / "warm", command=NICED)
    pid = ready_worker(runner)
    job_id = submit_on_cpu(runner, tiny_cfg())
    runner.schedule()
    wait_until(lambda: runner.get(job_id, "ann").pgid is not None, timeout_s=30)
    assert runner.get(job_id, "ann").pgid == pid                      # the worker is the train process
    info = finish(runner, job_id)
    assert (info.state, info.exit_code, info.exit_reason) == (cold_info.state, cold_info.exit_code, None)
    assert comparable(runner, job_id) == comparable(cold, cold_id)
    assert f"--- in warm worker {pid} (imports done" in (info.job_dir / "console.log").read_text()
    assert "in warm worker" not in (cold_info.job_dir / "console.log").read_text()
    wait_until(lambda: not zombie_children(), runner=runner, timeout_s=10)   # the pass reaps it
    next_pid = ready_worker(runner)                                   # the GPU is free: a new one
    runner.close()
    assert next_pid != pid and not alive(next_pid)
    assert [p.name for p in (runner.workdir / "warm").iterdir()] == ["gpu0.log"]


@pytest.mark.slow
@CPU_ONLY
def test_two_supervisors_race_for_one_worker_one_wins_the_other_starts_cold(tmp_path, tiny_cfg):
    runner = make_runner(tmp_path / "work")
    pid = ready_worker(runner)
    ids = [submit_on_cpu(runner, tiny_cfg()) for _ in range(2)]
    with runner.registry.write() as conn:   # this process supervises both, in two threads
        for job_id in ids:
            registry.update(conn, job_id, state="running", started_at=time.time(), supervisor_pid=os.getpid(),
                            supervisor_created=start_time(os.getpid()))
    threads = [threading.Thread(target=Supervisor(runner.workdir, job_id, threading.Event()).run) for job_id in ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=240)
    infos = [runner.get(job_id, "ann") for job_id in ids]
    assert [i.state for i in infos] == ["completed", "completed"]
    consoles = [(i.job_dir / "console.log").read_text() for i in infos]
    assert sorted(f"in warm worker {pid}" in text for text in consoles) == [False, True]
    runner.close()


@pytest.mark.slow
@CPU_ONLY
def test_stopping_a_warm_job_ends_it_as_a_stopped_cold_job(tmp_path, tiny_cfg):
    runner = make_runner(tmp_path / "work")
    pid, job_id = training_in_warm_worker(runner, tiny_cfg)
    runner.stop(job_id, "ann")
    info = finish(runner, job_id, "stopped")
    checkpoint = JobPaths(info.job_dir).latest_checkpoint()
    expected = classify(10, True, [], None, 30.0, checkpoint.name)
    assert (info.pgid, info.exit_code, info.exit_reason) == (None, 10, expected.reason)
    assert not live_pids([pid])
    runner.close()


@pytest.mark.slow
@CPU_ONLY
def test_a_warm_worker_killed_mid_run_fails_its_job_as_a_killed_cold_one(tmp_path, tiny_cfg):
    runner = make_runner(tmp_path / "work")
    pid, job_id = training_in_warm_worker(runner, tiny_cfg)
    os.kill(pid, signal.SIGKILL)
    info = finish(runner, job_id, "failed")
    expected = classify(-signal.SIGKILL, False, [], None, 30.0)
    assert (info.exit_code, info.exit_reason) == (-9, expected.reason)
    events, _ = runner.events(job_id, "ann")
    assert (events[-1]["kind"], events[-1]["reason"]) == ("error", "killed")
    runner.close()


@pytest.mark.slow
@CPU_ONLY
def test_a_worker_that_does_not_answer_the_hand_over_is_killed_and_the_job_starts_cold(tmp_path, tiny_cfg):
    runner = make_runner(tmp_path / "work")
    pid = ready_worker(runner)
    os.kill(pid, signal.SIGSTOP)   # alive, so claimed, but it never answers
    job_id = submit_on_cpu(runner, tiny_cfg())
    info = finish(runner, job_id)
    console = (info.job_dir / "console.log").read_text()
    assert f"--- warm worker {pid} did not answer; starting cold" in console
    assert not alive(pid)
    runner.close()


@pytest.mark.slow
@CPU_ONLY
def test_a_dead_worker_is_not_claimed(tmp_path, tiny_cfg):
    pool = warm.WarmPool(tmp_path, TRAIN)
    pool.keep([0], set(), set())
    wait_until(lambda: WarmPaths.ready_on(tmp_path, 0), timeout_s=120)
    worker = WarmPaths.ready_on(tmp_path, 0)[0]
    os.kill(read_json(worker.ready)["pid"], signal.SIGKILL)
    pool.workers[0].proc.wait()    # dead, its ready file still there
    job = JobPaths(tmp_path / "jobs" / "x")
    job.dir.mkdir(parents=True)
    assert warm.claim(tmp_path, 0, TRAIN, job) is None
    assert not worker.ready.exists()
    pool.close()


@pytest.mark.slow
@CPU_ONLY
def test_close_kills_a_ready_worker_and_lets_an_importing_one_finish_and_exit(tmp_path):
    """A worker killed halfway through unsloth's import could leave its caches half-written."""
    runner = make_runner(tmp_path / "a")
    runner.schedule()                                # importing
    importing = runner._warm.workers[0].proc.pid
    runner.close()
    assert alive(importing)                          # not killed mid-import ...
    wait_until(lambda: not alive(importing), timeout_s=240)   # ... it ends after its imports
    assert f"warm worker {importing}: retired during its imports" in (runner.workdir / "warm" / "gpu0.log").read_text()
    left = [p.suffix for p in (runner.workdir / "warm").iterdir()]
    assert left == [".log"], left                   # neither a .ready nor an .importing file
    other = make_runner(tmp_path / "b")
    ready = ready_worker(other)
    other.close()
    assert not alive(ready)
    wait_until(lambda: not zombie_children(), timeout_s=30)


def test_a_worker_that_fails_its_imports_is_not_restarted_at_once(tmp_path):
    pool = warm.WarmPool(tmp_path, TRAIN)
    pool.argv = [sys.executable, "-c", "import sys; sys.exit(1)"]   # as a failed import ends
    pool.keep([0], set(), set())
    first = pool.workers[0].proc
    first.wait()
    pool.keep([0], set(), set())
    assert 0 not in pool.workers and pool.backoff[0] == 30.0
    assert pool.retry_at[0] > time.monotonic() + 25
