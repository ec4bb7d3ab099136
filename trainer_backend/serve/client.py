"""The studio's side of the chat workers (torch-free): start one per (user, slot), talk to it over
loopback, stop it. A worker that crashes or runs out of memory only fails its own request."""
from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from trainer_backend.child_env import python_env
from trainer_backend.serve.worker import TOKEN_HEADER

START_TIMEOUT_S = 300.0
REQUEST_TIMEOUT_S = 600.0


class WorkerError(RuntimeError):
    """The worker could not start or answer; the message says why in one line."""


@dataclass(frozen=True)
class WorkerSpec:
    model: str
    adapter: str | None = None
    template: str = "auto"
    device: str = "cpu"


class ChatWorker:
    def __init__(self, spec: WorkerSpec, python: str, cwd: Path, log_path: Path):
        self.spec = spec
        self.log_path = log_path
        self.token = secrets.token_hex(16)
        argv = [python, "-m", "trainer_backend.serve.worker", "--model", spec.model, "--template", spec.template,
                "--device", spec.device] + (["--adapter", spec.adapter] if spec.adapter else [])
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "w") as log:
            self.proc = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.PIPE, stderr=log, text=True,
                                         start_new_session=True,
                                         env=_worker_env(self.token))
        self.port = self._wait_ready()

    def _wait_ready(self) -> int:
        box: list[str] = []
        reader = threading.Thread(target=lambda: box.append(self.proc.stdout.readline()), daemon=True)
        reader.start()
        reader.join(START_TIMEOUT_S)
        line = box[0] if box else ""
        if not line.startswith("READY "):
            self.stop()
            raise WorkerError(f"the chat worker did not start: {self.last_log_line() or 'timed out'}")
        return int(line.split()[1])

    def last_log_line(self) -> str:
        lines = [ln for ln in self.log_path.read_text(errors="replace").splitlines() if ln.strip()]
        return lines[-1] if lines else ""

    def alive(self) -> bool:
        return self.proc.poll() is None

    def chat(self, messages: list[dict], max_new_tokens: int = 128) -> str:
        body = json.dumps({"messages": messages, "max_new_tokens": max_new_tokens}).encode()
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}/chat", data=body, method="POST",
                                     headers={"Content-Type": "application/json", TOKEN_HEADER: self.token})
        try:
            with urllib.request.urlopen(req, timeout=REQUEST_TIMEOUT_S) as resp:
                return json.loads(resp.read())["text"]
        except (urllib.error.URLError, ConnectionError, TimeoutError, KeyError, ValueError) as err:
            if not self.alive():
                raise WorkerError(f"the chat worker exited (code {self.proc.returncode}): "
                                  f"{self.last_log_line() or 'no message'}") from None
            raise WorkerError(f"the chat worker did not answer: {err}") from None

    def stop(self) -> None:
        if self.alive():
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def _worker_env(token: str) -> dict[str, str]:
    return python_env({"STUDIO_WORKER_TOKEN": token, "TOKENIZERS_PARALLELISM": "false"})


class ChatPool:
    """At most one worker per (user, slot); asking with another spec replaces it."""

    def __init__(self, python: str, cwd: Path, log_dir: Path):
        self.python, self.cwd, self.log_dir = python, cwd, log_dir
        self._workers: dict[tuple[str, str], ChatWorker] = {}
        self._lock = threading.Lock()

    def worker(self, user: str, slot: str, spec: WorkerSpec) -> ChatWorker:
        with self._lock:
            current = self._workers.get((user, slot))
            if current and current.spec == spec and current.alive():
                return current
            if current:
                current.stop()
            self._workers.pop((user, slot), None)
        fresh = ChatWorker(spec, self.python, self.cwd, self.log_dir / user / f"chat-{slot}.log")
        with self._lock:
            self._workers[(user, slot)] = fresh
        return fresh

    def stop_all(self) -> None:
        with self._lock:
            workers, self._workers = list(self._workers.values()), {}
        for w in workers:
            w.stop()
