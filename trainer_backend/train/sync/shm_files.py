"""The shared-memory folder of a job: where it lives, who owns it, and removing it.

`/dev/shm/<job_id>/` (a temp dir where /dev/shm is missing) holds the control block and the
gradient buffers of one run. The launcher claims the folder before starting the ranks; the marker
file names the claiming process, so a folder whose owner is gone is known to be stale.
"""
from __future__ import annotations

import mmap
import os
import re
import shutil
from pathlib import Path

import torch

from ...contracts import sync_root

MARKER = ".owner-pid"


def job_folder(job_id: str) -> Path:
    if not re.fullmatch(r"[A-Za-z0-9._-]+", job_id):
        raise ValueError(f"job id '{job_id}' may only use letters, digits, '.', '_' and '-'")
    return sync_root() / job_id


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no procfs: trust kill()
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")  # a zombie is dead for our purpose


def owner_pid(folder: Path) -> int | None:
    try:
        return int((folder / MARKER).read_text().strip())
    except (OSError, ValueError):
        return None


def remove_stale(root: Path | None = None) -> list[Path]:
    """Remove the sync folders whose owner process is gone (a run that was killed)."""
    root = root or sync_root()
    removed = []
    if not root.is_dir():
        return removed
    for folder in root.iterdir():
        pid = owner_pid(folder) if folder.is_dir() else None
        if pid is not None and not pid_alive(pid):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def claim(job_id: str) -> Path:
    """Create a fresh, empty folder for `job_id`, owned by this process."""
    remove_stale()
    folder = job_folder(job_id)
    pid = owner_pid(folder)
    if pid is not None and pid != os.getpid():
        raise RuntimeError(f"job '{job_id}' is already running (process {pid})")
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, mode=0o700)
    (folder / MARKER).write_text(str(os.getpid()))
    return folder


def release(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)


class SharedFile:
    """A file mapped into memory, shared by all ranks; tensors are views into it."""

    def __init__(self, path: Path, nbytes: int):
        self.path = path
        self.nbytes = nbytes
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if os.fstat(fd).st_size < nbytes:
                os.ftruncate(fd, nbytes)  # every rank asks for the same size: racing is harmless
            flags = mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0)
            self.buffer = mmap.mmap(fd, nbytes, flags=flags)
        finally:
            os.close(fd)

    def tensor(self, dtype: torch.dtype, offset: int, numel: int) -> torch.Tensor:
        if numel == 0:
            return torch.empty(0, dtype=dtype)
        return torch.frombuffer(self.buffer, dtype=dtype, count=numel, offset=offset)

    def data_ptr(self) -> int:
        return self.tensor(torch.uint8, 0, 1).data_ptr()
