"""Warm workers: one process per free GPU that has already imported what a GPU train run imports
(torch, unsloth, transformers, the loop: a third of a small job's launch) and becomes the train
process of the next single-GPU job there.

The protocol, in files that each appear by a rename (a reader never sees half of one; paths.WarmPaths):
  1. the runner makes `<name>.importing` and starts the worker; after its imports the worker
     writes its record (pid, start time, GPU, train command, CUDA) into it and renames it `<name>.ready`;
  2. a supervisor claims it by renaming `.ready` into its job directory (JobPaths.warm_claim):
     one rename wins, the other claimer finds no file and starts its job cold;
  3. it writes `<name>.request` (the arguments after `-m trainer_backend`, cwd, console log,
     job directory); the worker answers by moving it into the job directory (JobPaths.warm_request).
     A worker that does not answer within HANDOVER_S is killed and the request withdrawn (an
     unlink, so answer and withdrawal cannot both succeed), and the job starts cold;
  4. the worker sends fd 1/2 to the console log, runs `python -m trainer_backend` in-process,
     writes its exit code to JobPaths.warm_exit and exits with it.
The runner retires an unclaimed worker by unlinking its `.importing` or `.ready` file (again, only
one of that and a claim or the worker's rename succeeds). A ready worker is then killed: it only
waits. An importing one is left to finish and exit by itself (it finds its file gone): a process
killed in the middle of unsloth's import may leave half-written what the next process reads
(unsloth's compiled-module and compile caches).

This module is torch-free; only the worker (`python -m trainer_backend.jobs.warm_worker`, a module
of its own so that the runner never imports it) imports the engine.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
import uuid
from pathlib import Path

from ..child_env import python_env
from ..config import ConfigError, load_config
from ..contracts import read_json, write_json
from ..device_rules import may_use_unsloth
from .paths import JobPaths, WarmPaths
from .processes import alive, kill_group, signal_group, start_time

HANDOVER_S = 10.0          # how long a claimed worker may take to answer
POLL_S = 0.05
_TRAIN_MODULE = ["-m", "trainer_backend", "train"]
_BACKOFF_S = (30.0, 900.0)  # after a worker that died before it was ready: first wait, longest wait


def worker_argv(train_command: list[str]) -> list[str] | None:
    """The argv of a warm worker standing for `train_command` (same prefix, e.g. `nice -n 10`, and
    interpreter), or None when that command is not `python -m trainer_backend train`."""
    if len(train_command) < 4 or train_command[-3:] != _TRAIN_MODULE:
        return None
    return [*train_command[:-3], "-m", "trainer_backend.jobs.warm_worker"]


def warm_gpu(command: list[str], gpus: list[int]) -> int | None:
    """The GPU whose warm worker may run a job with this train command, or None: it starts cold."""
    return gpus[0] if len(gpus) == 1 and worker_argv(command) is not None else None


def fits(record: dict, config_path: Path) -> bool:
    """A worker that imported unsloth (it had CUDA) runs only jobs that import it too. A config
    that does not load starts cold, where the train command reports it as it always does."""
    if not record.get("cuda"):
        return True
    try:
        return may_use_unsloth(load_config(config_path))
    except ConfigError:
        return False


# ---- the supervisor's side ----------------------------------------------------------------------
class ClaimedWorker:
    """A warm worker running a job: not the supervisor's child, so liveness comes from the pid and
    its start time and the exit code from JobPaths.warm_exit. Gone without that file, it was killed
    by a signal: the one its supervisor sent last, else SIGKILL (the OOM killer), as Popen would say."""

    def __init__(self, record: dict, paths: WarmPaths, job: JobPaths):
        self.pid, self.created, self.ready_at = int(record["pid"]), record["created"], record["ready_at"]
        self.paths, self.exit_path = paths, job.warm_exit
        self.signalled: int | None = None

    def wait(self, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while alive(self.pid, self.created):
            if time.monotonic() >= deadline:
                raise subprocess.TimeoutExpired(f"warm worker {self.pid}", timeout)
            time.sleep(min(POLL_S, timeout))
        try:
            return int(self.exit_path.read_text())
        except (OSError, ValueError):
            return -(self.signalled or signal.SIGKILL)

    def signal(self, sig: int) -> None:
        self.signalled = sig if sig == signal.SIGKILL else (self.signalled or sig)
        signal_group(self.pid, sig)


def claim(workdir: Path, gpu: int, command: list[str], job: JobPaths) -> ClaimedWorker | None:
    """Claim a ready worker of `gpu` standing for `command` that fits the job's config, or None."""
    for worker in WarmPaths.ready_on(workdir, gpu):
        record = read_json(worker.ready)
        if record is None or record.get("command") != command or not fits(record, job.config):
            continue
        try:
            os.rename(worker.ready, job.warm_claim)
        except FileNotFoundError:
            continue   # another supervisor won it, or its runner retired it
        if alive(record["pid"], record["created"]):
            return ClaimedWorker(record, worker, job)
    return None


def cli_args(command: list[str], argv: list[str]) -> list[str]:
    """The arguments after `-m trainer_backend` of `argv`, a run of `command` (which ends in `train`,
    see worker_argv) with the config path and flags appended; a prefix such as `nice -n 10` goes."""
    return argv[len(command) - 1:]


def hand_over(worker: ClaimedWorker, args: list[str], cwd: str, job: JobPaths) -> bool:
    """Give the claimed worker the job (`args`: see cli_args); False when it did not answer (it is killed then)."""
    request = worker.paths.request
    write_json(request, {"args": args, "cwd": cwd, "console": str(job.console_log), "job_dir": str(job.dir)})
    deadline = time.monotonic() + HANDOVER_S
    while request.exists():
        if not alive(worker.pid, worker.created) or time.monotonic() > deadline:
            if unlink(request):
                kill_group(worker.pid, worker.created)
                return False
            break   # it answered just now
        time.sleep(POLL_S)
    return True


def clear_claim(job: JobPaths) -> None:
    """Remove what an earlier attempt's warm worker left in the job directory."""
    for path in (job.warm_claim, job.warm_request, job.warm_exit):
        unlink(path)


# ---- the runner's side ----------------------------------------------------------------------------
class _Worker:
    def __init__(self, proc: subprocess.Popen, paths: WarmPaths):
        self.proc, self.paths, self.seen_ready = proc, paths, False


class WarmPool:
    """The warm workers a runner started, at most one per GPU: their Popen objects, so that each is
    reaped (also once it has run a job), and a back-off for GPUs where workers die before they are ready."""

    def __init__(self, workdir: Path, train_command: list[str]):
        self.workdir, self.command = Path(workdir).resolve(), list(train_command)
        self.argv = worker_argv(self.command)
        self.workers: dict[int, _Worker] = {}
        self.retry_at: dict[int, float] = {}
        self.backoff: dict[int, float] = {}
        self.lock = threading.Lock()   # schedule passes may come from several threads

    def keep(self, gpus: list[int], training: set[int], starting: set[int]) -> None:
        """One pass: reap ended workers; on GPUs where a job trains, retire the unclaimed ones
        (they hold a CUDA context there) unless that job's supervisor may still claim one
        (`starting`: its train process is not recorded yet); start one on each other GPU."""
        with self.lock:
            self._keep(gpus, training, starting)

    def _keep(self, gpus: list[int], training: set[int], starting: set[int]) -> None:
        self._reap()
        for gpu in gpus:
            worker = self.workers.get(gpu)
            if gpu in training:
                if worker is not None and gpu not in starting:
                    self._retire(gpu, worker)
            elif worker is None and time.monotonic() >= self.retry_at.get(gpu, 0.0):
                self._start(gpu)

    def close(self) -> None:
        """Retire every worker that has no job (importing ones end after their imports, see
        above); one running a job belongs to that job."""
        with self.lock:
            self._reap()
            for gpu, worker in list(self.workers.items()):
                self._retire(gpu, worker)

    def _start(self, gpu: int) -> None:
        paths = WarmPaths.of(self.workdir, gpu, uuid.uuid4().hex[:12])
        paths.dir.mkdir(parents=True, exist_ok=True)
        paths.importing.touch()
        argv = [*self.argv, str(self.workdir), str(gpu), paths.name, json.dumps(self.command)]
        # The directory jobs submitted here run in (submit records it): what the imports write
        # relative to it (unsloth's compiled-module cache) lands where a cold start puts it.
        try:
            with open(paths.log, "ab") as log:
                proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                        start_new_session=True, cwd=os.getcwd(),
                                        env=python_env({"CUDA_VISIBLE_DEVICES": str(gpu)}))
        except OSError:
            unlink(paths.importing)
            self._back_off(gpu)
            return
        self.workers[gpu] = _Worker(proc, paths)

    def _reap(self) -> None:
        for gpu, worker in list(self.workers.items()):
            worker.seen_ready = worker.seen_ready or worker.paths.ready.exists()
            if worker.proc.poll() is None:
                continue
            del self.workers[gpu]
            unlink(worker.paths.importing)
            unlink(worker.paths.ready)
            if worker.seen_ready:
                self.backoff.pop(gpu, None)
            else:   # it failed its imports (its log says why): no new one at once
                self._back_off(gpu)

    def _back_off(self, gpu: int) -> None:
        wait = min(self.backoff.get(gpu, _BACKOFF_S[0] / 2) * 2, _BACKOFF_S[1])
        self.backoff[gpu], self.retry_at[gpu] = wait, time.monotonic() + wait

    def _retire(self, gpu: int, worker: _Worker) -> None:
        if unlink(worker.paths.importing):
            # Still importing: it exits once its imports are done; a thread reaps it then.
            threading.Thread(target=worker.proc.wait, name=f"warm-retire-{worker.proc.pid}", daemon=True).start()
        elif unlink(worker.paths.ready):
            kill_group(worker.proc.pid)
            worker.proc.kill()
            worker.proc.wait()
        else:
            return   # claimed: it is a job's train process now
        del self.workers[gpu]
        self.backoff.pop(gpu, None)


def unlink(path: Path) -> bool:
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True

