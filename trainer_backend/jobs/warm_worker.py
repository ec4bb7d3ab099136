"""The warm worker (jobs/warm.py): `python -m trainer_backend.jobs.warm_worker WORKDIR GPU NAME
TRAIN_COMMAND_JSON`, started by a JobRunner with the environment of a train process on that GPU.
It imports what a GPU train run imports, announces itself ready, waits for one job and runs it
in-process; an idle worker whose runner is gone, or whose ready file went, exits."""
from __future__ import annotations

import json
import os
import sys
import time
import traceback
from pathlib import Path

from .paths import JobPaths, WarmPaths
from .processes import start_time
from ..contracts import read_json, write_json
from .warm import HANDOVER_S, POLL_S, unlink


def _preload() -> bool:
    """Import what a single-GPU train run imports (commands/train.py), unsloth first; True if CUDA is there."""
    import torch

    cuda = torch.cuda.is_available()
    if cuda:
        from ..models.engine import import_engine

        import_engine("unsloth")
    import trainer_backend.commands.train  # noqa: F401
    import trainer_backend.train.loop  # noqa: F401
    import trainer_backend.train.sync  # noqa: F401
    return cuda


def _become_ready(paths: WarmPaths, record: dict) -> bool:
    """Write the record into `.importing` and rename it `.ready`; False when the runner retired us."""
    try:
        fd = os.open(paths.importing, os.O_WRONLY | os.O_TRUNC)   # never re-create a removed file
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(record, f)
        os.rename(paths.importing, paths.ready)
    except FileNotFoundError:
        return False
    return True


def _wait_for_request(paths: WarmPaths, parent: int) -> dict | None:
    """The hand-over request, answered; None when the worker should exit: its runner is gone, its
    ready file was removed and no request followed, or the request was withdrawn."""
    gone_at = None
    while True:
        request = read_json(paths.request)
        if request is not None:
            try:
                os.rename(paths.request, JobPaths(Path(request["job_dir"])).warm_request)
            except FileNotFoundError:
                return None
            return request
        if paths.ready.exists():
            if os.getppid() != parent and unlink(paths.ready):
                return None
        elif gone_at is None:
            gone_at = time.monotonic()
        elif time.monotonic() - gone_at > HANDOVER_S:
            return None
        time.sleep(POLL_S)


def _run(request: dict) -> int:
    """Become the train command: its output, its directory, its argv; its exit code recorded."""
    sys.stdout.flush()
    sys.stderr.flush()
    fd = os.open(request["console"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    os.chdir(request["cwd"])
    sys.path[0] = request["cwd"]   # where `python -m` run there would look first
    from .. import __main__ as cli

    args = request["args"]
    sys.argv = [cli.__file__, *args]
    try:
        code = cli.main(args)
    except SystemExit as end:
        code = end.code if isinstance(end.code, int) else (0 if end.code is None else 1)
    except BaseException:
        traceback.print_exc()
        code = 1
    write_json(JobPaths(Path(request["job_dir"])).warm_exit, int(code))
    return int(code)


def main(argv: list[str]) -> int:
    if len(argv) != 4:
        print("usage: python -m trainer_backend.jobs.warm_worker WORKDIR GPU NAME TRAIN_COMMAND_JSON", file=sys.stderr)
        return 2
    workdir, gpu, name, command = Path(argv[0]), int(argv[1]), argv[2], json.loads(argv[3])
    paths = WarmPaths(Path(workdir).resolve() / "warm", name, gpu)
    parent, began, pid = os.getppid(), time.monotonic(), os.getpid()
    print(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} warm worker {pid} for GPU {gpu}: importing", flush=True)
    try:
        cuda = _preload()
    except Exception:
        traceback.print_exc()
        print(f"warm worker {pid}: the imports failed; jobs on GPU {gpu} start cold", flush=True)
        unlink(paths.importing)
        return 1
    record = {"pid": pid, "created": start_time(pid), "gpu": gpu,
              "command": command, "cuda": cuda, "ready_at": time.time()}
    if not _become_ready(paths, record):
        print(f"warm worker {pid}: retired during its imports ({time.monotonic() - began:.1f} s); exiting", flush=True)
        return 0
    print(f"warm worker {pid}: imports done in {time.monotonic() - began:.1f} s; ready", flush=True)
    request = _wait_for_request(paths, parent)
    return 0 if request is None else _run(request)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
