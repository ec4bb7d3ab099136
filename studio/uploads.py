"""Per-user upload storage inside the workdir: `<workdir>/users/<user>/uploads/<sanitized name>`.

Gradio first writes an upload to its own cache (which the studio points inside the workdir too); the
ledger remembers who sent each cached file, and this module copies it to the user's folder under a
safe name, enforcing the size limit, then removes the cached copy.
"""
from __future__ import annotations

import re
import shutil
import threading
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


class UploadLedger:
    """Who sent each file now in gradio's upload cache. A cached upload is served to, and can be
    used by, the user who sent it only (guard.py records them; the Data tab consumes them)."""

    def __init__(self) -> None:
        self._owners: dict[Path, str] = {}
        self._lock = threading.Lock()

    def record(self, user: str, paths: list[str]) -> None:
        with self._lock:
            self._owners.update({Path(p).resolve(): user for p in paths})

    def owner(self, path: str | Path) -> str | None:
        with self._lock:
            return self._owners.get(Path(path).resolve())

    def pending_bytes(self, user: str) -> int:
        with self._lock:
            mine = [p for p, u in self._owners.items() if u == user]
        return sum(p.stat().st_size for p in mine if p.is_file())

    def discard(self, path: str | Path) -> None:
        """Forget a cached upload and delete it (with its folder, named by the content hash)."""
        real = Path(path).resolve()
        with self._lock:
            self._owners.pop(real, None)
        real.unlink(missing_ok=True)
        try:
            real.parent.rmdir()
        except OSError:
            pass   # another file shares the folder
