"""The per-job supervisor: `python -m trainer_backend.jobs.supervise <workdir> <job_id>`.

Started detached by the runner (see processes.spawn_supervisor), it runs the train command as a
process group of its own (started here, or a warm worker of the job's GPU that it claims: warm.py),
turns a stop request into SIGTERM to that group and SIGKILL after the grace period (plus the step
and checkpoint time the trainer measured), fails a starting job whose preparation makes no
progress, retries out-of-memory failures when allowed, removes what a killed run leaves in shared
memory, and records the final state in the registry itself, so the state is right even when no
studio is running. A failure the trainer could not report (killed from
outside, stalled) gets its error event here, so the Monitor shows it too.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

from . import registry
from ..contracts import (EventKind, Reason, Status, disk_full_message, last_log_line, sync_job_id, sync_root,
                         write_error, write_status)
from ..messages import Notice, msg
from .disk import disk_is_full
from .eventfile import count_lines, progress_of, read_events_since
from .info import ACTIVE_STATES, FAILED, RUNNING, STOPPED, STOPPING
from .oom_retry import MAX_OOM_RETRIES, halve_micro_batch
from .outcome import Outcome, classify
from .paths import JobPaths
from ..child_env import python_env
from .processes import ChildProcess, TrainProcess, kill_group
from .warm import claim, clear_claim, cli_args, hand_over, warm_gpu
from .watchdog import StallWatch, stop_grace

_POLL_S = 0.2
_FINISH_RETRY_S = 600.0   # how long the final state is retried on a full or busy registry


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
            self._finish(Outcome.failed(msg("job.supervisor_error", error=type(err).__name__, detail=str(err))))
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
                return Outcome.ended(STOPPED, msg("job.stopped_before_command"))
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
        resume = self.paths.latest_checkpoint() is not None
        argv = [*job.command, str(self.paths.config)] + (["--resume"] if resume else [])
        try:
            proc, console_start = self._start(job, argv)
        except OSError as err:
            return Outcome.failed(msg("job.no_start", command=argv[0], detail=str(err.strerror or err)))
        self.train_pgid, self.train_started = proc.pid, proc.created
        with self.registry.write() as conn:
            registry.update(conn, self.job_id, train_pid=proc.pid, pgid=proc.pid, train_created=proc.created)
        exit_code, stop_requested, stalled = self._wait(proc, job)
        kill_group(self.train_pgid, self.train_started)  # workers the launcher left behind
        # A launcher killed by SIGKILL cannot remove the run's shared memory; nobody uses it now.
        shutil.rmtree(sync_root() / sync_job_id(self.paths.dir), ignore_errors=True)
        new_events, _ = read_events_since(self.paths.events, first_new_line)
        errors = [e for e in new_events if e.get("kind") == EventKind.ERROR]
        last = last_log_line(self.paths.console_log, start=console_start) or None
        checkpoint = self.paths.latest_checkpoint()
        outcome = classify(exit_code, stop_requested, errors, last, job.grace_s,
                           checkpoint.name if checkpoint is not None else None)
        if stalled is not None:
            outcome = Outcome.failed(stalled, exit_code, kind=Reason.STALLED)
        elif outcome.state == FAILED and outcome.kind != Reason.DISK_FULL and disk_is_full(self.paths.dir):
            # The trainer could not say it: its events, its log, its checkpoint all live on that disk.
            full = disk_full_message(self.paths.dir, msg("job.while_training"))
            outcome = Outcome.failed(msg("job.disk_full_after", full=full, detail=_notice(outcome)), exit_code,
                                     kind=Reason.DISK_FULL)
        if outcome.state == FAILED and not errors:
            self._report(outcome)
        return outcome

    def _start(self, job: registry.JobRow, argv: list[str]) -> tuple[TrainProcess, int]:
        """Start the train command, in a ready warm worker of the job's GPU where there is one
        (warm.py), and return it with the console.log offset where its output begins. An OOM retry
        starts cold: the runner starts no worker on a GPU while its job is active."""
        clear_claim(self.paths)
        gpu = warm_gpu(job.command, job.gpus)
        worker = claim(self.workdir, gpu, job.command, self.paths) if gpu is not None else None
        with open(self.paths.console_log, "ab") as console:
            console.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(argv)}\n".encode())
            if worker is not None:
                ready_s = time.time() - worker.ready_at
                console.write(f"--- in warm worker {worker.pid} (imports done {ready_s:.0f} s before)\n".encode())
                console.flush()
                if hand_over(worker, cli_args(job.command, argv), job.cwd, self.paths):
                    return worker, console.tell()
                console.write(f"--- warm worker {worker.pid} did not answer; starting cold\n".encode())
            console.flush()
            console_start = console.tell()
            env = python_env({"CUDA_VISIBLE_DEVICES": ",".join(str(g) for g in job.gpus)})
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=console, stderr=subprocess.STDOUT,
                                    start_new_session=True, env=env, cwd=job.cwd)
        return ChildProcess(proc), console_start

    def _report(self, outcome: Outcome) -> None:
        progress, _ = progress_of(self.paths.events)
        try:
            write_error(self.paths.events, progress.step, outcome.kind or Reason.CRASH, _notice(outcome))
        except OSError as err:  # a full disk: the registry still gets the reason
            _note(f"could not write the error event: {err}")

    def _wait(self, proc: TrainProcess, job: registry.JobRow) -> tuple[int, bool, Notice | None]:
        """Wait for the train command: (exit code, stop requested, why the watchdog killed it or
        None). A stop request SIGTERMs its group and SIGKILLs it after the grace period."""
        term_at: float | None = None
        grace_s = job.grace_s
        watch = StallWatch(self.paths.events, proc.pid, self.train_started or time.time(), job.stall_s) \
            if job.stall_s > 0 else None
        stalled = None
        while True:
            try:
                return proc.wait(_POLL_S), term_at is not None, stalled
            except subprocess.TimeoutExpired:
                pass
            if term_at is None and self._stop_requested():
                grace_s = stop_grace(job.grace_s, self.paths.events)
                proc.signal(signal.SIGTERM)
                term_at = time.monotonic()
            elif term_at is not None and time.monotonic() - term_at > grace_s:
                proc.signal(signal.SIGKILL)
            elif stalled is None and watch is not None and watch.stalled():
                stalled = watch.message()
                proc.signal(signal.SIGKILL)

    def _stop_requested(self) -> bool:
        try:
            return self._read_stop_request()
        except registry.RegistryError as err:
            # A full or damaged registry must not end the supervision of a running trainer.
            _note(str(err))
            return self.stop_signal.is_set()

    def _read_stop_request(self) -> bool:
        if self.stop_signal.is_set():
            with self.registry.write() as conn:  # a signal from outside is a stop: show it
                job = registry.fetch(conn, self.job_id)
                if job is not None and job.state == RUNNING:
                    registry.update(conn, self.job_id, state=STOPPING)
            return True
        with self.registry.read() as conn:
            job = registry.fetch(conn, self.job_id)
        return job is None or job.state == STOPPING

    def _record_retry(self, retries: int, change: Notice) -> None:
        progress, _ = progress_of(self.paths.events)
        write_status(self.paths.events, progress.step, Status.RETRY, msg("job.retry", n=retries, change=change),
                     progress.total, retry=retries, change=str(change), change_notice=change.to_json())
        with self.registry.write() as conn:
            registry.update(conn, self.job_id, retries=retries)

    def _finish(self, outcome: Outcome) -> None:
        """Record the end; a full (or busy) registry is retried for a while, since the state it
        records is the one thing no other process can know."""
        deadline = time.monotonic() + _FINISH_RETRY_S
        while True:
            try:
                return self._record_end(outcome)
            except registry.RegistryError as err:
                if time.monotonic() > deadline:
                    raise
                _note(f"{err}; retrying")
                time.sleep(2.0)

    def _record_end(self, outcome: Outcome) -> None:
        with self.registry.write() as conn:
            job = registry.fetch(conn, self.job_id)
            if job is None or job.supervisor_pid != os.getpid() or job.state not in ACTIVE_STATES:
                return
            registry.update(conn, self.job_id, state=outcome.state, exit_code=outcome.exit_code,
                            **registry.ending(_notice(outcome) if outcome.reason else None),
                            ended_at=time.time(), supervisor_pid=None, supervisor_created=None,
                            train_pid=None, pgid=None, train_created=None)


def _notice(outcome: Outcome) -> Notice:
    """A failure's reason as a notice (the supervisor's own failures have English text only)."""
    return outcome.notice or msg("detail", detail=outcome.reason or "")


def _note(message: str) -> None:
    """A line in supervisor.log; on a full disk it is lost, and the supervisor carries on."""
    try:
        print(message, file=sys.stderr, flush=True)
    except OSError:
        pass


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
