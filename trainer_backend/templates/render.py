"""Render a Conversation with a chat template and mark exactly the tokens the model must learn.

How the mask stays exact: the response spans are found in the rendered text by prefix diffs
(the prompt rendered with `add_generation_prompt` must be a prefix of the full render; the turn
rendered on its own says where it ends), never by searching marker strings. The text is then cut
into alternating scaffold/response segments and each segment is tokenized on its own, so no token
straddles a boundary and the trained tokens are those the model generates after the prompt at
inference.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import jinja2
from transformers import PreTrainedTokenizerBase
from transformers.utils.chat_template_utils import _compile_jinja_template

from ..config import TemplateConfig
from ..data.conversation import Conversation, RowError
from .errors import TemplateError
from .example import Example

# Reasoning templates (Qwen3, DeepSeek-R1) drop `<think>` blocks from assistant turns once they are
# history; the turn must then be matched in that stripped form.
_LEADING_REASONING = re.compile(r"^<think>.*?</think>\s*", re.DOTALL)
_TRAILING_REASONING = re.compile(r"<think>\s*</think>\s*$")

Segment = tuple[str, bool]  # a piece of the rendered text, True when it is a trained response


@dataclass(frozen=True)
class ChatRenderer:
    """A tokenizer's chat template compiled once, with the variables apply_chat_template would pass."""
    template: jinja2.Template
    variables: dict[str, Any]
    special_tokens: re.Pattern

    def render(self, messages: list[dict[str, str]], generation_prompt: bool) -> str:
        return self.template.render(messages=messages, tools=None, documents=None,
                                    add_generation_prompt=generation_prompt, **self.variables)

    def through_end_of_turn(self, delta: str) -> str:
        """`delta` cut just after its last special token (the end-of-turn marker); what follows is scaffolding."""
        last = None
        for last in self.special_tokens.finditer(delta):
            pass
        return delta[:last.end()] if last else delta


def chat_renderer(tokenizer: PreTrainedTokenizerBase, tcfg: TemplateConfig) -> ChatRenderer:
    if not tokenizer.chat_template:
        raise TemplateError("the tokenizer has no chat template: load it with load_tokenizer(path, template=NAME)")
    # Compiled through transformers so the environment (filters, raise_exception) is the one
    # apply_chat_template uses; rendering directly avoids its per-call overhead.
    template = _compile_jinja_template(tokenizer.chat_template)
    variables: dict[str, Any] = dict(tokenizer.special_tokens_map)
    if tcfg.enable_thinking is not None:
        variables["enable_thinking"] = tcfg.enable_thinking
    specials = set(tokenizer.all_special_tokens)
    specials.update(t.content for t in tokenizer.added_tokens_decoder.values() if t.special)
    pattern = "|".join(re.escape(s) for s in sorted(specials, key=len, reverse=True) if s)
    return ChatRenderer(template, variables, re.compile(pattern or r"(?!)"))


@dataclass
class Rendered:
    """A row rendered to text and cut into segments, not yet tokenized."""
    row: int
    text: str
    segments: list[Segment]
    plain_text: bool = False  # raw-text rows: tokenizer's own BOS/EOS handling, every token trained


def _with_system_prompt(conv: Conversation, tcfg: TemplateConfig) -> list[dict[str, str]]:
    messages = [{"role": m.role, "content": m.content} for m in conv.messages]
    if tcfg.system_prompt and (not messages or messages[0]["role"] != "system"):
        messages.insert(0, {"role": "system", "content": tcfg.system_prompt})
    return messages


def _prompt_end(text: str, prompt: str, not_before: int) -> int | None:
    candidates = [prompt, _TRAILING_REASONING.sub("", prompt)]
    return next((len(c) for c in candidates if len(c) >= not_before and text.startswith(c)), None)


def _response_spans(renderer: ChatRenderer, messages: list[dict[str, str]], text: str) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    for k, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        prompt = renderer.render(messages[:k], generation_prompt=True)
        start = _prompt_end(text, prompt, spans[-1][1] if spans else 0)
        turn = renderer.render(messages[:k + 1], generation_prompt=False)
        if start is None or not turn.startswith(prompt):
            raise _unstable(k)
        body = renderer.through_end_of_turn(turn[len(prompt):])
        end = next((start + len(c) for c in (body, _LEADING_REASONING.sub("", body)) if text.startswith(c, start)), None)
        if end is None:
            raise _unstable(k)
        spans.append((start, end))
    return spans


def _unstable(k: int) -> TemplateError:
    return TemplateError(f"message {k}: template is not prefix-stable (rendering the conversation up to "
                         "this assistant turn does not give a prefix of the full rendering), so its tokens cannot "
                         "be masked exactly; choose a named template (template.name / --template)")


def _segments(text: str, spans: list[tuple[int, int]], trained: set[int]) -> list[Segment]:
    segments: list[Segment] = []
    pos = 0
    for i, (start, end) in enumerate(spans):
        segments += [(text[pos:start], False), (text[start:end], i in trained)]
        pos = end
    segments.append((text[pos:], False))
    return [s for s in segments if s[0]]


def render_conversation(conv: Conversation, renderer: ChatRenderer, tcfg: TemplateConfig) -> Rendered:
    """The text of one row and its scaffold/response segments under `tcfg.loss`."""
    if conv.is_text:
        return Rendered(conv.row, conv.text, [(conv.text, True)], plain_text=True)
    messages = _with_system_prompt(conv, tcfg)
    try:
        text = renderer.render(messages, generation_prompt=False)
        spans = _response_spans(renderer, messages, text)
    except jinja2.TemplateError as err:
        raise TemplateError(f"the chat template rejected this conversation: {err}") from None
    if tcfg.loss == "full":
        # Same cuts as the other modes, so the token ids never depend on the loss mode.
        return Rendered(conv.row, text, [(piece, True) for piece, _ in _segments(text, spans, set())])
    trained = set(range(len(spans))) if tcfg.loss == "response_only" else {len(spans) - 1}
    return Rendered(conv.row, text, _segments(text, spans, trained))


def tokenize_rendered(rendered: Sequence[Rendered], tokenizer: PreTrainedTokenizerBase) -> list[Example]:
    """Tokenize every segment of every row in two batched calls and assemble the Examples."""
    chat_pieces = [s for r in rendered if not r.plain_text for s, _ in r.segments]
    plain_pieces = [r.text for r in rendered if r.plain_text]
    chat_ids = iter(_encode(tokenizer, chat_pieces, add_special_tokens=False))
    plain_ids = iter(_encode(tokenizer, plain_pieces, add_special_tokens=True))
    examples = []
    for r in rendered:
        if r.plain_text:
            ids = list(next(plain_ids))
            if tokenizer.eos_token_id is not None and (not ids or ids[-1] != tokenizer.eos_token_id):
                ids.append(tokenizer.eos_token_id)
            trained = [True] * len(ids)
        else:
            ids, trained = [], []
            for _, is_trained in r.segments:
                piece = next(chat_ids)
                ids += piece
                trained += [is_trained] * len(piece)
        if trained:
            trained[0] = False  # nothing predicts the first token
        examples.append(Example(row=r.row, input_ids=ids, trained=trained, text=r.text))
    return examples


def _encode(tokenizer: PreTrainedTokenizerBase, texts: list[str], add_special_tokens: bool) -> list[list[int]]:
    if not texts:
        return []
    return tokenizer(texts, add_special_tokens=add_special_tokens)["input_ids"]


def render_and_mask(conv: Conversation, tokenizer: PreTrainedTokenizerBase, tcfg: TemplateConfig) -> Example:
    """THE render+mask function of one row; raises TemplateError when the row cannot be masked."""
    examples, errors = render_and_mask_many([conv], tokenizer, tcfg)
    if errors:
        raise TemplateError(str(errors[0]))
    return examples[0]


def render_and_mask_many(convs: Iterable[Conversation], tokenizer: PreTrainedTokenizerBase,
                         tcfg: TemplateConfig) -> tuple[list[Example], list[RowError]]:
    """render_and_mask over many rows: one template compilation, batched tokenization; bad rows become RowErrors."""
    renderer = chat_renderer(tokenizer, tcfg) if tokenizer.chat_template else None
    rendered, errors = [], []
    for conv in convs:
        if renderer is None and not conv.is_text:
            errors.append(RowError(conv.row, "messages", "the tokenizer has no chat template: "
                                   "load it with load_tokenizer(path, template=NAME)"))
            continue
        try:
            rendered.append(render_conversation(conv, renderer, tcfg))
        except TemplateError as err:
            errors.append(RowError(conv.row, "messages", str(err)))
    return tokenize_rendered(rendered, tokenizer), errors
