"""Real learning on CPU: SmolLM2-135M-Instruct + LoRA learns the sample's `ANSWER: ...` format."""
from __future__ import annotations

import pytest
import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer

from trainer_backend.config import load_config
from trainer_backend.train.events import read_events
from trainer_backend.train.loop import train_rank
from trainer_backend.train.sync.local import LocalSync

QUESTION = "What is the capital of Mongolia?"  # not in the sample: the format must generalize


def greedy_reply(model, tok, question: str) -> str:
    ids = tok.apply_chat_template([{"role": "user", "content": question}], add_generation_prompt=True,
                                  return_tensors="pt", return_dict=True)["input_ids"]
    with torch.no_grad():
        out = model.generate(ids, max_new_tokens=8, do_sample=False, pad_token_id=tok.pad_token_id)
    return tok.decode(out[0, ids.shape[1]:], skip_special_tokens=True)


@pytest.mark.slow
def test_smollm2_learns_the_answer_format(smollm2_dir, tmp_path):
    job = tmp_path / "job"
    cfg = load_config("smollm2-135m-demo", [f"model.name_or_path={smollm2_dir}", f"output.dir={job}",
                                            "train.max_steps=10", "train.lr=2e-3", "train.warmup_steps=2",
                                            "template.max_seq_len=128"])
    tok = AutoTokenizer.from_pretrained(smollm2_dir)
    base = AutoModelForCausalLM.from_pretrained(smollm2_dir, dtype=torch.float32).eval()
    assert not greedy_reply(base, tok, QUESTION).startswith("ANSWER:")

    # 10 steps of 2 short rows: about a minute on two idle cores
    assert train_rank(cfg, 0, 1, "cpu", LocalSync(), job) == 0
    losses = [e["loss"] for e in read_events(job, "train")]
    assert len(losses) == 10
    assert sum(losses[-3:]) / 3 < 0.3 * losses[0]

    tuned = PeftModel.from_pretrained(base, job / "output").eval()
    assert greedy_reply(tuned, tok, QUESTION).startswith("ANSWER:")
