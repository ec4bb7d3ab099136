"""The disk floor: checkpoints and exports fill disks, and a full disk mid-save corrupts a run."""
from __future__ import annotations

import shutil
from pathlib import Path

from .errors import DiskSpaceError

GIB = 1024 ** 3
# Below this much free space nothing can be recorded reliably: a failure then is taken for a full disk.
LOW_DISK_BYTES = 64 * 2 ** 20


def disk_is_full(path: Path) -> bool:
    try:
        return shutil.disk_usage(path).free < LOW_DISK_BYTES
    except OSError:
        return False


def check_free_space(workdir: Path, min_free_gib: float) -> None:
    free_gib = shutil.disk_usage(workdir).free / GIB
    if free_gib < min_free_gib:
        raise DiskSpaceError(
            f"not enough disk space in {workdir}: {free_gib:.1f} GiB free, {min_free_gib:.1f} GiB needed "
            f"to start a job; delete old jobs or checkpoints, or lower the floor (min_free_gib)")
