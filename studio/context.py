"""What every tab gets: the settings, the per-process services, and who is asking."""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gradio as gr

from studio.i18n import LabelBook
from trainer_backend.jobs import JobError
from studio.uploads import UploadStore, sanitize_name

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
    labels: LabelBook = field(default_factory=LabelBook)


def user_of(request: gr.Request | None) -> str:
    """The authenticated name, or "local" when the studio runs without auth."""
    name = getattr(request, "username", None) if request is not None else None
    return sanitize_name(name) if name else LOCAL_USER
