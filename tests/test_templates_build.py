"""Length policy, filters and reports of build_examples; the same conversation from two file formats."""
from __future__ import annotations

import json

import pytest

from trainer_backend.config import TemplateConfig
from trainer_backend.data import Conversation, Message, load_dataset
from trainer_backend.templates import build_examples, load_tokenizer, render_and_mask


@pytest.fixture(scope="module")
def smol(smollm2_dir):
    return load_tokenizer(str(smollm2_dir))


def conv(row: int, answer: str, question: str = "Câu hỏi?") -> Conversation:
    return Conversation(row=row, messages=(Message("system", "Hệ thống."), Message("user", question),
                                           Message("assistant", answer)))


def test_truncate_cuts_marks_and_counts(smol):
    full = render_and_mask(conv(0, "một hai ba " * 20), smol, TemplateConfig())
    prompt_len = full.trained.index(True)
    tcfg = TemplateConfig(max_seq_len=prompt_len + 5, overflow="truncate")
    examples, report = build_examples([conv(0, "một hai ba " * 20), conv(1, "Ừ.")], smol, tcfg)
    cut = examples[0]
    assert cut.truncated and cut.input_ids == full.input_ids[:prompt_len + 5]
    assert cut.trained == full.trained[:prompt_len + 5] and cut.n_trained == 5
    assert not examples[1].truncated
    assert (report.rows_in, report.kept, report.truncated, report.dropped) == (2, 2, 1, {})


def test_truncation_that_leaves_no_trained_token_drops_the_row(smol):
    long_prompt = conv(5, "Được.", question="rất dài " * 40)
    prompt_len = render_and_mask(long_prompt, smol, TemplateConfig()).trained.index(True)
    examples, report = build_examples([long_prompt], smol, TemplateConfig(max_seq_len=prompt_len))
    assert examples == []
    assert report.dropped == {"drop.no_trained_after_truncation": 1}
    assert report.issues[0].row == 5 and "no trained token after truncation" in str(report.issues[0].message)


def test_drop_policy_and_token_filters(smol):
    rows = [conv(0, "ngắn"), conv(1, "dài " * 60), conv(2, "vừa phải " * 10)]
    lengths = [len(render_and_mask(c, smol, TemplateConfig()).input_ids) for c in rows]
    tcfg = TemplateConfig(max_seq_len=lengths[2], overflow="drop")
    examples, report = build_examples(rows, smol, tcfg)
    assert [e.row for e in examples] == [0, 2]
    assert report.dropped == {"drop.too_long": 1} and report.issues[0].row == 1

    tcfg = TemplateConfig(min_tokens=lengths[0] + 1, max_tokens=lengths[1] - 1)
    examples, report = build_examples(rows, smol, tcfg)
    assert [e.row for e in examples] == [2]
    assert report.dropped == {"drop.too_short": 1, "drop.over_max_tokens": 1}
    assert report.summary() == "1 of 3 rows kept, 0 truncated (0 tokens cut), 1 dropped: longer than max_tokens, " \
                               "1 dropped: shorter than min_tokens"


def test_alpaca_and_sharegpt_of_one_conversation_give_identical_examples(tmp_path, tokenizer_dir):
    alpaca = {"system": "Bạn là trợ lý.", "history": [["Xin chào", "Chào bạn!"]],
              "instruction": "Thủ đô Việt Nam?", "input": "", "output": "Hà Nội."}
    sharegpt = {"conversations": [
        {"from": "system", "value": "Bạn là trợ lý."},
        {"from": "human", "value": "Xin chào"}, {"from": "gpt", "value": "Chào bạn!"},
        {"from": "human", "value": "Thủ đô Việt Nam?"}, {"from": "gpt", "value": "Hà Nội."}]}
    (tmp_path / "a.jsonl").write_text(json.dumps(alpaca, ensure_ascii=False) + "\n", encoding="utf-8")
    (tmp_path / "s.jsonl").write_text(json.dumps(sharegpt, ensure_ascii=False) + "\n", encoding="utf-8")
    a, s = load_dataset(tmp_path / "a.jsonl"), load_dataset(tmp_path / "s.jsonl")
    assert (a.format, s.format) == ("alpaca", "sharegpt")
    for name, template in (("qwen3", "auto"), ("mistral-v1", "vistral")):
        tok = load_tokenizer(str(tokenizer_dir(name)), template)
        ea = render_and_mask(a.conversations[0], tok, TemplateConfig())
        es = render_and_mask(s.conversations[0], tok, TemplateConfig())
        assert (ea.input_ids, ea.trained) == (es.input_ids, es.trained)
        assert sum(ea.trained) > 0
