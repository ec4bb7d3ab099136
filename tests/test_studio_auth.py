"""Hosting: password file, refusal without auth on a public host, login required, per-user jobs."""
from __future__ import annotations

import subprocess
import sys
import urllib.error
import urllib.request

import pytest
import yaml
from gradio_client import Client

from studio.auth import AuthFileError, LoginGuard, UsersFile, add_user, hash_password, load_users, verify_password
from studio.uploads import UploadError, UploadStore, sanitize_name
from studio_server import ROOT, running_studio
from test_studio_api import SAMPLE, launch_args
from trainer_backend.config import RunConfig


def test_password_hashes_are_salted_and_verified(tmp_path):
    assert hash_password("pw") != hash_password("pw")
    users = tmp_path / "users.yaml"
    add_user(users, "alice", "s3cret-garden")
    stored = load_users(users)["alice"].password_hash
    assert "s3cret-garden" not in users.read_text()
    assert verify_password("s3cret-garden", stored) and not verify_password("wrong", stored)


def test_add_user_command_reads_the_password_from_stdin_and_refuses_weak_ones(tmp_path):
    users = tmp_path / "users.yaml"
    add = lambda password: subprocess.run(  # noqa: E731
        [sys.executable, "app.py", "add-user", str(users), "bob", "--password-stdin"],
        input=password + "\n", cwd=ROOT, capture_output=True, text=True, timeout=60)
    for weak, why in [("x", "at least 10 characters"), ("aaaaaaaaaaaa", "at least 5 different characters"),
                      ("bob-is-the-best", "must not contain the user name")]:
        out = add(weak)
        assert out.returncode == 2 and why in out.stderr
    assert not users.exists()
    out = add("hunter2-hunter2")
    assert out.returncode == 0, out.stderr
    assert verify_password("hunter2-hunter2", load_users(users)["bob"].password_hash)


def test_the_users_file_grants_remote_code_and_quotas_and_keeps_them_on_password_change(tmp_path):
    users = tmp_path / "users.yaml"
    users.write_text("users:\n  carol:\n    password: " + hash_password("x") + "\n    trust_remote_code: true\n"
                     "    quota_gib: 5\n")
    add_user(users, "carol", "new-password-9")
    carol = load_users(users)["carol"]
    assert (carol.trust_remote_code, carol.quota_gib) == (True, 5.0)
    assert verify_password("new-password-9", carol.password_hash)
    users.write_text("users:\n  carol: {password: x, quota_gib: -1}\n")
    with pytest.raises(AuthFileError, match="users.carol.quota_gib must be a positive number"):
        load_users(users)


def test_login_guard_locks_a_name_after_failures_and_runs_scrypt_for_unknown_names(tmp_path, monkeypatch):
    users = tmp_path / "users.yaml"
    add_user(users, "alice", "correct-horse")
    now = [1000.0]
    guard = LoginGuard(UsersFile(users, clock=lambda: now[0]), max_failures=3, lockout_s=60, clock=lambda: now[0])
    import hashlib
    calls = []
    real = hashlib.scrypt
    monkeypatch.setattr(hashlib, "scrypt", lambda *a, **k: calls.append(1) or real(*a, **k))
    assert not guard.check("nobody", "x") and len(calls) == 1          # the same work as a known name
    assert guard.check("alice", "correct-horse")
    for _ in range(3):
        assert not guard.check("alice", "wrong")
    assert not guard.check("alice", "correct-horse")                    # locked, right password or not
    assert len(calls) == 6
    now[0] += 61
    assert guard.check("alice", "correct-horse")


def test_public_host_without_auth_is_refused(tmp_path):
    out = subprocess.run([sys.executable, "app.py", "--host", "0.0.0.0", "--workdir", str(tmp_path)],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert "without --auth users.yaml" in out.stderr and "add-user" in out.stderr


def test_upload_names_are_sanitized_and_size_limited(tmp_path):
    assert sanitize_name("../../etc/passwd") == "passwd"
    assert sanitize_name("..\\evil name;rm -rf.jsonl") == "evil_name_rm_-rf.jsonl"
    assert sanitize_name("...") == "upload"
    store = UploadStore(tmp_path, max_bytes=100)
    big = tmp_path / "big.jsonl"
    big.write_text("x" * 101)
    with pytest.raises(UploadError, match="over the 0 MB upload limit|over the"):
        store.save("alice", big, "big.jsonl")
    small = tmp_path / "small.jsonl"
    small.write_text("{}\n")
    saved = store.save("alice", small, "../../small.jsonl")
    assert saved == tmp_path / "users" / "alice" / "uploads" / "small.jsonl"


def test_login_required_and_users_see_only_their_jobs(tmp_path):
    users = tmp_path / "users.yaml"
    add_user(users, "alice", "pw-a-long-enough")
    add_user(users, "bob", "pw-b-long-enough")
    with running_studio(tmp_path / "work", "--auth", str(users)) as url:
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(url + "config", timeout=10)
        assert refused.value.code == 401
        with pytest.raises(Exception):
            Client(url, verbose=False)
        alice = Client(url, auth=("alice", "pw-a-long-enough"), verbose=False)
        bob = Client(url, auth=("bob", "pw-b-long-enough"), verbose=False)
        # A queued job is enough to check ownership; it is stopped before it trains.
        cfg = RunConfig().with_overrides({"name": "alices-run", "data.path": "samples/demo_alpaca.jsonl"})
        status, _yaml, _file, job_id = alice.predict(*launch_args(cfg), api_name="/launch")
        assert job_id, status
        assert job_id in alice.predict(job_id, "en", api_name="/stop")
        table, _ = alice.predict(None, "en", api_name="/jobs")
        assert [r[0] for r in table["data"]] == [job_id]
        table, _ = bob.predict(None, "en", api_name="/jobs")
        assert table["data"] == [] or table["data"] == [[None] * len(table["headers"])]
        summary, *_ = bob.predict(job_id, "en", api_name="/monitor")
        assert summary.startswith("✖") and job_id in summary
        assert bob.predict(job_id, "en", api_name="/stop").startswith("✖")
        note, plot, _diff = bob.predict([job_id], "en", api_name="/compare")
        assert note == f"✖ you have no job {job_id}" and plot is None
        note, plot, _diff = alice.predict([job_id], "en", api_name="/compare")
        assert note == "" and plot is not None
        # On a shared server a job reads only the user's uploads or the bundled samples: the form
        # has no data path at all, a run's data comes from the user's own Data tab or the preset.
        other = cfg.with_overrides({"data.path": str(tmp_path / "work" / "users" / "alice" / "uploads" / "x.jsonl")})
        status, yaml_text, _file, bobs_job = bob.predict(*launch_args(other), api_name="/launch")
        assert bobs_job, status
        assert yaml.safe_load(yaml_text)["data"]["path"] == str(SAMPLE)
        bob.predict(bobs_job, "en", api_name="/stop")
