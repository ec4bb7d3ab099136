"""Exact response masks on real tokenizers: the trained tokens decode to the assistant turns, nothing else."""
from __future__ import annotations

import pytest

from trainer_backend.config import TemplateConfig
from trainer_backend.data import Conversation, Message
from trainer_backend.templates import TemplateError, build_examples, load_tokenizer, render_and_mask

SYSTEM = "Bạn là một trợ lý hữu ích, trả lời bằng tiếng Việt."
TURNS = [
    ("Xin chào! Bạn tên là gì?", "Chào bạn, tôi là trợ lý ảo."),
    ("Thủ đô của Việt Nam là thành phố nào?", "Thủ đô của Việt Nam là Hà Nội."),
    ("Cảm ơn nhé.", "Không có gì, chúc bạn một ngày tốt lành!"),
]


def chat(system: str | None = SYSTEM, turns=TURNS, row: int = 0) -> Conversation:
    messages = [Message("system", system)] if system else []
    for user, assistant in turns:
        messages += [Message("user", user), Message("assistant", assistant)]
    return Conversation(row=row, messages=tuple(messages))


def trained_spans(example, tokenizer) -> list[str]:
    """Each maximal run of trained tokens, decoded on its own."""
    spans, run = [], []
    for token, trained in zip(example.input_ids + [None], example.trained + [False]):
        if trained:
            run.append(token)
        elif run:
            spans.append(tokenizer.decode(run))
            run = []
    return spans


# (tokenizer, template, enable_thinking, end-of-turn token as the template writes it)
CASES = {
    "smollm2-chatml": ("smollm2", "auto", None, "<|im_end|>"),
    "qwen3-no-thinking": ("qwen3", "auto", False, "<|im_end|>"),
    "llama3": ("llama3", "auto", None, "<|eot_id|>"),
    "mistral-v1": ("mistral-v1", "mistral", None, "</s>"),
    "vistral-on-mistral-v1": ("mistral-v1", "vistral", None, "</s>"),
    "mistral-v3": ("mistral-v3", "mistral-v3", None, "</s>"),
    "chatml-fallback-on-qwen3": ("qwen3", "chatml", None, "<|im_end|>"),
}


@pytest.mark.parametrize("case", CASES)
def test_response_only_trains_exactly_each_assistant_turn(case, tokenizers):
    name, template, thinking, eot = CASES[case]
    tok = tokenizers(name, template)
    example = render_and_mask(chat(), tok, TemplateConfig(enable_thinking=thinking))
    assert trained_spans(example, tok) == [answer + eot for _, answer in TURNS]
    assert example.trained[0] is False
    untrained = tok.decode([t for t, m in zip(example.input_ids, example.trained) if not m])
    for user, _ in TURNS:
        assert user in untrained
    assert SYSTEM in untrained


@pytest.mark.parametrize("case", CASES)
def test_rendered_text_is_the_tokenizers_own_rendering(case, tokenizers):
    name, template, thinking, _ = CASES[case]
    tok = tokenizers(name, template)
    conv = chat()
    kwargs = {} if thinking is None else {"enable_thinking": thinking}
    expected = tok.apply_chat_template([{"role": m.role, "content": m.content} for m in conv.messages],
                                       tokenize=False, **kwargs)
    assert render_and_mask(conv, tok, TemplateConfig(enable_thinking=thinking)).text == expected


@pytest.mark.parametrize("case", ["smollm2-chatml", "llama3", "mistral-v1", "vistral-on-mistral-v1"])
def test_full_and_last_turn_keep_the_same_ids(case, tokenizers):
    name, template, _, eot = CASES[case]
    tok = tokenizers(name, template)
    response = render_and_mask(chat(), tok, TemplateConfig(loss="response_only"))
    full = render_and_mask(chat(), tok, TemplateConfig(loss="full"))
    last = render_and_mask(chat(), tok, TemplateConfig(loss="last_turn"))
    assert full.input_ids == response.input_ids == last.input_ids
    assert full.trained == [False] + [True] * (len(full.input_ids) - 1)
    assert trained_spans(last, tok) == [TURNS[-1][1] + eot]
    # the last turn's tokens are exactly the last trained run of response_only
    assert [i for i, m in enumerate(last.trained) if m] == \
        [i for i, m in enumerate(response.trained) if m][-sum(last.trained):]


def test_bpe_tokens_decode_back_to_the_rendered_text(tokenizers):
    for name in ("smollm2", "qwen3", "llama3"):
        tok = tokenizers(name, "auto")
        example = render_and_mask(chat(), tok, TemplateConfig())
        assert tok.decode(example.input_ids) == example.text


def test_qwen3_thinking_on_trains_the_templates_think_block(tokenizers):
    tok = tokenizers("qwen3", "auto")
    example = render_and_mask(chat(), tok, TemplateConfig(enable_thinking=True))
    expected = [a + "<|im_end|>" for _, a in TURNS[:-1]] + ["<think>\n\n</think>\n\n" + TURNS[-1][1] + "<|im_end|>"]
    assert trained_spans(example, tok) == expected


def test_qwen3_reasoning_in_history_is_dropped_and_final_reasoning_trained(tokenizers):
    tok = tokenizers("qwen3", "auto")
    turns = [
        ("2 + 2 bằng mấy?", "<think>\nCộng hai số.\n</think>\n\nBằng 4."),
        ("Còn 3 + 3?", "<think>\nLại cộng.\n\n</think>\n\nBằng 6."),
    ]
    example = render_and_mask(chat(turns=turns), tok, TemplateConfig(enable_thinking=True))
    assert "Cộng hai số." not in example.text  # the template drops reasoning of earlier turns
    assert trained_spans(example, tok) == ["Bằng 4.<|im_end|>", "<think>\nLại cộng.\n</think>\n\nBằng 6.<|im_end|>"]
    assert 151667 in example.input_ids  # <think> is one token, inside the trained span
    think_at = example.input_ids.index(151667)
    assert example.trained[think_at]


def test_qwen3_thinking_off_masks_the_empty_think_scaffold(tokenizers):
    tok = tokenizers("qwen3", "auto")
    example = render_and_mask(chat(), tok, TemplateConfig(enable_thinking=False))
    think_at = example.input_ids.index(151667)
    assert not example.trained[think_at]
    assert trained_spans(example, tok)[-1] == TURNS[-1][1] + "<|im_end|>"


def test_mistral_v1_tokens_follow_mistral_common_v1(tokenizers):
    tok = tokenizers("mistral-v1", "mistral")
    example = render_and_mask(chat(turns=TURNS[:1]), tok, TemplateConfig())
    pieces = tok.convert_ids_to_tokens(example.input_ids)
    # <s>▁[INST]▁{system}\n\n{user}▁[/INST]▁{answer}</s>, each part encoded on its own
    assert pieces[:4] == ["<s>", "▁[", "INST", "]"]
    assert example.text == f"<s> [INST] {SYSTEM}\n\n{TURNS[0][0]} [/INST] {TURNS[0][1]}</s>"
    assert pieces[-1] == "</s>" and example.trained[-1]


def test_vistral_layout(tokenizers):
    tok = tokenizers("mistral-v1", "vistral")
    example = render_and_mask(chat(turns=TURNS[:2]), tok, TemplateConfig())
    assert example.text == (f"<s>[INST] {SYSTEM}\n\n{TURNS[0][0]} [/INST]{TURNS[0][1]}</s>"
                            f"[INST] {TURNS[1][0]} [/INST]{TURNS[1][1]}</s>")


def test_system_prompt_fills_in_for_rows_without_one(tokenizers):
    tok = tokenizers("llama3", "auto")
    example = render_and_mask(chat(system=None), tok, TemplateConfig(system_prompt="Trả lời ngắn gọn."))
    assert "<|start_header_id|>system<|end_header_id|>\n\nTrả lời ngắn gọn.<|eot_id|>" in example.text
    assert trained_spans(example, tok) == [a + "<|eot_id|>" for _, a in TURNS]


def test_smollm2_default_system_prompt_is_masked(tokenizers):
    tok = tokenizers("smollm2", "auto")
    example = render_and_mask(chat(system=None), tok, TemplateConfig())
    assert example.text.startswith("<|im_start|>system\nYou are a helpful AI assistant named SmolLM")
    assert trained_spans(example, tok) == [a + "<|im_end|>" for _, a in TURNS]


def test_raw_text_trains_every_token_but_the_first(tokenizers):
    tok = tokenizers("llama3", "auto")
    example = render_and_mask(Conversation(row=3, text="Hà Nội là thủ đô."), tok, TemplateConfig())
    assert example.input_ids[0] == tok.bos_token_id and example.input_ids[-1] == tok.eos_token_id
    assert tok.decode(example.input_ids) == "<|begin_of_text|>Hà Nội là thủ đô.<|eot_id|>"
    assert example.trained == [False] + [True] * (len(example.input_ids) - 1)


def test_auto_without_a_template_names_the_choices(tokenizer_dir):
    with pytest.raises(TemplateError, match="has no chat template: choose one of chatml, llama3, mistral"):
        load_tokenizer(str(tokenizer_dir("mistral-v1")))


def test_unknown_template_name(tokenizer_dir):
    with pytest.raises(TemplateError, match="unknown template 'zephyr'"):
        load_tokenizer(str(tokenizer_dir("llama3")), "zephyr")


def test_template_that_is_not_prefix_stable_is_refused_by_row(tokenizer_dir):
    tok = load_tokenizer(str(tokenizer_dir("smollm2")))
    # the final turn is rendered differently from how the same turn looks with a generation prompt
    tok.chat_template = ("{% for m in messages %}{% if loop.last %}<final>{% endif %}"
                         "{{ m['role'] + ': ' + m['content'] + '<|im_end|>' }}{% endfor %}"
                         "{% if add_generation_prompt %}assistant: {% endif %}")
    with pytest.raises(TemplateError, match="row 7, field 'messages': message 2: template is not prefix-stable"):
        render_and_mask(chat(turns=TURNS[:1], row=7), tok, TemplateConfig())
    examples, report = build_examples([chat(turns=TURNS[:1], row=7)], tok, TemplateConfig())
    assert examples == [] and report.dropped == {"drop.template_error": 1} and report.issues[0].row == 7


def test_template_exceptions_become_row_errors(tokenizers):
    tok = tokenizers("mistral-v1", "mistral")
    bad = Conversation(row=4, messages=(Message("assistant", "Chào."), Message("user", "Hi")))
    with pytest.raises(TemplateError, match="row 4, field 'messages': the chat template rejected .*must alternate"):
        render_and_mask(bad, tok, TemplateConfig())


def test_llama2_layout_and_masks(tokenizers):
    """Llama 2 Chat's [INST] <<SYS>> layout (the Mistral v1 vocabulary stands in for Llama 2's)."""
    tok = tokenizers("mistral-v1", "llama2")
    example = render_and_mask(chat(turns=TURNS[:2]), tok, TemplateConfig())
    assert example.text == (f"<s>[INST] <<SYS>>\n{SYSTEM}\n<</SYS>>\n\n{TURNS[0][0]} [/INST] {TURNS[0][1]} </s>"
                            f"<s>[INST] {TURNS[1][0]} [/INST] {TURNS[1][1]} </s>")
    assert example.input_ids == tok(example.text, add_special_tokens=False).input_ids
    assert trained_spans(example, tok) == [f"{answer} </s>" for _, answer in TURNS[:2]]
    no_system = render_and_mask(chat(system=None, turns=TURNS[:1]), tok, TemplateConfig())
    assert no_system.text == f"<s>[INST] {TURNS[0][0]} [/INST] {TURNS[0][1]} </s>"
