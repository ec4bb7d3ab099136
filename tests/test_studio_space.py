"""The user's space: one confinement rule per kind of path, the same refusal whether a path exists
or not, messages that name files as the user knows them, and the disk room checks."""
from __future__ import annotations

import shutil
import time
from collections import namedtuple
from pathlib import Path

import pytest

from studio.auth import UsersFile, add_user, hash_password
from studio.common import DataSource
from studio.context import StudioContext, StudioSettings
from studio.data_tab import inspect
from studio.i18n import t
from studio.quota import NoRoom, check_room
from studio.space import BUNDLED_MODEL_DIRS, PathKind, PathRefused, user_space
from studio.uploads import UploadStore
from trainer_backend.child_env import PROJECT_ROOT
from trainer_backend.config import RunConfig
from trainer_backend.jobs import COMPLETED, JobRunner, registry

DATA, MODEL = PathKind.DATA, PathKind.MODEL


def finished_job(work: Path, owner: str, job_id: str) -> Path:
    output = work / "jobs" / job_id / "output"
    output.mkdir(parents=True)
    with registry.Registry(work / "jobs.db").write() as conn:
        registry.insert(conn, id=job_id, owner=owner, name="run", state=COMPLETED, gpus=[], command=["true"],
                        cwd=".", grace_s=1.0, max_retries=0, created_at=time.time())
    return output


@pytest.fixture()
def hosted(tmp_path):
    work = tmp_path / "work"
    users = tmp_path / "users.yaml"
    add_user(users, "alice", "garden-gnome-42")
    users.write_text(users.read_text() + f"  bob:\n    password: {hash_password('x')}\n    quota_gib: 0.5\n")
    admin_models = tmp_path / "lab-models"
    (admin_models / "llama").mkdir(parents=True)
    for user in ("alice", "bob"):
        (work / "users" / user / "uploads").mkdir(parents=True)
        (work / "users" / user / "uploads" / "d.jsonl").write_text("{}\n")
    runner = JobRunner(work, gpus=[], min_free_gib=0)
    ctx = StudioContext(StudioSettings(workdir=work, auth_file=users, model_dirs=(admin_models,), quota_gib=1.0),
                        runner, UploadStore(work, 2**20), chats=None, users=UsersFile(users))
    yield ctx, work, admin_models
    runner.close()


def test_one_rule_per_kind_of_path_and_the_same_refusal_for_missing_paths(hosted):
    ctx, work, admin_models = hosted
    alice_out = finished_job(work, "alice", "20250101-000000-aaaaaa")
    bob_out = finished_job(work, "bob", "20250101-000000-bbbbbb")
    mine, bobs = work / "users/alice/uploads/d.jsonl", work / "users/bob/uploads/d.jsonl"
    (work / "users/alice/uploads/link.jsonl").symlink_to(bobs)
    space = user_space(ctx, "alice")
    allowed = [(DATA, mine), (DATA, PROJECT_ROOT / "samples/demo_alpaca.jsonl"), (MODEL, alice_out),
               (MODEL, admin_models / "llama"), (MODEL, BUNDLED_MODEL_DIRS[0] / "SmolLM2-135M-Instruct")]
    for kind, path in allowed:
        assert space.confine("f", str(path), kind) == str(path.resolve())
    assert space.confine("f", "Qwen/Qwen3-8B", MODEL) == "Qwen/Qwen3-8B"           # a hub id
    refused = [(DATA, str(bobs)), (DATA, str(work / "users/alice/uploads/link.jsonl")), (DATA, "/etc/passwd"),
               (DATA, "/etc/no-such-file"), (DATA, str(work / "users/alice/uploads/../../bob/uploads/d.jsonl")),
               (DATA, str(alice_out)), (MODEL, str(bob_out)), (MODEL, str(work / "users/alice/uploads")),
               (MODEL, "/etc"), (MODEL, "/no/such/folder"), (MODEL, "Qwen/Qwen3-8B/../../etc")]
    for kind, value in refused:
        with pytest.raises(PathRefused) as err:
            space.confine("f", value, kind)
        assert str(err.value) == f"'f': '{value}' is outside your space ({kind.value})"
    local = StudioContext(StudioSettings(workdir=work), ctx.runner, ctx.uploads, chats=None)
    assert user_space(local, "local").confine("f", str(bobs), DATA) == str(bobs)    # one trusted user


def test_every_path_key_of_a_run_goes_through_the_one_rule(hosted):
    ctx, work, _ = hosted
    bob_out = finished_job(work, "bob", "20250101-000000-bbbbbb")
    bobs = str(work / "users/bob/uploads/d.jsonl")
    space = user_space(ctx, "alice")
    run = RunConfig().with_overrides({"data.path": str(work / "users/alice/uploads/d.jsonl")})
    assert space.confine_config(run).data.path == str((work / "users/alice/uploads/d.jsonl").resolve())
    for key, value, kind in [("model.name_or_path", str(bob_out), MODEL), ("model.offline_tokenizer", str(bob_out), MODEL),
                             ("data.path", bobs, DATA), ("data.eval_path", bobs, DATA)]:
        with pytest.raises(PathRefused) as err:
            space.confine_config(run.with_overrides({key: value}))
        assert (err.value.field, err.value.value, err.value.kind) == (key, value, kind)


def test_messages_name_files_relative_to_the_users_space(hosted):
    ctx, work, _ = hosted
    space = user_space(ctx, "alice")
    uploads = work / "users" / "alice" / "uploads"
    status = inspect(DataSource(str(uploads / "gone.jsonl"), "gone.jsonl"), "auto", {}, True, "en", space).status
    assert status == "✖ Cannot use **gone.jsonl**: no such file or folder"
    # pyarrow's own error names the file it could not open: the user sees it under uploads/
    (uploads / "broken.parquet").write_bytes(b"not parquet")
    status = inspect(DataSource(str(uploads / "broken.parquet"), "broken.parquet"), "auto", {}, True, "en", space).status
    assert status.startswith("✖ Cannot use **broken.parquet**: not a readable Parquet file (")
    assert "'uploads/broken.parquet'" in status and str(work) not in status
    assert space.shown(f"{PROJECT_ROOT}/samples/x.jsonl and {work}/jobs/1/train.log") == \
        "samples/x.jsonl and jobs/1/train.log"


def test_uploads_and_launches_stop_at_the_quota_and_the_disk_floor(hosted, monkeypatch):
    ctx, work, _ = hosted
    check_room(ctx, "alice", 10 * 2**20)                                # 10 MiB of a 1 GiB default quota
    with pytest.raises(NoRoom) as err:
        check_room(ctx, "bob", 2**30 // 2)                              # bob's own quota: 0.5 GiB
    assert err.value.key == "room.quota"
    assert t("en", err.value.key, **err.value.params).startswith(
        "✖ Not enough room in your space: 0.00 GiB used of your 0.50 GiB quota, 0.50 GiB more needed.")
    Usage = namedtuple("Usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda _p: Usage(100 * 2**30, 99 * 2**30, 2**30))
    with pytest.raises(NoRoom) as err:
        check_room(ctx, "alice", 0)                                     # 1 GiB free, 2 GiB kept free
    assert t("en", err.value.key, **err.value.params) == (
        "✖ The server's disk is nearly full (1.00 GiB free, 2.0 GiB is kept free): try again later or tell the admin.")
