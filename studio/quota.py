"""Disk room: the per-user quota and the workdir's free-space floor, checked before anything a user
sends or starts writes to disk (uploads, launches, exports)."""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from studio.uploads import user_dir

if TYPE_CHECKING:
    from studio.context import StudioContext

GIB = 2**30


class NoRoom(ValueError):
    """Not enough room; `key` is the i18n message and `params` fill it."""

    def __init__(self, key: str, **params: Any):
        self.key, self.params = key, params
        super().__init__(f"{key}: {params}")


def tree_bytes(folder: Path) -> int:
    """Bytes of the files under `folder`, links not followed."""
    total = 0
    for root, _dirs, files in os.walk(folder):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass   # removed while walking
    return total


def used_bytes(ctx: StudioContext, user: str) -> int:
    """The user's folder (uploads, configs, exports), every job of theirs and uploads in flight."""
    jobs = ctx.runner.list(user, kind=None)
    return (tree_bytes(user_dir(ctx.settings.workdir, user, "")) + sum(tree_bytes(j.job_dir) for j in jobs)
            + ctx.ledger.pending_bytes(user))


def check_room(ctx: StudioContext, user: str, incoming: int) -> None:
    """Raise NoRoom when `incoming` more bytes would break the disk floor or the user's quota."""
    free = shutil.disk_usage(ctx.settings.workdir).free
    floor = int(ctx.settings.min_free_gib * GIB)
    if free - incoming < floor:
        raise NoRoom("room.disk", free=free / GIB, floor=ctx.settings.min_free_gib, size=incoming / GIB)
    quota = ctx.quota_bytes(user)
    if quota is None:
        return
    used = used_bytes(ctx, user)
    if used + incoming > quota:
        raise NoRoom("room.quota", used=used / GIB, quota=quota / GIB, size=incoming / GIB)
