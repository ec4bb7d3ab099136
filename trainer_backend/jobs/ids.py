"""Job ids: generated here, never taken from user input, and checked before they become paths."""
from __future__ import annotations

import re
import secrets
import time

from .errors import JobNotFound

_ID = re.compile(r"^\d{8}-\d{6}-[0-9a-f]{6}$")


def new_job_id(now: float | None = None) -> str:
    """`20250131-142501-a3f09c`: sorts by creation time, readable in a folder listing."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now if now is not None else time.time()))
    return f"{stamp}-{secrets.token_hex(3)}"


def check_job_id(job_id: str) -> str:
    """Return the id unchanged, or raise JobNotFound for anything that is not a job id (e.g. `../x`)."""
    if not isinstance(job_id, str) or not _ID.match(job_id):
        raise JobNotFound(f"'{job_id}' is not a job id")
    return job_id
