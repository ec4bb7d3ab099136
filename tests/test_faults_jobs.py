"""Faults around a job, with the fake train command: each ends in a state that says what happened.
A starting job that makes no progress fails (the watchdog), a slow step still checkpoints on
stop, a kill from outside gets an error event, shared memory is cleaned, damaged job files and a
damaged registry are contained or named, the scheduler survives any failing pass."""
from __future__ import annotations

import os
import signal
import sqlite3
import time

import pytest

from fake_worker import FAKE_COMMAND, fake_config, wait_until
from trainer_backend.contracts import sync_job_id, sync_root
from trainer_backend.jobs import ADMIN, JobError, JobRunner
from trainer_backend.jobs import registry as registry_module


def runner_for(workdir, **kwargs) -> JobRunner:
    kwargs = {"gpus": [], "min_free_gib": 0, "grace_s": 10.0, "train_command": FAKE_COMMAND, **kwargs}
    return JobRunner(workdir, **kwargs)


def error_events(runner: JobRunner, job_id: str) -> list[dict]:
    events, _ = runner.events(job_id, "ann")
    return [e for e in events if e["kind"] == "error"]


def test_a_starting_job_without_progress_fails_as_stalled_and_the_monitor_shows_its_stage(tmp_path):
    from studio.charts import absorb, new_series
    from studio.monitor_tab import progress_text

    runner = runner_for(tmp_path, stall_s=3.0)
    job_id = runner.submit(fake_config("hang_prepare=1"), "ann")
    wait_until(lambda: any(e.get("status") == "preparing" for e in runner.events(job_id, "ann")[0]), runner=runner)
    series = new_series(job_id)
    absorb(series, runner.events(job_id, "ann")[0])
    running = runner.get(job_id, "ann")
    assert running.state == "running"
    assert progress_text(running, series, "en") == (
        "**running** · preparing: rendering data (rendering and tokenizing 5000 rows)")
    assert progress_text(running, series, "vi") == "**đang chạy** · đang chuẩn bị: dựng dữ liệu (dựng và tách token 5000 dòng)"

    wait_until(lambda: runner.get(job_id, "ann").state == "failed", timeout_s=60, runner=runner)
    info = runner.get(job_id, "ann")
    assert info.exit_reason.startswith("stalled: no progress for 3 s while rendering data (no event, no CPU time")
    assert [(e["reason"], e["message"]) for e in error_events(runner, job_id)] == [("stalled", info.exit_reason)]
    # The error event carries the reason's key and arguments: the Monitor says it in Vietnamese.
    absorb(series, runner.events(job_id, "ann")[0])
    assert progress_text(info, series, "vi").split("\n\n")[-1].startswith(
        "Lý do: bị treo: không có tiến triển trong 3 giây khi đang dựng dữ liệu (không sự kiện")
    # So does the registry: the Jobs tab shows the reason in the user's language too.
    from studio.jobs_tab import job_row
    assert str(info.exit_notice) == info.exit_reason
    assert job_row(info, "vi")["reason"].startswith("bị treo: không có tiến triển trong 3 giây")


def test_stop_waits_for_a_slow_step_and_its_checkpoint_and_resume_says_from_where(tmp_path):
    runner = runner_for(tmp_path, grace_s=1.5)
    job_id = runner.submit(fake_config("step_s=3", max_steps=100), "ann")
    wait_until(lambda: runner.get(job_id, "ann").progress.step >= 1, runner=runner)
    runner.stop(job_id, "ann")
    wait_until(lambda: runner.get(job_id, "ann").state == "stopped", timeout_s=30)
    info = runner.get(job_id, "ann")
    step = info.progress.step
    assert info.exit_code == 10
    assert info.exit_reason == f"stopped on request; a resume continues from checkpoint step_{step}"
    from studio.common import ended_reason
    assert ended_reason(info, "vi") == f"đã dừng theo yêu cầu; tiếp tục sẽ chạy từ checkpoint step_{step}"
    assert (info.job_dir / "checkpoints" / f"step_{step}" / "state.json").is_file()
    assert runner.resume(job_id, "ann") == f"step_{step}"


def test_resume_of_a_job_without_checkpoint_says_it_starts_over(tmp_path, capsys):
    from trainer_backend.__main__ import main

    runner = runner_for(tmp_path)
    job_id = runner.submit(fake_config("crash_at=1"), "ann")
    wait_until(lambda: runner.get(job_id, "ann").state == "failed", runner=runner)
    runner.get(job_id, "ann").job_dir.joinpath("checkpoints", "step_3.tmp").mkdir(parents=True)
    assert main(["jobs", "--workdir", str(tmp_path), "stop", job_id]) == 2  # failed: nothing to stop
    capsys.readouterr()
    assert main(["jobs", "--workdir", str(tmp_path), "resume", job_id]) == 0
    # a half-written folder is not a checkpoint
    assert capsys.readouterr().out.strip().endswith("; no checkpoint was written: a resume starts from step 0")


def test_a_job_killed_from_outside_gets_an_error_event_and_its_shared_memory_is_removed(tmp_path):
    runner = runner_for(tmp_path)
    job_id = runner.submit(fake_config("step_s=0.1 shm=1", max_steps=10_000), "ann")
    wait_until(lambda: runner.get(job_id, "ann").progress.step >= 2, runner=runner)
    info = runner.get(job_id, "ann")
    folder = sync_root() / sync_job_id(info.job_dir)
    assert folder.is_dir()
    os.kill(info.pgid, signal.SIGKILL)
    wait_until(lambda: runner.get(job_id, "ann").state == "failed")
    info = runner.get(job_id, "ann")
    assert info.exit_reason == "killed by SIGKILL from outside the job (often the system running out of memory)"
    assert [(e["reason"], e["message"]) for e in error_events(runner, job_id)] == [("killed", info.exit_reason)]
    assert not folder.exists()


def test_studio_retries_out_of_memory_by_default_and_the_monitor_shows_each_retry(tmp_path):
    from studio.app_factory import make_context
    from studio.charts import absorb, new_series
    from studio.context import StudioSettings
    from studio.monitor_tab import progress_text

    ctx = make_context(StudioSettings(workdir=tmp_path / "studio", gpus=[]))
    assert ctx.runner.oom_retries == 2
    runner = runner_for(tmp_path / "w", oom_retries=ctx.runner.oom_retries)
    job_id = runner.submit(fake_config("oom_above=1", max_steps=3, micro_batch_size=4), "ann")
    wait_until(lambda: runner.get(job_id, "ann").state == "completed", runner=runner)
    series = new_series(job_id)
    absorb(series, runner.events(job_id, "ann")[0])
    text = progress_text(runner.get(job_id, "ann"), series, "en")
    assert text.split("\n\n")[1:] == [
        "Out-of-memory retry 1: micro_batch_size 4 -> 2, grad_accum 1 -> 2 (effective batch 4 per device unchanged)",
        "Out-of-memory retry 2: micro_batch_size 2 -> 1, grad_accum 2 -> 4 (effective batch 4 per device unchanged)"]
    assert progress_text(runner.get(job_id, "ann"), series, "vi").split("\n\n")[1].endswith(
        "micro_batch_size 4 -> 2, grad_accum 1 -> 2 (batch hiệu dụng 4 mỗi thiết bị không đổi)")


def test_invalid_utf8_in_one_jobs_events_hides_nothing_else(tmp_path):
    runner = runner_for(tmp_path)
    damaged = runner.submit(fake_config(max_steps=3), "ann")
    healthy = runner.submit(fake_config(max_steps=3), "bob")
    wait_until(lambda: all(runner.get(j, ADMIN).state == "completed" for j in (damaged, healthy)), runner=runner)
    events_path = runner.get(damaged, "ann").job_dir / "events.jsonl"
    lines = events_path.read_bytes().split(b"\n")
    events_path.write_bytes(b"\n".join(lines[:2] + [b'{"kind": "train", "step": 9, "loss": "\xff"}'] + lines[2:]))

    assert [j.state for j in runner.list(ADMIN)] == ["completed", "completed"]
    events, _ = runner.events(damaged, "ann")
    assert [e["step"] for e in events if e["kind"] == "train"] == [1, 2, 3]
    assert runner.get(damaged, "ann").progress.step == 3


def test_a_damaged_registry_row_hides_only_its_job(tmp_path):
    runner = runner_for(tmp_path)
    first = runner.submit(fake_config(), "ann")
    second = runner.submit(fake_config(), "ann")
    with sqlite3.connect(tmp_path / "jobs.db") as conn:
        conn.execute("UPDATE jobs SET gpus = '[0,' WHERE id = ?", (first,))
    assert [j.id for j in runner.list("ann")] == [second]


def test_a_damaged_registry_file_is_named_with_what_to_do(tmp_path):
    runner_for(tmp_path).submit(fake_config(), "ann")
    db = tmp_path / "jobs.db"
    for extra in ("-wal", "-shm"):
        (tmp_path / f"jobs.db{extra}").unlink(missing_ok=True)
    db.write_bytes(b"this is not a database" + db.read_bytes()[23:])
    with pytest.raises(JobError) as raised:
        runner_for(tmp_path)
    assert str(raised.value).startswith(f"job registry {db}: file is not a database; the file is damaged: "
                                        "stop the studio, move it aside")


def test_app_reports_a_damaged_registry_in_one_line(tmp_path):
    import subprocess
    import sys

    (tmp_path / "jobs.db").write_bytes(b"x" * 4096)
    proc = subprocess.run([sys.executable, "app.py", "--workdir", str(tmp_path), "--port", "0"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"job registry {tmp_path / 'jobs.db'}: file is not a database; the file is damaged: stop the studio, "
        "move it aside (job folders are kept) and restart; jobs already in the registry are then no longer listed"]


def test_registry_errors_become_one_message_and_a_failed_submit_leaves_no_folder(tmp_path, monkeypatch):
    runner = runner_for(tmp_path)
    full = sqlite3.OperationalError("database or disk is full")
    full.sqlite_errorcode = 13

    def insert(*_args, **_kwargs):
        raise full
    monkeypatch.setattr(registry_module, "insert", insert)
    with pytest.raises(JobError, match=r"jobs\.db: database or disk is full; the disk is full: free space"):
        runner.submit(fake_config(), "ann")
    assert list((tmp_path / "jobs").iterdir()) == []


def test_the_scheduler_loop_survives_any_failing_pass(tmp_path, monkeypatch):
    runner = runner_for(tmp_path)
    real, calls = runner.schedule, []

    def flaky():
        calls.append(1)
        if len(calls) == 1:
            raise ValueError("a bug in one pass")
        return real()
    monkeypatch.setattr(runner, "schedule", flaky)
    job_id = runner.submit(fake_config(max_steps=2), "ann")
    runner.start_background(interval_s=0.1)
    try:
        wait_until(lambda: runner.get(job_id, "ann").state == "completed")
    finally:
        runner.close()
    assert len(calls) > 1


def fill(disk) -> None:
    with open(disk / "filler", "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
        except OSError:
            pass


def test_a_full_disk_under_a_running_job_ends_in_a_state_that_says_so(small_disk):
    import psutil

    runner = runner_for(small_disk)
    job_id = runner.submit(fake_config("step_s=0.1", max_steps=100_000), "ann")
    wait_until(lambda: runner.get(job_id, "ann").progress.step >= 2, runner=runner)
    supervisor, trainer = runner.get(job_id, "ann").pids
    fill(small_disk)
    wait_until(lambda: not psutil.pid_exists(trainer) or psutil.Process(trainer).status() == psutil.STATUS_ZOMBIE)
    time.sleep(3.0)   # the supervisor cannot record the end yet: it keeps trying
    assert psutil.pid_exists(supervisor)
    (small_disk / "filler").unlink()
    wait_until(lambda: runner.get(job_id, "ann").state == "failed")
    reason = runner.get(job_id, "ann").exit_reason
    assert reason.startswith(f"the disk is full while training ({runner.get(job_id, 'ann').job_dir}): free space")
