"""A fake train command for fast job-runner tests: `python tests/fake_worker.py CONFIG [--resume]`.

It keeps the process contract of `python -m trainer_backend train` (events.jsonl, train.log,
checkpoints/step_<N>/, output/, exit codes 0/1/3/10, SIGTERM -> checkpoint + status stopped)
without loading a model. Behaviour comes from the config's description, e.g. "step_s=0.05 crash_at=3":
  step_s       seconds per step (default 0.05)
  crash_at     raise at this step: exit 1 with a traceback and no error event
  oom_above    exit 3 with an oom error event while train.micro_batch_size is above this
  child        1 = start a helper process in the group that ignores SIGTERM, like a stuck worker
  ignore_term  1 = ignore SIGTERM, so only the SIGKILL after the grace period ends it
  hang_prepare 1 = announce the rendering stage, then wait forever without using CPU (a hung pool)
  shm          1 = create the run's shared-memory folder, as the launcher of a multi-worker run does
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from trainer_backend.config import load_config
from trainer_backend.contracts import (EventKind, ExitCode, JobPaths, Reason, Stage, Status, oom_message, sync_job_id,
                                      sync_root, write_error, write_event, write_status)
from trainer_backend.messages import msg

CHILD_CODE = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"


def options(description: str) -> dict[str, float]:
    return {k: float(v) for k, v in (item.split("=", 1) for item in description.split() if "=" in item)}


class Run:
    def __init__(self, config_path: str):
        self.config = load_config(config_path)
        self.paths = JobPaths(Path(self.config.output.dir))
        self.opts = options(self.config.description)
        self.stop = False

    def log(self, kind: str, step: int, fields: dict) -> None:
        with self.paths.train_log.open("a") as f:
            f.write(f"{kind} step {step} {fields}\n")

    def emit(self, kind: EventKind, step: int, **fields) -> None:
        write_event(self.paths.events, kind, step, **fields)
        self.log(kind, step, fields)

    def status(self, step: int, status: Status, message: str, total: int) -> None:
        write_status(self.paths.events, step, status, message, total)
        self.log(EventKind.STATUS, step, {"status": status, "message": message})

    def checkpoint(self, step: int) -> None:
        folder = self.paths.checkpoint(step)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "state.json").write_text(json.dumps({"step": step}))

    def last_checkpoint(self) -> int:
        done = self.paths.finished_checkpoints()
        return done[-1][0] if done else 0

    def run(self, resume: bool) -> int:
        total = self.config.train.max_steps
        step = self.last_checkpoint() if resume else 0
        micro = self.config.train.micro_batch_size
        if self.opts.get("shm"):
            folder = sync_root() / sync_job_id(self.paths.dir)
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "grads.bin").write_bytes(b"\0" * 4096)
        if self.opts.get("hang_prepare"):
            write_status(self.paths.events, 0, Status.PREPARING, msg("prep.rendering", n=5000), 0,
                         stage=Stage.RENDERING)
            time.sleep(3600)
        self.status(step, Status.STARTED, f"CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')} "
                    f"devices={self.config.sync.devices} micro={micro} accum={self.config.train.grad_accum}", total)
        if "oom_above" in self.opts and micro > self.opts["oom_above"]:
            message = oom_message(step, micro, self.config.template.max_seq_len, self.config.method)
            write_error(self.paths.events, step, Reason.OOM, message)
            self.log(EventKind.ERROR, step, {"reason": Reason.OOM, "message": str(message)})
            print(message, file=sys.stderr)
            return ExitCode.OOM
        if self.opts.get("child"):
            subprocess.Popen([sys.executable, "-c", CHILD_CODE])
        while step < total:
            step += 1
            time.sleep(self.opts.get("step_s", 0.05))
            if step == self.opts.get("crash_at"):
                raise RuntimeError(f"fake worker crashed at step {step}")
            self.emit(EventKind.TRAIN, step, loss=2.0 * 0.97 ** step, lr=1e-4, grad_norm=1.0, tokens_per_s=1000.0,
                      epoch=step / total, eta_s=0.0, gpu_mem_gib=[])
            if self.stop:
                self.checkpoint(step)
                self.status(step, Status.STOPPED, "stopped on request", total)
                print("stopped on request; checkpoint written", file=sys.stderr)
                return ExitCode.STOPPED
        self.checkpoint(step)
        self.paths.output.mkdir(exist_ok=True)
        self.status(step, Status.COMPLETED, "done", total)
        return ExitCode.OK


def main(argv: list[str]) -> int:
    run = Run(argv[0])
    if run.opts.get("ignore_term"):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    else:
        signal.signal(signal.SIGTERM, lambda *_: setattr(run, "stop", True))
    return run.run(resume="--resume" in argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))


# ---- driving it from tests ---------------------------------------------------------------
FAKE_COMMAND = [sys.executable, str(Path(__file__).resolve())]


def fake_config(description: str = "", max_steps: int = 5, **train):
    """A run config for the fake worker; `description` carries its behaviour (see the module doc)."""
    from trainer_backend.config import RunConfig
    return RunConfig.model_validate({"name": "fake", "description": description,
                                     "train": {"max_steps": max_steps, **train}})


def wait_until(predicate, timeout_s: float = 30.0, runner=None, poll_s: float = 0.1) -> None:
    """Poll `predicate` (running a schedule pass first when a runner is given) until true or timeout."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if runner is not None:
            runner.schedule()
        if predicate():
            return
        time.sleep(poll_s)
    raise AssertionError(f"condition not met within {timeout_s} s")


def live_pids(pids, pgid=None) -> list[int]:
    """Pids among `pids`, or members of group `pgid`, that still run (zombies have exited)."""
    import psutil
    found = []
    for proc in psutil.process_iter(["pid", "status"]):
        if proc.info["status"] == psutil.STATUS_ZOMBIE:
            continue
        try:
            in_group = pgid is not None and os.getpgid(proc.pid) == pgid
        except OSError:
            continue
        if proc.pid in pids or in_group:
            found.append(proc.pid)
    return found
