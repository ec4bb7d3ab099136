"""The chat worker: a separate process that answers through the model's chat template; a crash
there becomes a one-line error for the caller, never an exception in the studio."""
from __future__ import annotations

import os
import signal
import sys

import pytest

from trainer_backend.serve.client import ChatPool, WorkerError, WorkerSpec

pytestmark = pytest.mark.slow


def test_worker_answers_then_a_crash_is_one_clear_error(tmp_path, tiny_llama_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer
    import torch

    pool = ChatPool(sys.executable, cwd=tmp_path, log_dir=tmp_path / "logs")
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

        os.killpg(worker.proc.pid, signal.SIGKILL)                    # e.g. the OOM killer
        worker.proc.wait()
        with pytest.raises(WorkerError, match=r"the chat worker exited \(code -9\)"):
            worker.chat(messages, max_new_tokens=4)
        assert pool.worker("alice", "base", spec) is not worker      # a fresh one replaces it
    finally:
        pool.stop_all()


def test_worker_that_cannot_load_says_why(tmp_path):
    pool = ChatPool(sys.executable, cwd=tmp_path, log_dir=tmp_path / "logs")
    with pytest.raises(WorkerError, match="did not start: cannot load"):
        pool.worker("bob", "base", WorkerSpec(str(tmp_path / "no-such-model")))
