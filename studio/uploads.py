"""Per-user upload storage inside the workdir: `<workdir>/users/<user>/uploads/<sanitized name>`.

Gradio first writes an upload to its own cache (which the studio points inside the workdir too); this
module copies it to the user's folder under a safe name, enforcing the size limit.
"""
from __future__ import annotations

import re
import shutil
from pathlib import Path

ALLOWED_SUFFIXES = (".json", ".jsonl", ".csv", ".parquet")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class UploadError(ValueError):
    """An upload the studio refuses; the message names the file and what to do."""


def sanitize_name(name: str) -> str:
    """Keep only the base name, in a conservative alphabet; never empty, never hidden."""
    base = Path(name.replace("\\", "/")).name
    clean = _UNSAFE.sub("_", base).strip("._") or "upload"
    return clean[:120]


def user_dir(workdir: Path, user: str, kind: str) -> Path:
    return workdir / "users" / sanitize_name(user) / kind


class UploadStore:
    def __init__(self, workdir: Path, max_bytes: int):
        self.workdir = workdir
        self.max_bytes = max_bytes

    def folder(self, user: str) -> Path:
        return user_dir(self.workdir, user, "uploads")

    def save(self, user: str, src: Path, original_name: str) -> Path:
        name = sanitize_name(original_name)
        if not name.lower().endswith(ALLOWED_SUFFIXES):
            raise UploadError(f"{name}: unsupported file type; upload {', '.join(ALLOWED_SUFFIXES)}")
        size = src.stat().st_size
        if size > self.max_bytes:
            raise UploadError(f"{name}: {size / 2**20:.1f} MB is over the {self.max_bytes / 2**20:.0f} MB "
                              "upload limit; upload a smaller file or ask the admin to raise --max-upload-mb")
        dest = self.folder(user) / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dest)
        return dest

    def list(self, user: str) -> list[Path]:
        folder = self.folder(user)
        return sorted(p for p in folder.iterdir() if p.is_file()) if folder.exists() else []

    def owns(self, user: str, path: Path) -> bool:
        return path.resolve().is_relative_to(self.folder(user).resolve())
