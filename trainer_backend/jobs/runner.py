"""JobRunner: what the studio (and the `jobs` CLI) drives.

Jobs run detached, each under a supervisor process of its own (see supervise.py), so a studio can
exit and restart while jobs keep running; a runner only decides what starts and reads the
registry and job files. Every method that names a job checks that `user` owns it; the `ADMIN`
object (never a string, so never something an auth layer produces) sees every job.
"""
from __future__ import annotations

import logging
import os
import shutil
import sqlite3
import sys
import threading
import time
from collections import Counter
from pathlib import Path

from ..config import RunConfig
from ..messages import Notice, msg
from ..safe_yaml import dump_yaml
from . import registry
from .disk import check_free_space, disk_is_full
from .errors import DiskSpaceError, GpuRequestError, JobNotFound, JobStateError
from .eventfile import progress_of, read_events_since, tail_lines
from .gpus import detect_gpus
from .ids import check_job_id, new_job_id
from .info import ACTIVE_STATES, CHAT, FAILED, QUEUED, RUNNING, STOPPED, STOPPING, TRAIN, JobInfo
from .oom_retry import MAX_OOM_RETRIES
from .paths import JobPaths
from .processes import alive, kill_group, spawn_supervisor, start_time
from .queue import Pending, pick_chats, pick_startable
from .warm import WarmPool, worker_argv


class _Admin:
    def __repr__(self) -> str:
        return "ADMIN"


ADMIN = _Admin()
User = str | _Admin

_log = logging.getLogger(__name__)
DEFAULT_TRAIN_COMMAND = (sys.executable, "-m", "trainer_backend", "train")
DEFAULT_STALL_S = 600.0


class JobRunner:
    def __init__(self, workdir: str | Path, gpus: list[int] | None = None, cpu_slots: int = 1,
                 min_free_gib: float = 2.0, grace_s: float = 30.0, oom_retries: int = 0,
                 stall_s: float = DEFAULT_STALL_S,
                 train_command: list[str] | tuple[str, ...] = DEFAULT_TRAIN_COMMAND, chat_cpu_slots: int = 4,
                 chats_per_gpu: int = 4, warm_workers: bool = False):
        """`gpus`: GPU indices to schedule on (None = ask nvidia-smi). `cpu_slots` CPU training jobs,
        `chat_cpu_slots` CPU chat workers and `chats_per_gpu` chat workers per GPU run at once (see
        queue.py). `grace_s` (plus the measured step and checkpoint time), `oom_retries`, `stall_s`
        (a starting job with no progress that long fails; 0 = no watchdog) and `train_command` (the
        argv that the config path and --resume are appended to; another command is for tests and
        wrappers) are recorded with each job at submit, so the job keeps them whichever runner later
        starts or stops it. `warm_workers`: keep a worker that has done a train run's imports
        ready on each GPU without a training job (warm.py; only for a `python -m trainer_backend
        train` command); close() stops them. Off unless asked for: on one GPU machine a cold job
        that followed two warm ones failed in Unsloth's LoRA kernel (a bf16/fp32 mismatch) with the
        cause not yet found, so a lab opts in (app.py --warm-workers) rather than finds out."""
        if not 0 <= oom_retries <= MAX_OOM_RETRIES:
            raise ValueError(f"oom_retries must be between 0 and {MAX_OOM_RETRIES}")
        self.workdir = Path(workdir).resolve()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.gpus = sorted(detect_gpus() if gpus is None else gpus)
        self.cpu_slots = cpu_slots
        self.chat_cpu_slots = chat_cpu_slots
        self.chats_per_gpu = chats_per_gpu
        self.min_free_gib = min_free_gib
        self.grace_s = grace_s
        self.oom_retries = oom_retries
        self.stall_s = stall_s
        self.train_command = list(train_command)
        self.registry = registry.Registry(self.workdir / "jobs.db")
        use_warm = warm_workers and bool(self.gpus) and worker_argv(self.train_command) is not None
        self._warm = WarmPool(self.workdir, self.train_command) if use_warm else None
        self._stop_loop = threading.Event()
        self._loop: threading.Thread | None = None
        self.reconcile()

    # ---- submitting and reading ------------------------------------------------
    def submit(self, config: RunConfig, user: str, gpus: list[int] | None = None) -> str:
        """Queue a run and return its job id. `gpus` None = the GPUs listed in the config's
        sync.devices, or a CPU job when they are `cpu`. The job's config.yaml is `config` with
        output.dir set to the job directory and sync.devices renumbered for CUDA_VISIBLE_DEVICES.
        The job starts on a later schedule()."""
        if not isinstance(user, str) or not user:
            raise ValueError("submit needs the name of the user who owns the job")
        check_free_space(self.workdir, self.min_free_gib)
        job_gpus = self._job_gpus(config, gpus)
        job_id = new_job_id()
        paths = JobPaths.of(self.workdir, job_id)
        paths.dir.mkdir(parents=True)
        try:
            resolved = config.with_overrides({"output.dir": str(paths.dir), "sync.devices": _devices(config, job_gpus)})
            resolved.save(paths.config)
            with self.registry.write() as conn:
                registry.insert(conn, id=job_id, owner=user, name=config.name, state=QUEUED, gpus=job_gpus,
                                command=self.train_command, cwd=os.getcwd(), grace_s=self.grace_s,
                                max_retries=self.oom_retries, stall_s=self.stall_s, created_at=time.time())
        except BaseException:
            shutil.rmtree(paths.dir, ignore_errors=True)  # no job folder without its registry row
            raise
        return job_id

    def submit_chat(self, spec: dict, user: str, name: str, command: list[str]) -> str:
        """Queue a chat worker: a job of kind "chat" on the least busy of this runner's GPUs, or
        without GPUs in one of `chat_cpu_slots`. `spec` plus the device becomes the job's
        config.yaml, readable by this account only (it holds the worker's token); the command gets
        its path as last argument."""
        check_free_space(self.workdir, self.min_free_gib)
        job_gpus = [self._least_busy_gpu()] if self.gpus else []
        job_id = new_job_id()
        paths = JobPaths.of(self.workdir, job_id)
        paths.dir.mkdir(parents=True)
        fd = os.open(paths.config, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(dump_yaml({**spec, "device": "cuda" if job_gpus else "cpu"}))
        with self.registry.write() as conn:
            registry.insert(conn, id=job_id, owner=user, name=name, state=QUEUED, gpus=job_gpus, kind=CHAT,
                            command=command, cwd=os.getcwd(), grace_s=5.0, max_retries=0, created_at=time.time())
        return job_id

    def list(self, user: User, kind: str | None = TRAIN) -> list[JobInfo]:
        """The user's jobs of one kind (training runs unless asked; None = every kind)."""
        with self.registry.read() as conn:
            rows = registry.fetch_all(conn, owner=None if user is ADMIN else user, kind=kind)
        return [self._info(row) for row in rows]

    def get(self, job_id: str, user: User) -> JobInfo:
        return self._info(self._owned(job_id, user))

    def config_text(self, job_id: str, user: User) -> str:
        """The job's config.yaml: the run as it trains, with the job's own output.dir."""
        self._owned(job_id, user)
        return JobPaths.of(self.workdir, job_id).config.read_text(encoding="utf-8")

    def events(self, job_id: str, user: User, since_line: int = 0) -> tuple[list[dict], int]:
        """Events appended since line `since_line` (0-based) and the line to pass next time."""
        self._owned(job_id, user)
        return read_events_since(JobPaths.of(self.workdir, job_id).events, since_line)

    def log_tail(self, job_id: str, user: User, n: int = 50) -> str:
        """Last `n` lines of train.log; for a failed job followed by the last `n` lines of the
        process output (console.log), where tracebacks and the final error line are."""
        row = self._owned(job_id, user)
        paths = JobPaths.of(self.workdir, job_id)
        text = "\n".join(tail_lines(paths.train_log, n))
        if row.state == FAILED:
            console = "\n".join(tail_lines(paths.console_log, n))
            text = f"{text}\n--- process output ---\n{console}" if text else console
        return text

    # ---- changing jobs -----------------------------------------------------------
    def stop(self, job_id: str, user: User) -> None:
        """Ask a job to stop: a queued job is stopped at once; a running one gets SIGTERM (it
        checkpoints and exits) from its supervisor, and SIGKILL after the grace period."""
        with self.registry.write() as conn:
            row = self._owned(job_id, user, conn)
            if row.state == QUEUED:
                registry.update(conn, job_id, state=STOPPED, ended_at=time.time(),
                                **registry.ending(msg("job.stopped_before_start")))
            elif row.state == RUNNING:
                registry.update(conn, job_id, state=STOPPING)
            elif row.state != STOPPING:
                raise JobStateError(f"job {job_id} is {row.state}: only a queued or running job can be stopped")

    def resume(self, job_id: str, user: User) -> str | None:
        """Queue a stopped or failed job again; it continues from its newest checkpoint (train
        --resume), or from step 0 when it has none. Returns that checkpoint's name, or None."""
        with self.registry.write() as conn:
            row = self._owned(job_id, user, conn)
            if row.state not in (STOPPED, FAILED):
                raise JobStateError(f"job {job_id} is {row.state}: only a stopped or failed job can be resumed")
            registry.update(conn, job_id, state=QUEUED, started_at=None, ended_at=None, exit_code=None,
                            retries=0, **registry.ending(None))
        return _checkpoint_name(JobPaths.of(self.workdir, job_id))

    def delete(self, job_id: str, user: User) -> None:
        """Remove a job that is not running, with its directory (checkpoints and outputs included)."""
        with self.registry.write() as conn:
            row = self._owned(job_id, user, conn)
            if row.state in ACTIVE_STATES:
                raise JobStateError(f"job {job_id} is {row.state}: stop it before deleting it")
            registry.delete(conn, job_id)
        shutil.rmtree(JobPaths.of(self.workdir, job_id).dir, ignore_errors=True)

    # ---- scheduling ---------------------------------------------------------------
    def schedule(self) -> list[str]:
        """One pass: reconcile the registry with live processes, then start every queued job that
        can start now (see queue.py for the order). Returns the ids started. A job that would start
        while the workdir is below the disk floor fails with the disk message instead. Runs inside
        one BEGIN IMMEDIATE transaction, so runners sharing a workdir never start a job twice."""
        with self.registry.write() as conn:
            self._reconcile(conn)
            active = registry.fetch_all(conn, ACTIVE_STATES)
            queued = registry.fetch_all(conn, (QUEUED,))
            runs, chats = [r for r in queued if r.kind != CHAT], [r for r in queued if r.kind == CHAT]
            active_runs, active_chats = [r for r in active if r.kind != CHAT], [r for r in active if r.kind == CHAT]
            busy = {g for row in active for g in row.gpus}      # a training job needs its GPUs to itself
            starts = pick_startable([Pending(r.id, tuple(r.gpus)) for r in runs], busy,
                                    sum(1 for r in active_runs if not r.gpus), self.cpu_slots)
            training_gpus = {g for row in active_runs + runs for g in row.gpus}
            starts += pick_chats([Pending(r.id, tuple(r.gpus)) for r in chats if r.gpus], training_gpus,
                                 Counter(g for r in active_chats for g in r.gpus), self.chats_per_gpu)
            # CPU chat workers have slots of their own: a CPU training run never waits for a chat.
            starts += pick_startable([Pending(r.id, ()) for r in chats if not r.gpus], set(),
                                     sum(1 for r in active_chats if not r.gpus), self.chat_cpu_slots)
            started = [job_id for job_id in starts if self._start(conn, job_id)]
            training = [r for r in active_runs + runs if r.state != QUEUED or r.id in started]
        if self._warm is not None:   # outside the transaction: starting processes takes a while
            self._warm.keep(self.gpus, {g for r in training for g in r.gpus},
                            {g for r in training if r.train_pid is None for g in r.gpus})
        return started

    def reconcile(self) -> None:
        """Mark jobs whose supervisor is gone as failed ("lost") and kill what is left of their trainer."""
        with self.registry.write() as conn:
            self._reconcile(conn)

    def start_background(self, interval_s: float = 1.0) -> None:
        """Run schedule() every `interval_s` seconds on a daemon thread until close()."""
        if self._loop is not None:
            return
        self._stop_loop.clear()
        self._loop = threading.Thread(target=self._schedule_loop, args=(interval_s,), name="job-scheduler",
                                      daemon=True)
        self._loop.start()

    def close(self) -> None:
        """Stop the background loop and the idle warm workers. Jobs keep running: they belong to
        their supervisors."""
        self._stop_loop.set()
        if self._loop is not None:
            self._loop.join()
            self._loop = None
        if self._warm is not None:
            self._warm.close()

    # ---- internals ------------------------------------------------------------------
    def _schedule_loop(self, interval_s: float) -> None:
        while not self._stop_loop.is_set():
            try:
                self.schedule()
            except Exception:
                # No failure of a pass (a busy, full or damaged registry, a bug) may end the loop:
                # every later job would sit in the queue forever. Log it and try again.
                _log.exception("job scheduling pass failed; retrying")
            self._stop_loop.wait(interval_s)

    def _job_gpus(self, config: RunConfig, gpus: list[int] | None) -> list[int]:
        wanted = gpus if gpus is not None else [d for d in config.sync.devices if d != "cpu"]
        if len(set(wanted)) != len(wanted):
            raise GpuRequestError(f"GPU list {wanted} names a GPU twice")
        missing = [g for g in wanted if g not in self.gpus]
        if missing:
            have = ", ".join(map(str, self.gpus)) or "none"
            raise GpuRequestError(f"GPU {', '.join(map(str, missing))} is not available here (GPUs: {have}); "
                                  f"pick others or run on CPU")
        return sorted(wanted)

    def _least_busy_gpu(self) -> int:
        """For a chat worker: a GPU without training first, then the one with the fewest chats."""
        with self.registry.read() as conn:
            rows = registry.fetch_all(conn, (*ACTIVE_STATES, QUEUED))
        training = Counter(g for row in rows if row.kind != CHAT for g in row.gpus)
        chatting = Counter(g for row in rows if row.kind == CHAT for g in row.gpus)
        return min(self.gpus, key=lambda g: (training[g], chatting[g], g))

    def _start(self, conn: sqlite3.Connection, job_id: str) -> bool:
        paths = JobPaths.of(self.workdir, job_id)
        try:
            check_free_space(self.workdir, self.min_free_gib)
            pid = spawn_supervisor(self.workdir, job_id, paths.supervisor_log)
        except (DiskSpaceError, RuntimeError, OSError) as err:
            registry.update(conn, job_id, state=FAILED, ended_at=time.time(),
                            **registry.ending(msg("detail", detail=str(err))))
            return False
        registry.update(conn, job_id, state=RUNNING, started_at=time.time(), supervisor_pid=pid,
                        supervisor_created=start_time(pid), train_pid=None, pgid=None, train_created=None)
        return True

    def _reconcile(self, conn: sqlite3.Connection) -> None:
        for row in registry.fetch_all(conn, ACTIVE_STATES):
            if alive(row.supervisor_pid, row.supervisor_created):
                continue
            kill_group(row.pgid, row.train_created if row.train_created is not None else row.started_at)
            registry.update(conn, row.id, state=FAILED, ended_at=time.time(), **registry.ending(self._lost(row)),
                            supervisor_pid=None, supervisor_created=None, train_pid=None, pgid=None, train_created=None)

    def _lost(self, row: registry.JobRow) -> Notice:
        """Why a supervisor may have died unseen: it cannot record anything on a full disk."""
        if not disk_is_full(self.workdir):
            return msg("job.lost", pid=row.supervisor_pid)
        return msg("job.lost_disk_full", pid=row.supervisor_pid, workdir=str(self.workdir))

    def _owned(self, job_id: str, user: User, conn: sqlite3.Connection | None = None) -> registry.JobRow:
        check_job_id(job_id)
        if conn is None:
            with self.registry.read() as own:
                row = registry.fetch(own, job_id)
        else:
            row = registry.fetch(conn, job_id)
        if row is None:
            raise JobNotFound(f"no job {job_id} in {self.workdir}" if user is ADMIN else f"you have no job {job_id}")
        if user is not ADMIN and row.owner != user:
            # Same words as an unknown id: a user learns nothing about other users' jobs.
            raise PermissionError(f"you have no job {job_id}")
        return row

    def _info(self, row: registry.JobRow) -> JobInfo:
        paths = JobPaths.of(self.workdir, row.id)
        progress, loss = progress_of(paths.events)
        return JobInfo(id=row.id, owner=row.owner, name=row.name, state=row.state, gpus=row.gpus,
                       pids=[p for p in (row.supervisor_pid, row.train_pid) if p], pgid=row.pgid,
                       created=row.created_at, started=row.started_at, ended=row.ended_at,
                       exit_reason=row.exit_reason, exit_code=row.exit_code, retries=row.retries,
                       job_dir=paths.dir, config_path=paths.config, progress=progress, last_loss=loss,
                       kind=row.kind, exit_notice=row.notice)


def _checkpoint_name(paths) -> str | None:
    latest = paths.latest_checkpoint()
    return latest.name if latest is not None else None


def _devices(config: RunConfig, job_gpus: list[int]) -> list[int | str]:
    """sync.devices as the train command sees them: CUDA_VISIBLE_DEVICES renumbers the job's GPUs
    from 0; a CPU job keeps its CPU worker count."""
    if job_gpus:
        return list(range(len(job_gpus)))
    cpu = [d for d in config.sync.devices if d == "cpu"]
    return cpu or ["cpu"]
