"""What every tab gets: the settings, the per-process services, and who is asking."""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gradio as gr

from studio.i18n import LabelBook
from trainer_backend.jobs import JobError
from studio.auth import UsersFile
from studio.uploads import UploadLedger, UploadStore, sanitize_name

LOCAL_USER = "local"
# What the runner raises for a user's mistake (bad state, unknown id, another user's job).
JOB_ERRORS = (JobError, PermissionError)


@dataclass(frozen=True)
class StudioSettings:
    workdir: Path
    max_upload_mb: int = 200
    gpus: list[int] | None = None          # restrict the studio to these GPU indices
    auth_file: Path | None = None
    python: str = sys.executable           # interpreter of the preview, export and chat subprocesses
    model_dirs: tuple[Path, ...] = ()      # admin-listed model folders users may train and chat from
    allow_remote_code: bool = False        # every user may run modeling code shipped with a model
    quota_gib: float = 50.0                # disk space per user (uploads, jobs, exports) with --auth
    min_free_gib: float = 2.0              # uploads and jobs stop short of this much free disk
    oom_retries: int = 2                   # automatic retries of a job that ran out of GPU memory
    stall_timeout_s: float = 600.0         # a starting job without any progress this long fails (0 = never)
    warm_workers: bool = False             # keep a pre-imported train process ready on each free GPU

    @property
    def max_upload_bytes(self) -> int:
        return self.max_upload_mb * 2**20


@dataclass
class StudioContext:
    """Built once per studio process; every per-user fact lives in the runner's registry or in
    the user's workdir folder, never here."""
    settings: StudioSettings
    runner: Any                             # trainer_backend.jobs.JobRunner
    uploads: UploadStore
    chats: Any                              # trainer_backend.serve.client.ChatPool
    users: UsersFile | None = None          # None: a local studio without --auth
    ledger: UploadLedger = field(default_factory=UploadLedger)
    labels: LabelBook = field(default_factory=LabelBook)

    def may_run_remote_code(self, user: str) -> bool:
        """An admin decision: --allow-remote-code for everyone, or trust_remote_code in the users file."""
        entry = self.users.get(user) if self.users else None
        return self.settings.allow_remote_code or bool(entry and entry.trust_remote_code)

    def quota_bytes(self, user: str) -> int | None:
        """None on a local studio: its one user owns the disk."""
        if self.users is None:
            return None
        entry = self.users.get(user)
        gib = entry.quota_gib if entry and entry.quota_gib else self.settings.quota_gib
        return int(gib * 2**30)


def user_of(request: gr.Request | None) -> str:
    """The authenticated name, or "local" when the studio runs without auth."""
    name = getattr(request, "username", None) if request is not None else None
    return sanitize_name(name) if name else LOCAL_USER
