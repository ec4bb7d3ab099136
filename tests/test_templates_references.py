"""Trained ids and masks on real data against references the project did not write, per family:
the tokenizer's joint encoding and apply_chat_template, each answer + end of turn, mistral-common."""
from __future__ import annotations

import pytest

from conftest import CACHE
from template_references import FAMILIES, check, real_conversations
from trainer_backend.config import TemplateConfig
from trainer_backend.data import Conversation, Message
from trainer_backend.templates import build_examples, render_and_mask
from trainer_backend.templates import render as render_module

MISTRAL_DATA = CACHE / "pkgs" / "mistral_common" / "data"
SYSTEM = "Bạn là một trợ lý hữu ích, trả lời bằng tiếng Việt."


@pytest.fixture(scope="module")
def real_rows(data_dir, tmp_path_factory):
    return real_conversations(data_dir, tmp_path_factory.mktemp("real"), per_source=8)


@pytest.mark.parametrize("system_prompt", [None, SYSTEM])
@pytest.mark.parametrize("name", FAMILIES)
def test_real_rows_train_exactly_the_references(name, system_prompt, real_rows, tokenizers):
    family = FAMILIES[name]
    tok = tokenizers(family.tokenizer, family.template)
    tcfg = TemplateConfig(enable_thinking=family.thinking, max_seq_len=100_000, system_prompt=system_prompt)
    tally = check(family, tok, real_rows, tcfg, MISTRAL_DATA, build_examples)
    assert (tally.rows, tally.dropped) == (len(real_rows), 0)
    assert (tally.ids, tally.text, tally.trained) == (0, 0, 0), tally.examples
    # Mistral: the same layout as mistral-common's fine-tuning encoding, except the documented v3
    # deviation (a system prompt joins the first user turn, not the last) on multi-turn rows.
    multi_turn = sum(sum(m.role == "user" for m in c.messages) > 1 for c in real_rows)
    expected = multi_turn if name == "mistral-v3" and system_prompt else 0
    assert tally.mistral_common == expected, tally.examples


def test_vistral_answers_are_the_joint_encoding_without_a_spurious_space(tokenizers):
    tok = tokenizers("mistral-v1", "vistral")
    conv = Conversation(0, (Message("user", "Xin chào"), Message("assistant", "Chào bạn"),
                            Message("user", "Khỏe không?"), Message("assistant", "Khỏe.")))
    example = render_and_mask(conv, tok, TemplateConfig())
    assert example.input_ids == tok(example.text, add_special_tokens=False).input_ids
    pieces = tok.convert_ids_to_tokens(example.input_ids)
    answer_at = pieces.index("]", pieces.index("/")) + 1          # right after the first [/INST]
    assert pieces[answer_at] == "Ch" and example.trained[answer_at] and not example.trained[answer_at - 1]
    assert pieces[pieces.index("</s>") + 1] == "["                 # the next [INST], no "▁["


@pytest.mark.parametrize("thinking", [True, False])
def test_qwen3_history_answers_with_leading_whitespace_are_kept(thinking, tokenizers):
    tok = tokenizers("qwen3", "auto")
    answers = ["\nDòng đầu tiên.", " Có dấu cách.", "\n\nHai dòng.", "Cuối."]
    messages = []
    for i, answer in enumerate(answers):
        messages += [Message("user", f"Câu {i}?"), Message("assistant", answer)]
    tcfg = TemplateConfig(enable_thinking=thinking, loss="full")
    for loss in ("full", "response_only"):
        examples, report = build_examples([Conversation(0, tuple(messages))], tok, tcfg.model_copy(update={"loss": loss}))
        assert report.dropped == {} and len(examples) == 1
    example = examples[0]
    assert example.input_ids == tok(example.text, add_special_tokens=False).input_ids
    # history turns are written verbatim by the template; the trained text of " Có dấu cách." keeps its space
    enc = tok(example.text, add_special_tokens=False, return_offsets_mapping=True)
    trained = "".join(example.text[a:b] for (a, b), m in zip(enc["offset_mapping"], example.trained) if m)
    assert " Có dấu cách.<|im_end|>" in trained and "Cuối.<|im_end|>" in trained


def test_a_token_that_starts_in_the_prompt_is_not_trained(tokenizers):
    """Byte-level BPE merges the prompt's last newline with an answer's first one (Qwen `\\n\\n`): the
    token starts in the prompt, which the model is given at inference, so it is masked."""
    tok = tokenizers("qwen3", "auto")
    example = render_and_mask(Conversation(0, (Message("user", "Chào"), Message("assistant", "\nXin chào."))),
                              tok, TemplateConfig(enable_thinking=True))
    pieces = tok.convert_ids_to_tokens(example.input_ids)
    # thinking on: the last turn is <think>\n\n</think>\n\n + the answer lstripped; the answer's own
    # newline is dropped by the template, so nothing straddles here ...
    assert example.input_ids == tok(example.text, add_special_tokens=False).input_ids
    # ... but with a ChatML template that writes it verbatim, "\n\n" spans prompt and answer
    chatml = tokenizers("qwen3", "chatml")
    example = render_and_mask(Conversation(0, (Message("user", "Chào"), Message("assistant", "\nXin chào."))),
                              chatml, TemplateConfig())
    pieces = chatml.convert_ids_to_tokens(example.input_ids)
    merged = pieces.index("ĊĊ")
    assert pieces[merged - 1] == "assistant" and not example.trained[merged] and example.trained[merged + 1]


def test_qwen3_counts_history_turns_trained_unlike_inference(tokenizers):
    tok = tokenizers("qwen3", "auto")
    conv = Conversation(0, (Message("user", "A?"), Message("assistant", "a"), Message("user", "B?"),
                            Message("assistant", "b"), Message("user", "C?"), Message("assistant", "c")))
    for thinking in (True, False):
        assert render_and_mask(conv, tok, TemplateConfig(enable_thinking=thinking)).unlike_inference == 2
        assert render_and_mask(conv, tok, TemplateConfig(enable_thinking=thinking, loss="last_turn")).unlike_inference == 0
    assert render_and_mask(conv, tokenizers("llama3", "auto"), TemplateConfig()).unlike_inference == 0


def test_mistral_empty_system_message_adds_nothing(tokenizers):
    for name, template in (("mistral-v1", "mistral"), ("mistral-v3", "mistral-v3")):
        tok = tokenizers(name, template)
        plain = Conversation(0, (Message("user", "Chào"), Message("assistant", "Chào bạn")))
        empty = Conversation(0, (Message("system", ""), *plain.messages))
        assert render_and_mask(empty, tok, TemplateConfig()).input_ids == render_and_mask(plain, tok, TemplateConfig()).input_ids


def _rendered_messages(monkeypatch) -> list[int]:
    """Counts the messages the chat template walks through, over all renders."""
    count = [0]
    original = render_module.ChatRenderer.render

    def counting(self, messages, generation_prompt):
        count[0] += len(messages)
        return original(self, messages, generation_prompt)
    monkeypatch.setattr(render_module.ChatRenderer, "render", counting)
    return count


def many_turns(turns: int) -> Conversation:
    messages = []
    for i in range(turns):
        messages += [Message("user", f"câu hỏi số {i}"), Message("assistant", f"trả lời số {i}")]
    return Conversation(0, tuple(messages))


@pytest.mark.parametrize("fast", [True, False])
def test_render_work_grows_linearly_and_stops_at_the_length_limit(fast, tokenizers, monkeypatch):
    tok = tokenizers("qwen3", "auto")
    tcfg = TemplateConfig(enable_thinking=False, max_seq_len=64)
    count = _rendered_messages(monkeypatch)
    work, cut = {}, {}
    for turns in (100, 200, 400):
        count[0] = 0
        examples, report = build_examples([many_turns(turns)], tok, tcfg, fast=fast)
        assert report.truncated == 1 and len(examples[0].input_ids) == 64
        work[turns], cut[turns] = count[0], examples[0]
    # one full render (2 messages a turn) plus the renders of the few turns within 64 tokens
    assert work[400] - work[200] == 2 * (work[200] - work[100]) == 400
    # and the truncated example is the whole conversation's, cut
    whole = render_and_mask(many_turns(100), tok, TemplateConfig(enable_thinking=False, max_seq_len=100_000))
    assert cut[100].input_ids == whole.input_ids[:64] and cut[100].trained == whole.trained[:64]
