"""Start one worker process per device of `sync.devices` and supervise them.

If any worker fails, the others are killed at once (they would only wait for it) and the run
fails with that worker's error: an error event, a one-line message as the last stderr line, and
the train command's exit code. SIGTERM/SIGINT to the launcher is forwarded to every worker, which
agree on the step to stop at, checkpoint and exit 10.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from ..child_env import python_env
from ..config import RunConfig
from ..contracts import EXIT_REASON, ExitCode, JobPaths, Reason, last_log_line, sync_job_id
from ..messages import Notice, msg
from .events import EventLog, read_events
from .sync import resolve_backend
from .sync.shm_files import claim, release

POLL_S = 0.1


def device_name(device: int | str) -> str:
    return "cpu" if device == "cpu" else f"cuda:{device}"


@dataclass
class Worker:
    rank: int
    device: int | str
    process: subprocess.Popen
    log_path: Path
    log: IO = field(repr=False, default=None)

    def describe(self) -> str:
        return f"rank {self.rank} (device {device_name(self.device)})"

    def last_line(self) -> str:
        return last_log_line(self.log_path)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def worker_env(cfg: RunConfig, rank: int, port: int) -> dict[str, str]:
    world = len(cfg.sync.devices)
    env = python_env()
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // world)))
    env.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
               LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(world))
    return env


def start_workers(cfg: RunConfig, job_dir: Path, job_id: str, resume: bool) -> list[Worker]:
    folder = JobPaths(job_dir).workers
    folder.mkdir(parents=True, exist_ok=True)
    config_path = folder / "config.yaml"
    cfg.save(config_path)
    port = free_port()
    workers = []
    for rank, device in enumerate(cfg.sync.devices):
        log_path = folder / f"rank{rank}.log"
        log = log_path.open("w")
        cmd = [sys.executable, "-m", "trainer_backend.train.worker", "--config", str(config_path),
               "--job-dir", str(job_dir), "--rank", str(rank), "--world-size", str(len(cfg.sync.devices)),
               "--device", str(device), "--job-id", job_id] + (["--resume"] if resume else [])
        process = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                   env=worker_env(cfg, rank, port))
        workers.append(Worker(rank, device, process, log_path, log))
    return workers


class Supervisor:
    def __init__(self, workers: list[Worker]):
        self.workers = workers
        self._stop_requested = False
        self._stop_forwarded = False

    def request_stop(self, *_signal_args) -> None:
        self._stop_requested = True

    def wait(self) -> tuple[int, Worker | None]:
        """(exit code, failed worker or None) once every worker is gone."""
        while True:
            if self._stop_requested and not self._stop_forwarded:
                self._stop_forwarded = True
                for w in self.workers:
                    if w.process.poll() is None:
                        w.process.send_signal(signal.SIGTERM)
            codes = [w.process.poll() for w in self.workers]
            # A worker still preparing keeps SIGTERM's default action: dying of it is its stop.
            stopped = (ExitCode.STOPPED, -signal.SIGTERM) if self._stop_forwarded else (ExitCode.STOPPED,)
            codes = [ExitCode.STOPPED if c in stopped else c for c in codes]
            failed = [w for w, c in zip(self.workers, codes) if c not in (None, ExitCode.OK, ExitCode.STOPPED)]
            if failed:
                # A rank that saw a peer fail is a witness; the peer that failed is the culprit.
                culprit = next((w for w in failed if w.process.returncode != ExitCode.PEER_FAILED), failed[0])
                self.kill_all()
                return culprit.process.returncode, culprit
            if all(c is not None for c in codes):
                return (ExitCode.STOPPED if ExitCode.STOPPED in codes else ExitCode.OK), None
            time.sleep(POLL_S)

    def kill_all(self) -> None:
        for w in self.workers:
            if w.process.poll() is None:
                w.process.kill()
        for w in self.workers:
            w.process.wait()


def failure(worker: Worker) -> tuple[int, Reason, Notice]:
    """(exit code of the train command, event reason, one-line message) for a failed worker."""
    code = worker.process.returncode
    if code < 0:
        name = signal.Signals(-code).name
        return ExitCode.CRASH, Reason.KILLED, msg("job.worker_killed", worker=worker.describe(), signal=name)
    detail = worker.last_line() or f"exit code {code}"
    if code == ExitCode.PEER_FAILED:
        return ExitCode.CRASH, Reason.SYNC, msg("detail", detail=detail)
    reason = EXIT_REASON.get(code, Reason.CRASH)
    return (code if code in EXIT_REASON else ExitCode.CRASH), reason, msg("job.at", where=worker.describe(),
                                                                           message=msg("detail", detail=detail))


def launch(cfg: RunConfig, job_dir: Path, resume: bool = False) -> int:
    """Run a multi-device job to its end; returns the train command's exit code."""
    job_dir = Path(job_dir)
    events = EventLog(job_dir)
    job_id = sync_job_id(job_dir)
    try:
        folder = claim(job_id) if resolve_backend(cfg.sync) == "shm" else None
    except RuntimeError as err:
        print(err, file=sys.stderr)
        return ExitCode.CRASH
    previous = {signal.SIGTERM: signal.getsignal(signal.SIGTERM), signal.SIGINT: signal.getsignal(signal.SIGINT)}
    workers: list[Worker] = []
    try:
        workers = start_workers(cfg, job_dir, job_id, resume)
        supervisor = Supervisor(workers)
        for sig in previous:
            signal.signal(sig, supervisor.request_stop)
        code, culprit = supervisor.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for w in workers:
            if w.process.poll() is None:
                w.process.kill()
                w.process.wait()
            w.log.close()
        if folder is not None:
            release(folder)
    if culprit is None:
        return code
    exit_code, reason, message = failure(culprit)
    if not _reported(job_dir, str(message)):
        events.error(_last_step(job_dir), reason, message)
    print(message, file=sys.stderr)
    return exit_code


def _reported(job_dir: Path, message: str) -> bool:
    """The failed worker may have written this error event itself (every rank reports its own)."""
    return any(message.endswith(e.get("message", "\0")) for e in read_events(job_dir, "error"))


def _last_step(job_dir: Path) -> int:
    steps = [e["step"] for e in read_events(job_dir) if "step" in e]
    return max(steps, default=0)
