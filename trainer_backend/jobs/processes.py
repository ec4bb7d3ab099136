"""Process facts and signals: liveness that survives pid reuse, process groups, detached start."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Protocol

import psutil

from ..child_env import python_env

# Start times are compared with some slack: psutil derives them from clock ticks since boot.
_START_SLACK_S = 1.0


def start_time(pid: int) -> float | None:
    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None


def alive(pid: int | None, started: float | None = None) -> bool:
    """True while `pid` runs and, when `started` is given, is still the process that started then.
    A zombie counts as dead: it has exited and only waits to be reaped."""
    if not pid:
        return False
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        return started is None or abs(proc.create_time() - started) < _START_SLACK_S
    except psutil.Error:
        return False


def group_members(pgid: int | None, since: float | None = None) -> list[int]:
    """Live (non-zombie) pids of a process group; with `since`, only processes started after it,
    so a recycled group id is never mistaken for a job's."""
    if not pgid:
        return []
    members = []
    for proc in psutil.process_iter(["pid", "status", "create_time"]):
        try:
            if os.getpgid(proc.pid) != pgid or proc.info["status"] == psutil.STATUS_ZOMBIE:
                continue
        except (ProcessLookupError, PermissionError):
            continue
        if since is None or proc.info["create_time"] >= since - _START_SLACK_S:
            members.append(proc.pid)
    return members


def signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def kill_group(pgid: int | None, since: float | None = None, wait_s: float = 5.0) -> list[int]:
    """SIGKILL every member of the group and wait until none is left; returns survivors (normally [])."""
    if not pgid or not group_members(pgid, since):
        return []
    signal_group(pgid, signal.SIGKILL)
    deadline = time.monotonic() + wait_s
    while (left := group_members(pgid, since)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


class TrainProcess(Protocol):
    """The train command of a job as its supervisor sees it: a child it started (ChildProcess) or
    a warm worker it claimed (warm.ClaimedWorker). `pid` is also the id of its process group."""
    pid: int
    created: float | None

    def wait(self, timeout: float) -> int:
        """The exit code once it has ended (negative: killed by that signal); raises
        subprocess.TimeoutExpired while it runs."""

    def signal(self, sig: int) -> None:
        """Send `sig` to its process group."""


class ChildProcess:
    def __init__(self, proc: subprocess.Popen):
        self.proc, self.pid, self.created = proc, proc.pid, start_time(proc.pid)

    def wait(self, timeout: float) -> int:
        return self.proc.wait(timeout=timeout)

    def signal(self, sig: int) -> None:
        signal_group(self.pid, sig)


def spawn_supervisor(workdir: Path, job_id: str, log_path: Path) -> int:
    """Start `python -m trainer_backend.jobs.supervise` in a session of its own and return its pid.

    The started process forks once, prints the pid of the fork and exits; the fork is the
    supervisor. So the supervisor is nobody's child here: it outlives this process, and when it
    ends, init reaps it instead of leaving a zombie in a long-running studio.
    """
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "trainer_backend.jobs.supervise", str(workdir), job_id],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log,
            start_new_session=True, env=python_env(), cwd=str(workdir))
    try:
        line = proc.stdout.readline().decode().strip()
    finally:
        proc.stdout.close()
        proc.wait()
    if not line.isdigit():
        raise RuntimeError(f"the job supervisor did not start (exit code {proc.returncode}); see {log_path}")
    return int(line)
