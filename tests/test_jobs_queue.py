"""The job queue: FIFO with reservation backfilling, disjoint GPUs together, CPU slots, and no
double start when several runners schedule the same workdir."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from fake_worker import FAKE_COMMAND, fake_config, wait_until
from trainer_backend.jobs import GpuRequestError, JobRunner
from trainer_backend.child_env import python_env
from trainer_backend.jobs.queue import Pending, pick_startable


def test_pick_startable_backfills_only_on_unreserved_gpus():
    queue = [Pending("a", (0, 1)), Pending("b", (1,)), Pending("c", (2,)), Pending("d", ())]
    # GPU 0 busy: a waits and reserves 0 and 1, so b may not jump ahead of it; c and d may.
    assert pick_startable(queue, busy_gpus={0}, running_cpu_jobs=0, cpu_slots=1) == ["c", "d"]
    assert pick_startable(queue, busy_gpus=set(), running_cpu_jobs=0, cpu_slots=1) == ["a", "c", "d"]


def test_pick_startable_limits_cpu_jobs_in_order():
    queue = [Pending("a", ()), Pending("b", ()), Pending("c", ())]
    assert pick_startable(queue, set(), running_cpu_jobs=0, cpu_slots=2) == ["a", "b"]
    assert pick_startable(queue, set(), running_cpu_jobs=1, cpu_slots=1) == []


def test_gpu_jobs_run_on_disjoint_gpus_together_then_in_fifo_order(tmp_path):
    runner = JobRunner(tmp_path, gpus=[0, 1], min_free_gib=0, train_command=FAKE_COMMAND)
    config = fake_config("step_s=0.15", max_steps=8)
    ids = [runner.submit(config, "ann", gpus=g) for g in ([0], [1], [0])]
    seen: dict[str, list[str]] = {i: [] for i in ids}

    def observe() -> bool:
        for info in runner.list("ann"):
            if not seen[info.id] or seen[info.id][-1] != info.state:
                seen[info.id].append(info.state)
        return all(seen[i][-1] == "completed" for i in ids)

    observe()
    assert runner.schedule() == ids[:2]
    wait_until(observe, timeout_s=40, runner=runner, poll_s=0.05)

    assert all(seen[i] == ["queued", "running", "completed"] for i in ids), seen
    one, two, three = (runner.get(i, "ann") for i in ids)
    assert one.started < two.ended and two.started < one.ended      # 1 and 2 overlapped
    assert three.started >= one.ended                               # 3 waited for GPU 0
    started = [runner.events(i, "ann")[0][0]["message"] for i in ids]
    assert started[1].startswith("CUDA_VISIBLE_DEVICES=1 devices=[0]")  # physical GPU 1, seen as 0
    assert started[2].startswith("CUDA_VISIBLE_DEVICES=0 devices=[0]")


def test_cpu_jobs_take_one_slot_each(tmp_path):
    runner = JobRunner(tmp_path, gpus=[], cpu_slots=1, min_free_gib=0, train_command=FAKE_COMMAND)
    ids = [runner.submit(fake_config("step_s=0.05", max_steps=3), "ann") for _ in range(2)]
    assert runner.schedule() == ids[:1]
    assert runner.schedule() == []
    assert runner.get(ids[1], "ann").state == "queued"
    wait_until(lambda: runner.get(ids[1], "ann").state == "completed", runner=runner)
    assert runner.get(ids[1], "ann").started >= runner.get(ids[0], "ann").ended
    assert runner.events(ids[0], "ann")[0][0]["message"].startswith("CUDA_VISIBLE_DEVICES= devices=['cpu']")


def test_unknown_gpu_is_refused_at_submit(tmp_path):
    runner = JobRunner(tmp_path, gpus=[0, 1], min_free_gib=0, train_command=FAKE_COMMAND)
    with pytest.raises(GpuRequestError, match=r"GPU 5 is not available here \(GPUs: 0, 1\)"):
        runner.submit(fake_config(), "ann", gpus=[5])


SCHEDULE_LOOP = """
import sys, time
from trainer_backend.jobs import ADMIN, JobRunner
runner = JobRunner(sys.argv[1], gpus=[], cpu_slots=3, min_free_gib=0)
deadline = time.monotonic() + float(sys.argv[2])
while time.monotonic() < deadline and any(j.state != "completed" for j in runner.list(ADMIN)):
    runner.schedule()
"""


def test_two_runners_on_one_workdir_never_start_a_job_twice(tmp_path):
    runner = JobRunner(tmp_path, gpus=[], cpu_slots=3, min_free_gib=0, train_command=FAKE_COMMAND)
    ids = [runner.submit(fake_config("step_s=0.02", max_steps=2), "ann") for _ in range(6)]
    loops = [subprocess.Popen([sys.executable, "-c", SCHEDULE_LOOP, str(tmp_path), "60"], env=python_env())
             for _ in range(2)]
    try:
        wait_until(lambda: all(j.state == "completed" for j in runner.list("ann")), timeout_s=60)
    finally:
        for loop in loops:
            loop.wait(timeout=30)
    for job_id in ids:
        job_dir = Path(runner.get(job_id, "ann").job_dir)
        starts = [e for e in runner.events(job_id, "ann")[0] if e.get("status") == "started"]
        assert len(starts) == 1, job_id
        console = (job_dir / "console.log").read_text().splitlines()
        assert sum(line.startswith("--- ") for line in console) == 1, job_id
