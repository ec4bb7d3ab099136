"""The skeleton path of render+mask gives byte-identical ids and masks to the slow prefix-diff path."""
from __future__ import annotations

import random

import pytest

from trainer_backend.config import TemplateConfig
from trainer_backend.data import Conversation, Message
from trainer_backend.templates import build_examples, load_tokenizer, render_and_mask_many
from trainer_backend.templates.render import ConversationRenderer, _render_all, chat_renderer
from trainer_backend.templates.skeleton import SkeletonCache, Untraceable, trace_render

WORDS = ("Xin chào bạn, hôm nay trời Hà Nội đẹp quá! Tôi muốn hỏi về phở bò, bánh mì và cà phê sữa đá. "
         "Thủ đô của Việt Nam là thành phố nào? Cảm ơn nhé, chúc bạn một ngày tốt lành. "
         "Đây là câu trả lời {x} [INST] <|im_end|> có ký tự lạ }{ 100% đúng.").split()


def sentence(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 12)))


def conversations(n: int, seed: int = 0, spaces: bool = False, think: bool = False) -> list[Conversation]:
    """Rows of varied shapes: with or without a system turn, 1 to 6 exchanges, Vietnamese text."""
    rng = random.Random(seed)
    rows = []
    for row in range(n):
        messages = [Message("system", sentence(rng))] if rng.random() < 0.5 else []
        for _ in range(rng.randint(1, 6)):
            user, answer = sentence(rng), sentence(rng)
            if spaces and rng.random() < 0.3:
                user = " " + user + "  "
            if spaces and rng.random() < 0.3:
                answer = "\n" + answer + " "
            if think and rng.random() < 0.4:
                answer = f"<think>\n{sentence(rng)}\n</think>\n\n{answer}"
            messages += [Message("user", user), Message("assistant", answer)]
        rows.append(Conversation(row=row, messages=tuple(messages)))
    return rows


def both_paths(convs, tok, tcfg):
    fast, fast_errors = render_and_mask_many(convs, tok, tcfg)
    slow, slow_errors = render_and_mask_many(convs, tok, tcfg, fast=False)
    assert [(e.row, e.text, e.input_ids, e.trained) for e in fast] == \
        [(e.row, e.text, e.input_ids, e.trained) for e in slow]
    assert fast_errors == slow_errors
    return fast, fast_errors


def fast_rows(convs, tok, tcfg) -> int:
    renderer = ConversationRenderer(chat_renderer(tok, tcfg), tcfg)
    _render_all(convs, renderer, workers=1)
    return renderer.fast_rows


CASES = {
    # name: (tokenizer, template, enable_thinking, contents with edge spaces, <think> in answers,
    #        whether the template transforms some of those contents)
    "smollm2-default-system": ("smollm2", "auto", None, False, False, False),
    "qwen3-thinking-on": ("qwen3", "auto", True, False, True, True),
    "qwen3-thinking-off": ("qwen3", "auto", False, False, True, True),
    "llama3-trims": ("llama3", "auto", None, True, False, True),
    "mistral-v1": ("mistral-v1", "mistral", None, True, False, False),
    "vistral-strips": ("mistral-v1", "vistral", None, True, False, True),
}


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("loss", ["response_only", "last_turn"])
def test_fast_path_equals_slow_path(case, loss, tokenizers):
    name, template, thinking, spaces, think, transforms = CASES[case]
    tok = tokenizers(name, template)
    tcfg = TemplateConfig(enable_thinking=thinking, loss=loss)
    convs = conversations(60, seed=list(CASES).index(case), spaces=spaces, think=think)
    examples, _ = both_paths(convs, tok, tcfg)
    assert sum(e.n_trained for e in examples) > 0
    n_fast = fast_rows(convs, tok, tcfg)
    assert n_fast > 0   # the skeleton path is really taken ...
    # ... and exactly the rows whose contents the template transforms fall back
    assert (n_fast < len(convs)) == transforms


def test_smollm2_system_prompt_and_plain_text_rows(tokenizers):
    tok = tokenizers("smollm2", "auto")
    convs = conversations(30, seed=3) + [Conversation(row=30, text="Hà Nội là thủ đô.")]
    for tcfg in (TemplateConfig(system_prompt="Trả lời ngắn gọn."), TemplateConfig(loss="full")):
        examples, errors = both_paths(convs, tok, tcfg)
        assert len(examples) == 31 and not errors
    assert fast_rows(convs[:30], tok, TemplateConfig()) == 30   # ChatML writes contents verbatim


def test_llama3_rows_with_edge_spaces_fall_back(tokenizers):
    tok = tokenizers("llama3", "auto")
    clean = Conversation(row=0, messages=(Message("user", "Chào bạn"), Message("assistant", "Chào!")))
    spaced = Conversation(row=1, messages=(Message("user", "Chào bạn"), Message("assistant", "  Chào! ")))
    both_paths([clean, spaced], tok, TemplateConfig())
    assert fast_rows([clean], tok, TemplateConfig()) == 1
    assert fast_rows([spaced], tok, TemplateConfig()) == 0   # `trim` changes it: the guard fails


UPPERCASE_X = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n"
               "{% if 'x' in m['content'] %}{{ m['content'] | upper }}{% else %}{{ m['content'] }}{% endif %}"
               "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def test_template_that_inspects_content_keeps_exact_masks(tokenizer_dir):
    tok = load_tokenizer(str(tokenizer_dir("smollm2")))
    tok.chat_template = UPPERCASE_X
    convs = [Conversation(row=0, messages=(Message("user", "xin chào"), Message("assistant", "chào bạn"))),
             Conversation(row=1, messages=(Message("user", "hôm nay"), Message("assistant", "trời đẹp"))),
             Conversation(row=2, messages=(Message("user", "a"), Message("assistant", "xe đạp")))]
    examples, _ = both_paths(convs, tok, TemplateConfig())
    assert "XIN CHÀO" in examples[0].text and "XE ĐẠP" in examples[2].text
    trained = tok.decode([t for t, m in zip(examples[2].input_ids, examples[2].trained) if m])
    assert trained == "XE ĐẠP<|im_end|>"
    assert fast_rows(convs, tok, TemplateConfig()) == 1   # only the row without an 'x'


# Content inspected only when its message is the last one: it changes the prompt renders of the
# prefix diffs, never the full render. Checking the full render alone would not see it; the guards do.
LAST_X = ("{% for m in messages %}{% if loop.last and 'x' in m['content'] %}[x]{% endif %}"
          "<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
          "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def test_content_inspected_only_in_prefix_renders_falls_back(tokenizer_dir):
    tok = load_tokenizer(str(tokenizer_dir("smollm2")))
    tok.chat_template = LAST_X
    tricky = Conversation(row=0, messages=(Message("user", "xin chào"), Message("assistant", "chào bạn")))
    plain = Conversation(row=1, messages=(Message("user", "chào"), Message("assistant", "chào bạn")))
    examples, errors = both_paths([tricky, plain], tok, TemplateConfig())
    assert [e.row for e in examples] == [1]
    assert errors[0].row == 0 and "not prefix-stable" in str(errors[0].message)
    assert fast_rows([tricky, plain], tok, TemplateConfig()) == 1


def test_process_pool_gives_the_sequential_results_in_order(tokenizers):
    tok = tokenizers("qwen3", "auto")
    tcfg = TemplateConfig(enable_thinking=False)
    convs = conversations(40, seed=7, think=True)
    convs.insert(5, Conversation(row=99, messages=(Message("assistant", "x"), Message("assistant", "y"))))
    sequential = _render_all(convs, ConversationRenderer(chat_renderer(tok, tcfg), tcfg), workers=1)
    pooled = _render_all(convs, ConversationRenderer(chat_renderer(tok, tcfg), tcfg), workers=2)
    assert [(r.row, r.text, r.segments) if not isinstance(r, Exception) else str(r) for r in pooled] == \
        [(r.row, r.text, r.segments) if not isinstance(r, Exception) else str(r) for r in sequential]


def test_pool_workers_die_on_sigterm_even_when_the_parent_only_flags_it(tokenizers):
    """The trainer's SIGTERM handler only sets a stop flag; forked render workers must not inherit
    it, or Pool.terminate() cannot end them and the pool's exit hangs."""
    import multiprocessing
    import signal

    from trainer_backend.templates.render import _init_worker
    from trainer_backend.train.loop import StopFlag

    tok = tokenizers("qwen3", "auto")
    tcfg = TemplateConfig(enable_thinking=False)
    renderer = ConversationRenderer(chat_renderer(tok, tcfg), tcfg)
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    StopFlag().install()
    try:
        with multiprocessing.get_context("fork").Pool(1, initializer=_init_worker, initargs=(renderer,)) as pool:
            assert pool.apply(signal.getsignal, (signal.SIGTERM,)) == signal.SIG_DFL
    finally:
        signal.signal(signal.SIGTERM, before[0])
        signal.signal(signal.SIGINT, before[1])


def test_build_examples_fast_and_slow_agree_on_reports(tokenizers):
    tok = tokenizers("mistral-v1", "mistral")
    convs = conversations(20, seed=11)
    convs.append(Conversation(row=20, messages=(Message("assistant", "Chào."), Message("user", "Hi"))))
    fast, fast_report = build_examples(convs, tok, TemplateConfig(max_seq_len=64, overflow="truncate"))
    slow, slow_report = build_examples(convs, tok, TemplateConfig(max_seq_len=64, overflow="truncate"), fast=False)
    assert [(e.input_ids, e.trained, e.truncated) for e in fast] == [(e.input_ids, e.trained, e.truncated) for e in slow]
    assert fast_report == slow_report
    assert fast_report.dropped["drop.template_error"] == 1 and fast_report.truncated > 0


def test_tracer_records_guards_and_refuses_what_it_cannot_replay(tokenizers):
    render = chat_renderer(tokenizers("llama3", "auto"), TemplateConfig()).render
    traced = trace_render(render, ("user", "assistant"), False)
    assert [p for p in traced.pieces if type(p) is int] == [0, 1]
    assert {(g[0], g[1]) for g in traced.guards} == {((0,), "strip"), ((1,), "strip")}

    def hashing(messages, _):
        return str({messages[0]["content"]: 1})
    with pytest.raises(Untraceable):
        trace_render(hashing, ("user",), False)

    def slicing(messages, _):
        return messages[0]["content"][:2]   # cuts the marker: no way to replay it on other contents
    with pytest.raises(Untraceable):
        trace_render(slicing, ("user",), False)

    cache = SkeletonCache(render)
    skeleton = cache.skeleton(("user", "assistant"))
    assert skeleton.holds_for(["Chào", "Bạn khỏe không?"])
    assert not skeleton.holds_for(["Chào ", "Bạn khỏe không?"])
    assert skeleton.render(2, False, ["Chào", "Bạn {0} khỏe}"]) == render(
        [{"role": "user", "content": "Chào"}, {"role": "assistant", "content": "Bạn {0} khỏe}"}], False)
