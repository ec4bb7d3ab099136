"""Start `python app.py` as a subprocess on a free loopback port for the studio's UI tests."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate, timeout_s: float, every_s: float = 0.5, what: str = "condition"):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every_s)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")


def _up(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except OSError:
        return False


def stop_jobs(workdir: Path, timeout_s: float = 45) -> None:
    """Jobs outlive the studio by design; a test stops the ones it left running."""
    from trainer_backend.jobs import ADMIN, JobRunner

    if not (workdir / "jobs.db").exists():
        return
    runner = JobRunner(workdir, gpus=[], min_free_gib=0)
    live = lambda: [j for j in runner.list(ADMIN) if j.state in ("queued", "running", "stopping")]  # noqa: E731
    for job in live():
        if job.state != "stopping":
            runner.stop(job.id, ADMIN)
    try:
        wait_until(lambda: not live(), timeout_s, what="the test's jobs to stop")
    finally:
        runner.close()


@contextmanager
def running_studio(workdir: Path, *extra: str, timeout_s: float = 90):
    """Yields the base URL; the studio's output goes to workdir/../studio.log for failures."""
    port = free_port()
    log = open(workdir.parent / f"studio-{port}.log", "w")
    proc = subprocess.Popen([sys.executable, "app.py", "--port", str(port), "--workdir", str(workdir), *extra],
                            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                            env={**os.environ, "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False"})
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_until(lambda: proc.poll() is not None or _up(url + "gradio_api/info") or _up(url), timeout_s,
                   what="the studio to answer")
        assert proc.poll() is None, (workdir.parent / f"studio-{port}.log").read_text()
        yield url
    finally:
        stop_jobs(workdir)
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def update_screenshot(artifact: Path, name: str) -> None:
    """Copy a test screenshot into the documentation, only when asked (STUDIO_UPDATE_SCREENSHOTS=1):
    an ordinary test run leaves the repository's files untouched."""
    if os.environ.get("STUDIO_UPDATE_SCREENSHOTS") == "1":
        shots = ROOT / "docs" / "screenshots"
        shots.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(artifact, shots / name)
