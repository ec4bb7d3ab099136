"""The per-job supervisor: `python -m trainer_backend.jobs.supervise <workdir> <job_id>`.

Started detached by the runner (see processes.spawn_supervisor), it runs the train command as a
process group of its own, turns a stop request into SIGTERM to that group and SIGKILL after the
grace period, retries out-of-memory failures when allowed, and records the final state in the
registry itself, so the state is right even when no studio is running.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

from . import registry
from .eventfile import count_lines, progress_of, read_events_since, tail_lines
from .info import ACTIVE_STATES, FAILED, RUNNING, STOPPED, STOPPING
from .oom_retry import MAX_OOM_RETRIES, halve_micro_batch
from .outcome import Outcome, classify
from .paths import JobPaths
from ..child_env import python_env
from .processes import kill_group, signal_group, start_time

_POLL_S = 0.2


@dataclass
class Supervisor:
    workdir: Path
    job_id: str
    stop_signal: threading.Event

    def __post_init__(self) -> None:
        self.registry = registry.Registry(self.workdir / "jobs.db")
        self.paths = JobPaths.of(self.workdir, self.job_id)
        self.train_pgid: int | None = None
        self.train_started: float | None = None

    def run(self) -> None:
        job = self._claim()
        if job is None:
            return
        try:
            self._finish(self._attempts(job))
        except BaseException as err:
            # A bug here must not leave the job "running" with an unsupervised trainer.
            kill_group(self.train_pgid, self.train_started)
            self._finish(Outcome(FAILED, f"job supervisor error: {type(err).__name__}: {err}"))
            raise

    def _claim(self) -> registry.JobRow | None:
        """Wait until the runner has committed this process as the job's supervisor."""
        with self.registry.write() as conn:
            job = registry.fetch(conn, self.job_id)
        if job is None or job.supervisor_pid != os.getpid() or job.state not in ACTIVE_STATES:
            return None
        return job

    def _attempts(self, job: registry.JobRow) -> Outcome:
        retries = job.retries
        while True:
            if self._stop_requested():
                return Outcome(STOPPED, "stopped on request before the train command started")
            outcome = self._attempt(job)
            if not (outcome.oom and retries < min(job.max_retries, MAX_OOM_RETRIES)) or self._stop_requested():
                return outcome
            change = halve_micro_batch(self.paths.config)
            if change is None:
                return outcome
            retries += 1
            self._record_retry(retries, change)

    def _attempt(self, job: registry.JobRow) -> Outcome:
        first_new_line = count_lines(self.paths.events)
        argv = [*job.command, str(self.paths.config)] + (["--resume"] if self.paths.has_checkpoint() else [])
        env = python_env({"CUDA_VISIBLE_DEVICES": ",".join(str(g) for g in job.gpus)})
        try:
            with open(self.paths.console_log, "ab") as console:
                console.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(argv)}\n".encode())
                console.flush()
                proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=console, stderr=subprocess.STDOUT,
                                        start_new_session=True, env=env, cwd=job.cwd)
        except OSError as err:
            return Outcome(FAILED, f"could not start the train command {argv[0]}: {err.strerror or err}")
        self.train_pgid, self.train_started = proc.pid, start_time(proc.pid)
        with self.registry.write() as conn:
            registry.update(conn, self.job_id, train_pid=proc.pid, pgid=proc.pid)
        exit_code, stop_requested = self._wait(proc, job.grace_s)
        kill_group(self.train_pgid, self.train_started)  # workers the launcher left behind
        new_events, _ = read_events_since(self.paths.events, first_new_line)
        errors = [e for e in new_events if e.get("kind") == "error"]
        return classify(exit_code, stop_requested, errors, self._last_console_line(), job.grace_s)

    def _wait(self, proc: subprocess.Popen, grace_s: float) -> tuple[int, bool]:
        """Wait for the train command; on a stop request SIGTERM its group, SIGKILL it after grace_s."""
        term_at: float | None = None
        while True:
            try:
                return proc.wait(timeout=_POLL_S), term_at is not None
            except subprocess.TimeoutExpired:
                pass
            if term_at is None and self._stop_requested():
                signal_group(proc.pid, signal.SIGTERM)
                term_at = time.monotonic()
            elif term_at is not None and time.monotonic() - term_at > grace_s:
                signal_group(proc.pid, signal.SIGKILL)

    def _stop_requested(self) -> bool:
        if self.stop_signal.is_set():
            with self.registry.write() as conn:  # a signal from outside is a stop: show it
                job = registry.fetch(conn, self.job_id)
                if job is not None and job.state == RUNNING:
                    registry.update(conn, self.job_id, state=STOPPING)
            return True
        with self.registry.read() as conn:
            job = registry.fetch(conn, self.job_id)
        return job is None or job.state == STOPPING

    def _last_console_line(self) -> str | None:
        lines = [line.strip() for line in tail_lines(self.paths.console_log, 20) if line.strip()]
        return lines[-1] if lines and not lines[-1].startswith("--- ") else None

    def _record_retry(self, retries: int, change: str) -> None:
        progress, _ = progress_of(self.paths.events)
        event = {"t": round(time.time(), 3), "kind": "status", "step": progress.step, "status": "retry",
                 "message": f"out of memory: retry {retries} with {change}", "total_steps": progress.total or 0}
        with self.paths.events.open("a", encoding="utf-8") as f:
            f.write(json.dumps(event) + "\n")
        with self.registry.write() as conn:
            registry.update(conn, self.job_id, retries=retries)

    def _finish(self, outcome: Outcome) -> None:
        with self.registry.write() as conn:
            job = registry.fetch(conn, self.job_id)
            if job is None or job.supervisor_pid != os.getpid() or job.state not in ACTIVE_STATES:
                return
            registry.update(conn, self.job_id, state=outcome.state, exit_reason=outcome.reason,
                            exit_code=outcome.exit_code,
                            ended_at=time.time(), supervisor_pid=None, supervisor_created=None,
                            train_pid=None, pgid=None)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m trainer_backend.jobs.supervise WORKDIR JOB_ID", file=sys.stderr)
        return 2
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda *_: stop.set())
    child = os.fork()
    if child:
        print(child, flush=True)  # the runner records this pid; this process exits, init adopts the fork
        os._exit(0)
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    try:
        Supervisor(Path(argv[0]).resolve(), argv[1], stop).run()
    except Exception:
        traceback.print_exc()
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
