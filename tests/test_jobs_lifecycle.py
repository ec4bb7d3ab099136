"""Job life cycle with the fake train command: stop (graceful and after the grace period), resume,
crash, out-of-memory retry, disk floor, restart of the runner, lost supervisors, deletion."""
from __future__ import annotations

import os
import signal
import time

import pytest
import yaml

from fake_worker import FAKE_COMMAND, fake_config, live_pids, wait_until
from trainer_backend.jobs import DiskSpaceError, JobRunner, JobStateError


def runner_for(workdir, **kwargs) -> JobRunner:
    kwargs = {"gpus": [], "min_free_gib": 0, "grace_s": 10.0, "train_command": FAKE_COMMAND, **kwargs}
    return JobRunner(workdir, **kwargs)


def assert_all_gone(pids: list[int], pgid: int) -> None:
    """The train group is gone by the time the final state is recorded; the supervisor, which
    records it, exits right after."""
    assert live_pids([], pgid) == []
    wait_until(lambda: not live_pids(pids), timeout_s=5)


def start_long_job(runner: JobRunner, description: str = "step_s=0.1", user: str = "ann") -> str:
    job_id = runner.submit(fake_config(description, max_steps=10_000), user)
    wait_until(lambda: runner.get(job_id, user).progress.step >= 2, runner=runner)
    return job_id


def group_of(runner: JobRunner, job_id: str) -> tuple[list[int], int]:
    info = runner.get(job_id, "ann")
    assert len(info.pids) == 2 and info.pgid == info.pids[1]
    return info.pids, info.pgid


def test_stop_checkpoints_kills_the_whole_group_and_resume_continues(tmp_path):
    runner = runner_for(tmp_path)
    job_id = start_long_job(runner, "step_s=0.1 child=1")
    pids, pgid = group_of(runner, job_id)
    assert len(live_pids([], pgid)) == 2  # the trainer and its helper that ignores SIGTERM

    runner.stop(job_id, "ann")
    assert runner.get(job_id, "ann").state == "stopping"
    began = time.monotonic()
    wait_until(lambda: runner.get(job_id, "ann").state == "stopped")
    assert time.monotonic() - began < 10.0
    info = runner.get(job_id, "ann")
    assert info.exit_code == 10 and info.pids == [] and "a resume continues from checkpoint step_" in info.exit_reason
    assert_all_gone(pids, pgid)
    stopped_at = info.progress.step
    assert (info.job_dir / "checkpoints" / f"step_{stopped_at}").is_dir()

    runner.resume(job_id, "ann")
    assert runner.get(job_id, "ann").state == "queued"
    # A short run this time: rewrite max_steps so the resumed run completes quickly.
    config = yaml.safe_load(info.config_path.read_text())
    config["train"]["max_steps"] = stopped_at + 3
    info.config_path.write_text(yaml.safe_dump(config))
    wait_until(lambda: runner.get(job_id, "ann").state == "completed", runner=runner)
    events, _ = runner.events(job_id, "ann")
    restart = [e for e in events if e.get("status") == "started"][-1]
    assert restart["step"] == stopped_at
    steps = [e["step"] for e in events if e["kind"] == "train"]
    assert steps == list(range(1, stopped_at + 4))


def test_stop_kills_the_group_after_the_grace_period(tmp_path):
    runner = runner_for(tmp_path, grace_s=1.0)
    job_id = start_long_job(runner, "step_s=0.1 ignore_term=1 child=1")
    pids, pgid = group_of(runner, job_id)
    runner.stop(job_id, "ann")
    began = time.monotonic()
    wait_until(lambda: runner.get(job_id, "ann").state == "stopped", timeout_s=10)
    assert 1.0 <= time.monotonic() - began < 8.0
    info = runner.get(job_id, "ann")
    assert info.exit_code == -signal.SIGKILL and "killed after the 1 s grace period" in info.exit_reason
    assert_all_gone(pids, pgid)


def test_stop_of_a_queued_job_never_starts_it(tmp_path):
    runner = runner_for(tmp_path)
    job_id = runner.submit(fake_config(), "ann")
    runner.stop(job_id, "ann")
    assert runner.schedule() == []
    info = runner.get(job_id, "ann")
    assert info.state == "stopped" and info.started is None
    with pytest.raises(JobStateError, match="only a queued or running job can be stopped"):
        runner.stop(job_id, "ann")


def test_crash_fails_with_reason_and_log_tail_and_leaves_no_process(tmp_path):
    runner = runner_for(tmp_path)
    job_id = runner.submit(fake_config("step_s=0.1 crash_at=4 child=1", max_steps=50), "ann")
    pids, pgid = [], None

    def running_with_group() -> bool:
        nonlocal pids, pgid
        info = runner.get(job_id, "ann")
        pids, pgid = info.pids or pids, info.pgid or pgid
        return info.state != "running" or info.progress.step >= 1

    wait_until(running_with_group, runner=runner, poll_s=0.02)
    assert pgid is not None
    wait_until(lambda: runner.get(job_id, "ann").state == "failed")
    info = runner.get(job_id, "ann")
    assert info.exit_reason == "RuntimeError: fake worker crashed at step 4"
    assert info.exit_code == 1
    tail = runner.log_tail(job_id, "ann", n=20)
    assert "train step 3" in tail and "Traceback" in tail and tail.rstrip().endswith("crashed at step 4")
    assert_all_gone(pids, pgid)


def test_oom_is_retried_with_half_the_micro_batch_and_twice_the_accumulation(tmp_path):
    runner = runner_for(tmp_path, oom_retries=2)
    job_id = runner.submit(fake_config("oom_above=1", max_steps=3, micro_batch_size=4, grad_accum=2), "ann")
    wait_until(lambda: runner.get(job_id, "ann").state == "completed", runner=runner)
    info = runner.get(job_id, "ann")
    assert info.retries == 2
    events, _ = runner.events(job_id, "ann")
    retries = [e["message"] for e in events if e.get("status") == "retry"]
    assert retries == [
        "out of memory: retry 1 with micro_batch_size 4 -> 2, grad_accum 2 -> 4 (effective batch 8 per device unchanged)",
        "out of memory: retry 2 with micro_batch_size 2 -> 1, grad_accum 4 -> 8 (effective batch 8 per device unchanged)",
    ]
    started = [e["message"] for e in events if e.get("status") == "started"]
    assert [m.split(" ", 2)[2] for m in started] == ["micro=4 accum=2", "micro=2 accum=4", "micro=1 accum=8"]


def test_oom_without_retries_left_fails_naming_the_levers(tmp_path):
    runner = runner_for(tmp_path, oom_retries=1)
    job_id = runner.submit(fake_config("oom_above=0", max_steps=3, micro_batch_size=2), "ann")
    wait_until(lambda: runner.get(job_id, "ann").state == "failed", runner=runner)
    info = runner.get(job_id, "ann")
    assert info.exit_code == 3 and info.retries == 1
    assert info.exit_reason.startswith("out of GPU memory at step 0 (train.micro_batch_size 1,")
    for lever in ("train.micro_batch_size", "train.grad_accum", "train.gradient_checkpointing", "template.max_seq_len"):
        assert lever in info.exit_reason


def test_disk_floor_refuses_submit_and_start(tmp_path):
    greedy = runner_for(tmp_path, min_free_gib=1e9)
    with pytest.raises(DiskSpaceError) as err:
        greedy.submit(fake_config(), "ann")
    message = str(err.value)
    assert str(tmp_path) in message and "GiB free" in message and "1000000000.0 GiB needed" in message
    job_id = runner_for(tmp_path).submit(fake_config(), "ann")
    assert greedy.schedule() == []
    info = greedy.get(job_id, "ann")
    assert info.state == "failed" and info.exit_reason == message


def test_a_new_runner_sees_streams_and_stops_a_running_job(tmp_path):
    first = runner_for(tmp_path)
    first.start_background(interval_s=0.1)
    job_id = first.submit(fake_config("step_s=0.1", max_steps=10_000), "ann")
    wait_until(lambda: first.get(job_id, "ann").progress.step >= 1)
    first.close()
    del first

    second = runner_for(tmp_path)
    assert second.get(job_id, "ann").state == "running"
    events, next_line = second.events(job_id, "ann")
    assert events[0]["status"] == "started" and next_line == len(events)
    wait_until(lambda: second.events(job_id, "ann", next_line)[0])
    more, after = second.events(job_id, "ann", next_line)
    assert after == next_line + len(more) and more[0]["step"] == events[-1]["step"] + 1
    second.stop(job_id, "ann")
    wait_until(lambda: second.get(job_id, "ann").state == "stopped")


def test_a_job_whose_supervisor_vanished_is_lost_and_its_trainer_killed(tmp_path):
    runner = runner_for(tmp_path)
    job_id = start_long_job(runner)
    (supervisor, trainer), pgid = group_of(runner, job_id)
    os.kill(supervisor, signal.SIGKILL)
    wait_until(lambda: not live_pids([supervisor]), timeout_s=5)

    info = runner_for(tmp_path).get(job_id, "ann")  # a new runner reconciles on start
    assert info.state == "failed" and info.exit_reason.startswith("lost")
    assert live_pids([trainer], pgid) == []


def test_delete_refuses_a_running_job_and_removes_a_finished_one(tmp_path):
    runner = runner_for(tmp_path)
    job_id = start_long_job(runner)
    with pytest.raises(JobStateError, match="stop it before deleting it"):
        runner.delete(job_id, "ann")
    runner.stop(job_id, "ann")
    wait_until(lambda: runner.get(job_id, "ann").state == "stopped")
    job_dir = runner.get(job_id, "ann").job_dir
    runner.delete(job_id, "ann")
    assert not job_dir.exists() and runner.list("ann") == []
