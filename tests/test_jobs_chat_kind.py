"""Chat workers are jobs of their own kind: they queue for GPUs with the training jobs (never
landing on a GPU a job holds, never outside the studio's GPUs), take CPU slots of their own, and
a studio that starts stops the workers a dead studio left behind."""
from __future__ import annotations

import os
import sys

import pytest

from studio_server import stop_jobs, wait_until
from trainer_backend.config import RunConfig
from trainer_backend.jobs import ADMIN, CHAT, QUEUED, RUNNING, STOPPED, JobRunner
from trainer_backend.jobs.processes import start_time
from trainer_backend.serve.client import ChatPool

SLEEP = [sys.executable, "-c", "import time; time.sleep(120)"]   # the job's config path is appended


@pytest.fixture()
def make_runner(tmp_path):
    made = []

    def make(gpus):
        runner = JobRunner(tmp_path / "work", gpus=gpus, min_free_gib=0, grace_s=2, train_command=SLEEP)
        made.append(runner)
        return runner
    yield make
    for runner in made:
        runner.close()
    stop_jobs(tmp_path / "work")


def chat_spec(pid: int, started: float | None) -> dict:
    return {"model": "m", "adapter": None, "template": "auto", "token": "t", "studio_pid": pid,
            "studio_started": started, "idle_exit_s": 60}


def state(runner: JobRunner, job_id: str) -> str:
    return runner.get(job_id, ADMIN).state


def test_chat_workers_never_share_a_gpu_with_training_and_stay_on_the_studios_gpus(make_runner):
    runner = make_runner([1, 2])                        # the studio's --gpus 1,2
    me = (os.getpid(), start_time(os.getpid()))
    train = runner.submit(RunConfig(), "alice", gpus=[1])
    runner.schedule()
    assert state(runner, train) == RUNNING
    base = runner.submit_chat(chat_spec(*me), "bob", "chat-base", SLEEP)
    tuned = runner.submit_chat(chat_spec(*me), "bob", "chat-tuned", SLEEP)
    assert runner.get(base, ADMIN).gpus == runner.get(tuned, ADMIN).gpus == [2]   # not the GPU alice trains on
    runner.schedule()
    assert (state(runner, base), state(runner, tuned)) == (RUNNING, RUNNING)       # chats share a GPU
    assert "device: cuda" in runner.get(base, ADMIN).config_path.read_text()
    assert oct(runner.get(base, ADMIN).config_path.stat().st_mode & 0o777) == "0o600"   # it holds the token
    waiting = runner.submit(RunConfig(), "carol", gpus=[2])
    runner.schedule()
    assert state(runner, waiting) == QUEUED                                          # the chats hold GPU 2
    late = runner.submit_chat(chat_spec(*me), "dave", "chat-base", SLEEP)
    assert runner.get(late, ADMIN).gpus == [1]          # one training run on each GPU: the fewer chats
    runner.schedule()
    assert state(runner, late) == QUEUED                # alice trains there
    for chat in (base, tuned):
        runner.stop(chat, "bob")
    wait_until(lambda: runner.schedule() or state(runner, waiting) == RUNNING, 30, what="carol's run to get GPU 2")
    assert state(runner, late) == QUEUED
    assert [j.id for j in runner.list("bob")] == [] and len(runner.list("bob", kind=CHAT)) == 2


def test_cpu_chat_workers_have_slots_of_their_own(make_runner):
    runner = make_runner([])
    train = runner.submit(RunConfig(), "alice")
    waiting = runner.submit(RunConfig(), "alice")
    chat = runner.submit_chat(chat_spec(os.getpid(), start_time(os.getpid())), "bob", "chat-base", SLEEP)
    runner.schedule()
    assert [state(runner, j) for j in (train, waiting, chat)] == [RUNNING, QUEUED, RUNNING]
    assert "device: cpu" in runner.get(chat, ADMIN).config_path.read_text()


def test_a_starting_studio_stops_the_chat_workers_of_a_dead_studio(make_runner):
    runner = make_runner([])
    orphan = runner.submit_chat(chat_spec(os.getpid(), 12345.0), "bob", "chat-base", SLEEP)   # pid reused
    ours = runner.submit_chat(chat_spec(os.getpid(), start_time(os.getpid())), "bob", "chat-tuned", SLEEP)
    runner.schedule()
    assert state(runner, orphan) == state(runner, ours) == RUNNING
    ChatPool(runner, sys.executable)
    wait_until(lambda: state(runner, orphan) == STOPPED, 30, what="the orphan worker to stop")
    assert state(runner, ours) == RUNNING


def test_ended_chat_jobs_are_deleted_when_a_worker_starts(make_runner):
    runner = make_runner([])
    ended = runner.submit_chat(chat_spec(os.getpid(), start_time(os.getpid())), "bob", "chat-base", SLEEP)
    runner.stop(ended, "bob")                            # queued: stopped at once
    pool = ChatPool(runner, sys.executable)
    assert [j.id for j in runner.list(ADMIN, kind=CHAT)] == []
    assert not (runner.workdir / "jobs" / ended).exists()
    pool.stop_all()
