"""Ownership: a user reaches only their own jobs; ids never become paths unchecked."""
from __future__ import annotations

import pytest

from fake_worker import FAKE_COMMAND, fake_config
from trainer_backend.jobs import ADMIN, JobNotFound, JobRunner


@pytest.fixture()
def runner(tmp_path) -> JobRunner:
    return JobRunner(tmp_path, gpus=[], min_free_gib=0, train_command=FAKE_COMMAND)


def test_a_user_cannot_read_stop_resume_or_delete_another_users_job(runner):
    bobs = runner.submit(fake_config(), "bob")
    anns = runner.submit(fake_config(), "ann")
    attempts = [lambda: runner.get(bobs, "ann"), lambda: runner.events(bobs, "ann"),
                lambda: runner.log_tail(bobs, "ann"), lambda: runner.stop(bobs, "ann"),
                lambda: runner.resume(bobs, "ann"), lambda: runner.delete(bobs, "ann")]
    for attempt in attempts:
        with pytest.raises(PermissionError, match=f"you have no job {bobs}"):
            attempt()
    info = runner.get(bobs, "bob")
    assert info.state == "queued" and info.job_dir.is_dir()  # nothing happened to it
    assert [j.id for j in runner.list("ann")] == [anns]
    assert [j.id for j in runner.list("bob")] == [bobs]
    assert [j.id for j in runner.list(ADMIN)] == [bobs, anns]


@pytest.mark.parametrize("bad_id", ["../jobs.db", "..", "20250101-000000-zzzzzz", "", "a/b"])
def test_ids_that_are_not_job_ids_are_not_found(runner, bad_id):
    with pytest.raises(JobNotFound):
        runner.get(bad_id, "ann")
    with pytest.raises(JobNotFound):
        runner.delete(bad_id, "ann")


def test_an_unknown_job_is_not_found(runner):
    with pytest.raises(JobNotFound, match="you have no job 20250101-000000-abcdef"):
        runner.events("20250101-000000-abcdef", "ann")
