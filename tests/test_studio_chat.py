"""The chat worker: a job of kind "chat" that answers through the model's chat template; a crash
there becomes a one-line error for the caller, never an exception in the studio; a killed studio
leaves no worker behind."""
from __future__ import annotations

import os
import signal
import subprocess
import sys

import psutil
import pytest

from studio_server import ROOT, free_port, stop_jobs, wait_until
from trainer_backend.jobs import ADMIN, CHAT, JobRunner
from trainer_backend.serve.client import ChatPool, WorkerError, WorkerSpec

pytestmark = pytest.mark.slow


@pytest.fixture()
def runner(tmp_path):
    runner = JobRunner(tmp_path / "work", gpus=[], min_free_gib=0)
    runner.start_background(interval_s=0.2)
    yield runner
    runner.close()
    stop_jobs(tmp_path / "work")


def test_worker_answers_then_a_crash_is_one_clear_error(runner, tiny_llama_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer
    import torch

    pool = ChatPool(runner, sys.executable)
    try:
        spec = WorkerSpec(str(tiny_llama_dir))
        worker = pool.worker("alice", "base", spec)
        messages = [{"role": "user", "content": "Say hello."}]
        reply = worker.chat(messages, max_new_tokens=8)
        # Same greedy answer as the model run here through the same chat template.
        tok = AutoTokenizer.from_pretrained(tiny_llama_dir)
        model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir, dtype=torch.float32).eval()
        ids = tok.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
        out = model.generate(**ids, max_new_tokens=8, do_sample=False, pad_token_id=tok.pad_token_id)
        assert reply == tok.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True).strip()
        assert pool.worker("alice", "base", spec) is worker          # reused while alive
        assert runner.list("alice") == [] and [j.name for j in runner.list("alice", kind=CHAT)] == ["chat-base"]

        info = runner.get(worker.job_id, "alice")
        os.killpg(info.pgid, signal.SIGKILL)                          # e.g. the OOM killer
        with pytest.raises(WorkerError, match=r"the chat worker exited \(killed by SIGKILL"):
            worker.chat(messages, max_new_tokens=4)
        assert pool.worker("alice", "base", spec) is not worker      # a fresh one replaces it
    finally:
        pool.stop_all()


def test_worker_that_cannot_load_says_why(runner, tmp_path):
    pool = ChatPool(runner, sys.executable)
    worker = pool.worker("bob", "base", WorkerSpec(str(tmp_path / "no-such-model")))
    with pytest.raises(WorkerError, match="did not start: cannot load the model"):
        worker.chat([{"role": "user", "content": "hi"}])


def test_a_killed_studio_leaves_no_chat_worker(tmp_path, tiny_llama_dir):
    from gradio_client import Client

    work, port = tmp_path / "work", free_port()
    with open(tmp_path / "studio.log", "w") as log:
        studio = subprocess.Popen([sys.executable, "app.py", "--port", str(port), "--workdir", str(work)], cwd=ROOT,
                                  stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    try:
        url = f"http://127.0.0.1:{port}/"
        client = wait_until(lambda: _client(Client, url), 120, every_s=1, what="the studio")
        _prompt, left, _right, status = client.predict("Say hello.", [], [], None, str(tiny_llama_dir), 8, "en",
                                                       api_name="/chat")
        assert left[-1]["role"] == "assistant" and not status, (tmp_path / "studio.log").read_text()
        runner = JobRunner(work, gpus=[], min_free_gib=0)
        [chat] = [j for j in runner.list(ADMIN, kind=CHAT) if j.state == "running"]
        worker = psutil.Process(chat.pgid)
        studio.kill()                                                  # no cleanup code runs
        studio.wait()
        wait_until(lambda: not worker.is_running() or worker.status() == psutil.STATUS_ZOMBIE, 60,
                   what="the chat worker to exit after the studio died")
        wait_until(lambda: runner.get(chat.id, ADMIN).state not in ("running", "stopping"), 30,
                   what="the registry to record the worker's end")
        runner.close()
    finally:
        if studio.poll() is None:
            studio.kill()
        stop_jobs(work)


def _client(client_cls, url):
    try:
        return client_cls(url, verbose=False)
    except Exception:
        return None


@pytest.mark.gpu
def test_a_gpu_chat_worker_runs_on_the_gpu_the_scheduler_gave_it(tmp_path, tiny_llama_dir):
    import torch

    last = torch.cuda.device_count() - 1                       # as with --gpus <last>
    runner = JobRunner(tmp_path / "work", gpus=[last], min_free_gib=0, warm_workers=False)
    runner.start_background(interval_s=0.2)
    pool = ChatPool(runner, sys.executable)
    try:
        worker = pool.worker("alice", "base", WorkerSpec(str(tiny_llama_dir)))
        assert isinstance(worker.chat([{"role": "user", "content": "Say hello."}], max_new_tokens=4), str)
        info = runner.get(worker.job_id, "alice")
        assert info.gpus == [last] and "device: cuda" in info.config_path.read_text()
        assert psutil.Process(info.pgid).environ()["CUDA_VISIBLE_DEVICES"] == str(last)
    finally:
        pool.stop_all()
        runner.close()
        stop_jobs(tmp_path / "work")
