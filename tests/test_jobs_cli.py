"""`python -m trainer_backend jobs`: list, stop, resume, logs, and one-line errors."""
from __future__ import annotations

from fake_worker import FAKE_COMMAND, fake_config, wait_until
from trainer_backend.__main__ import main
from trainer_backend.jobs import JobRunner


def cli(capsys, workdir, *args: str) -> tuple[int, str, str]:
    code = main(["jobs", "--workdir", str(workdir), *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_list_stop_resume_and_logs(tmp_path, capsys):
    runner = JobRunner(tmp_path, gpus=[], min_free_gib=0, train_command=FAKE_COMMAND)
    anns = runner.submit(fake_config("step_s=0.1", max_steps=10_000), "ann")
    bobs = runner.submit(fake_config(), "bob")
    wait_until(lambda: runner.get(anns, "ann").progress.step >= 1, runner=runner)

    code, out, _ = cli(capsys, tmp_path, "list")
    assert code == 0
    assert [line.split()[:3] for line in out.splitlines()[1:]] == [[anns, "ann", "running"], [bobs, "bob", "queued"]]
    code, out, _ = cli(capsys, tmp_path, "--user", "bob", "list")
    assert anns not in out and bobs in out

    assert cli(capsys, tmp_path, "stop", anns)[:2] == (0, f"{anns}: stopping\n")
    wait_until(lambda: runner.get(anns, "ann").state == "stopped")
    code, out, _ = cli(capsys, tmp_path, "logs", anns, "-n", "2")
    assert code == 0 and out.splitlines()[-1].startswith("status step") and "stopped" in out

    runner.stop(bobs, "bob")  # frees the CPU slot, so the resumed job can start right away
    stopped_at = runner.get(anns, "ann").progress.step
    code, out, _ = cli(capsys, tmp_path, "resume", anns)
    assert (code, out) == (0, f"{anns}: running; a resume continues from checkpoint step_{stopped_at}\n")
    runner.stop(anns, "ann")
    wait_until(lambda: runner.get(anns, "ann").state == "stopped")


def test_errors_are_one_line_messages(tmp_path, capsys):
    runner = JobRunner(tmp_path, gpus=[], min_free_gib=0, train_command=FAKE_COMMAND)
    job_id = runner.submit(fake_config(), "ann")
    assert cli(capsys, tmp_path, "logs", "nope") == (2, "", "'nope' is not a job id\n")
    assert cli(capsys, tmp_path, "--user", "bob", "stop", job_id) == (2, "", f"you have no job {job_id}\n")
    code, _, err = cli(capsys, tmp_path, "resume", job_id)
    assert code == 2 and err == f"job {job_id} is queued: only a stopped or failed job can be resumed\n"
    assert cli(capsys, tmp_path / "missing", "list") == (2, "", f"workdir {tmp_path / 'missing'} does not exist\n")
