"""The studio's side of the chat workers (torch-free): one chat job per (user, slot), queued with
the training jobs in the runner's scheduler (so it respects the GPU queue and the studio's GPUs),
talked to over loopback, stopped when replaced or when the studio exits. A worker that crashes
or runs out of memory only fails its own request; a killed studio leaves none behind (the worker
watches the studio's process, and a restarted studio stops the orphans it finds)."""
from __future__ import annotations

import json
import os
import secrets
import threading
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field

from trainer_backend.config import TemplateConfig
from trainer_backend.contracts import read_json
from trainer_backend.jobs import ADMIN, CHAT, QUEUED, RUNNING, JobNotFound, JobRunner
from trainer_backend.jobs.eventfile import tail_lines
from trainer_backend.jobs.info import FINAL_STATES
from trainer_backend.jobs.paths import JobPaths
from trainer_backend.jobs.processes import alive, start_time
from trainer_backend.safe_yaml import YamlError, load_yaml_file
from trainer_backend.serve.worker import ENDPOINT_FILE, TOKEN_HEADER

START_TIMEOUT_S = 300.0     # loading a model
QUEUE_WAIT_S = 10.0         # a chat waiting for a GPU answers "queued" rather than holding the page
REQUEST_TIMEOUT_S = 600.0
IDLE_EXIT_S = 900.0         # an unused worker gives its GPU back
_POLL_S = 0.2


class WorkerError(RuntimeError):
    """The worker could not start or answer; the message says why in one line."""


@dataclass(frozen=True)
class WorkerSpec:
    model: str
    adapter: str | None = None
    template: TemplateConfig = field(default_factory=TemplateConfig)   # the run's, whole


class ChatWorker:
    """One chat job of the runner, seen from the studio."""

    def __init__(self, runner: JobRunner, job_id: str, user: str, spec: WorkerSpec, token: str):
        self.runner, self.job_id, self.user, self.spec, self.token = runner, job_id, user, spec, token
        self.port: int | None = None

    def wait_ready(self) -> None:
        """Until the worker listens; WorkerError when it failed, or is still waiting for a GPU."""
        began = time.monotonic()
        while self.port is None:
            info = self.runner.get(self.job_id, self.user)
            endpoint = read_json(info.job_dir / ENDPOINT_FILE)
            if info.state == RUNNING and endpoint is not None:
                self.port = int(endpoint["port"])
                return
            waited = time.monotonic() - began
            if info.state not in (QUEUED, RUNNING):
                raise WorkerError(f"the chat worker did not start: {self.last_log_line() or info.exit_reason}")
            if info.state == QUEUED and waited > QUEUE_WAIT_S:
                raise WorkerError("the chat worker waits for a free GPU (jobs hold them all); send again later")
            if waited > START_TIMEOUT_S:
                raise WorkerError("the chat worker did not start: timed out loading the model")
            time.sleep(_POLL_S)

    def last_log_line(self) -> str:
        lines = [ln.strip() for ln in tail_lines(JobPaths.of(self.runner.workdir, self.job_id).console_log, 20)
                 if ln.strip() and not ln.startswith("--- ")]
        return lines[-1] if lines else ""

    def alive(self) -> bool:
        try:
            return self.runner.get(self.job_id, self.user).state in (QUEUED, RUNNING)
        except JobNotFound:   # it ended and another worker's start tidied it away
            return False

    def chat(self, messages: list[dict], max_new_tokens: int = 128) -> str:
        self.wait_ready()
        body = json.dumps({"messages": messages, "max_new_tokens": max_new_tokens}).encode()
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}/chat", data=body, method="POST",
                                     headers={"Content-Type": "application/json", TOKEN_HEADER: self.token})
        try:
            with urllib.request.urlopen(req, timeout=REQUEST_TIMEOUT_S) as resp:
                return json.loads(resp.read())["text"]
        except (urllib.error.URLError, ConnectionError, TimeoutError, KeyError, ValueError) as err:
            time.sleep(1.0)   # the supervisor records a crash within a poll or two
            info = self.runner.get(self.job_id, self.user)
            if info.state not in (QUEUED, RUNNING):
                raise WorkerError(f"the chat worker exited ({info.exit_reason or info.state}): "
                                  f"{self.last_log_line() or 'no message'}") from None
            raise WorkerError(f"the chat worker did not answer: {err}") from None

    def stop(self) -> None:
        if self.alive():
            self.runner.stop(self.job_id, ADMIN)


class ChatPool:
    """At most one worker per (user, slot); asking with another spec replaces it. Workers that a
    studio no longer running left behind are stopped when the pool starts, and ended chat jobs
    are deleted whenever a worker starts."""

    def __init__(self, runner: JobRunner, python: str):
        self.runner, self.python = runner, python
        self.studio = {"studio_pid": os.getpid(), "studio_started": start_time(os.getpid())}
        self._workers: dict[tuple[str, str], ChatWorker] = {}
        self._lock = threading.Lock()
        self.tidy()

    def tidy(self) -> None:
        """Stop the workers of studios no longer running; forget the chat jobs that ended."""
        for job in self.runner.list(ADMIN, kind=CHAT):
            if job.state in (QUEUED, RUNNING) and not self._studio_alive(job.config_path):
                self.runner.stop(job.id, ADMIN)
            elif job.state in FINAL_STATES:
                self.runner.delete(job.id, ADMIN)

    @staticmethod
    def _studio_alive(spec_path) -> bool:
        try:
            spec = load_yaml_file(spec_path)
            return alive(spec["studio_pid"], spec["studio_started"])
        except (OSError, YamlError, KeyError, TypeError):
            return False

    def worker(self, user: str, slot: str, spec: WorkerSpec) -> ChatWorker:
        with self._lock:
            current = self._workers.get((user, slot))
            if current and current.spec == spec and current.alive():
                return current
            if current:
                current.stop()
            self.tidy()
            token = secrets.token_hex(16)
            job_id = self.runner.submit_chat(
                {**asdict(spec), "template": spec.template.model_dump(mode="json"), **self.studio, "token": token,
                 "idle_exit_s": IDLE_EXIT_S}, user,
                name=f"chat-{slot}", command=[self.python, "-m", "trainer_backend.serve.worker"])
            fresh = self._workers[(user, slot)] = ChatWorker(self.runner, job_id, user, spec, token)
        return fresh

    def stop_all(self) -> None:
        with self._lock:
            workers, self._workers = list(self._workers.values()), {}
        for w in workers:
            w.stop()
