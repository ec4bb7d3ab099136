"""Real-length data: passes by token budget, raw text cut into pieces (no token lost), and the
tokens truncation cuts from chat rows counted in the build report."""
from __future__ import annotations

import random

import pytest

from trainer_backend.config import TemplateConfig
from trainer_backend.data import Conversation, Message
from trainer_backend.templates import build_examples
from trainer_backend.templates.blocks import pieces
from trainer_backend.templates.example import Example
from trainer_backend.train.batching import micro_batches, pass_token_budget


def rows(lengths: list[int]) -> list[Example]:
    return [Example(row=i, input_ids=[7] * n, trained=[j > 0 for j in range(n)], text="") for i, n in enumerate(lengths)]


@pytest.mark.parametrize("packing", [True, False])
def test_every_row_lands_whole_in_one_pass_within_the_token_budget(packing):
    rng = random.Random(0)
    share = rows([rng.randint(20, 2048) for _ in range(64)])
    budget = pass_token_budget(8, 2048)
    passes = micro_batches(share, budget, packing)
    assert sorted(e.row for p in passes for e in p) == list(range(64))
    assert all(sum(len(e) for e in p) <= budget for p in passes)
    if not packing:  # the share's order is kept
        assert [e.row for p in passes for e in p] == list(range(64))
    # no two consecutive passes could have been one: a pass closes only when the next row overflows it
    total = sum(len(e) for e in share)
    assert len(passes) <= 2 * -(-total // budget)


def test_packing_fills_passes_with_rows_binned_by_length():
    assert [[len(e) for e in p] for p in micro_batches(rows([5, 3, 4, 2, 6]), 8, True)] == [[6, 2], [5, 3], [4]]
    assert [[len(e) for e in p] for p in micro_batches(rows([5, 3, 4, 2, 6]), 8, False)] == [[5, 3], [4, 2], [6]]


def test_a_long_document_is_cut_into_pieces_that_keep_every_token_and_end_with_end_of_text():
    doc = Example(row=3, input_ids=list(range(10, 20)), trained=[False] + [True] * 9, text="t")
    out = pieces(doc, max_seq_len=4, eos_id=0)
    assert [e.input_ids for e in out] == [[10, 11, 12, 13], [14, 15, 16, 17], [18, 19, 0]]
    assert [e.trained for e in out] == [[False, True, True, True]] * 2 + [[False, True, True]]
    assert {e.row for e in out} == {3} and not any(e.truncated for e in out)


def test_raw_text_is_cut_not_truncated_and_chat_truncation_reports_the_tokens_cut(tokenizers):
    tok = tokenizers("qwen3")
    book = " ".join(f"Chương {i}: trời Hà Nội hôm nay rất đẹp và mát mẻ." for i in range(300))
    chat = Conversation(row=1, messages=(Message("user", "Xin chào"), Message("assistant", "Chào bạn. " * 200)))
    tcfg = TemplateConfig(max_seq_len=256)
    examples, report = build_examples([Conversation(row=0, text=book), chat], tok, tcfg)
    book_ids = tok(book, add_special_tokens=True)["input_ids"]
    text_pieces = [e for e in examples if e.row == 0]
    # every token of the book, then the end-of-text token, in order; no piece over max_seq_len
    assert [t for e in text_pieces for t in e.input_ids] == book_ids + [tok.eos_token_id]
    assert len(text_pieces) == -(-(len(book_ids) + 1) // 256) and max(len(e) for e in text_pieces) == 256
    assert sum(e.n_trained for e in text_pieces) == len(book_ids) + 1 - len(text_pieces)
    # the chat row keeps truncation, and the report says how many tokens it lost
    chat_ex = next(e for e in examples if e.row == 1)
    text = tok.apply_chat_template([{"role": "user", "content": "Xin chào"},
                                    {"role": "assistant", "content": "Chào bạn. " * 200}], tokenize=False)
    full = len(tok(text, add_special_tokens=False)["input_ids"])   # the tokenizer's own count of the whole row
    # rendering stopped at the length limit, yet the tokens cut are counted from the whole row
    assert text.startswith(chat_ex.text) and len(chat_ex.text) < len(text)
    assert chat_ex.truncated and len(chat_ex) == 256
    assert (report.kept, report.truncated, report.split, report.cut_tokens) == (2, 1, 1, full - 256)
    assert f"({full - 256} tokens cut)" in report.summary()
    # a row dropped for its length is reported with its whole length too
    _, dropped = build_examples([chat], tok, TemplateConfig(max_seq_len=256, overflow="drop"))
    assert str(dropped.issues[0].message).startswith(f"dropped: longer than max_seq_len ({full} tokens, ")
