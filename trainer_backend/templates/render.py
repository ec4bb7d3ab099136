"""Render a Conversation with a chat template and mark exactly the tokens the model must learn.

How the mask stays exact: the response spans are found in the rendered text by prefix diffs
(the prompt rendered with `add_generation_prompt` must be a prefix of the full render; the turn
rendered on its own says where it ends), never by searching marker strings. The text is then cut
into alternating scaffold/response segments and each segment is tokenized on its own, so no token
straddles a boundary and the trained tokens are those the model generates after the prompt at
inference.

Speed without giving that up (skeleton.py): the renders the prefix diffs need are made once per
conversation SHAPE (its tuple of roles, under this call's template variables) on traced placeholder
contents; a row whose contents pass the shape's guards gets them by substituting its contents, and
its one real full render must equal the substituted skeleton. The span logic below then runs
unchanged on those renders, so a row gets exactly the spans (or the error) of the slow path, which
any row failing a check takes. `fast=False` forces the slow path everywhere (tests compare both).
Large inputs are rendered in a process pool of two (forked, rows in order), and the segments are
tokenized in one call of the Rust tokenizer's batch encoder, each distinct segment once.
"""
from __future__ import annotations

import multiprocessing
import os
import re
import signal
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

import jinja2
from transformers import PreTrainedTokenizerBase
from transformers.utils.chat_template_utils import _compile_jinja_template

from ..config import TemplateConfig
from ..data.conversation import Conversation, RowError
from .errors import TemplateError
from .example import Example
from .skeleton import SkeletonCache

NO_CHAT_TEMPLATE = "the tokenizer has no chat template: load it with load_tokenizer(path, template=NAME)"

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
        raise TemplateError(NO_CHAT_TEMPLATE)
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


def _response_spans(renderer: ChatRenderer, render: Callable[[int, bool], str], messages: list[dict[str, str]],
                    text: str) -> list[tuple[int, int]]:
    """`render(n, generation_prompt)` is the rendering of `messages[:n]`; `text` is the full rendering."""
    spans: list[tuple[int, int]] = []
    for k, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        prompt = render(k, True)
        start = _prompt_end(text, prompt, spans[-1][1] if spans else 0)
        turn = render(k + 1, False)
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


def _rendered(conv: Conversation, text: str, spans: list[tuple[int, int]], tcfg: TemplateConfig) -> Rendered:
    if tcfg.loss == "full":
        # Same cuts as the other modes, so the token ids never depend on the loss mode.
        return Rendered(conv.row, text, [(piece, True) for piece, _ in _segments(text, spans, set())])
    trained = set(range(len(spans))) if tcfg.loss == "response_only" else {len(spans) - 1}
    return Rendered(conv.row, text, _segments(text, spans, trained))


def render_conversation(conv: Conversation, renderer: ChatRenderer, tcfg: TemplateConfig) -> Rendered:
    """The text of one row and its scaffold/response segments under `tcfg.loss` (the slow, reference path)."""
    if conv.is_text:
        return Rendered(conv.row, conv.text, [(conv.text, True)], plain_text=True)
    messages = _with_system_prompt(conv, tcfg)
    try:
        text = renderer.render(messages, generation_prompt=False)
        spans = _response_spans(renderer, lambda n, gp: renderer.render(messages[:n], gp), messages, text)
    except jinja2.TemplateError as err:
        raise TemplateError(f"the chat template rejected this conversation: {err}") from None
    return _rendered(conv, text, spans, tcfg)


class ConversationRenderer:
    """render_conversation for many rows of one call, with the skeletons of the shapes seen so far."""

    def __init__(self, renderer: ChatRenderer, tcfg: TemplateConfig, fast: bool = True):
        self.renderer = renderer
        self.tcfg = tcfg
        self.skeletons = SkeletonCache(renderer.render) if fast else None
        self.fast_rows = 0   # rows that took the skeleton path

    def __call__(self, conv: Conversation) -> Rendered:
        if self.skeletons is not None and not conv.is_text:
            rendered = self._fast(conv)
            if rendered is not None:
                self.fast_rows += 1
                return rendered
        return render_conversation(conv, self.renderer, self.tcfg)

    def _fast(self, conv: Conversation) -> Rendered | None:
        messages = _with_system_prompt(conv, self.tcfg)
        contents = [m["content"] for m in messages]
        if not all(type(c) is str for c in contents):
            return None
        skeleton = self.skeletons.skeleton(tuple(m["role"] for m in messages))
        if skeleton is None or not skeleton.holds_for(contents):
            return None
        text = skeleton.render(len(messages), False, contents)
        try:
            if text != self.renderer.render(messages, generation_prompt=False):
                return None
            spans = _response_spans(self.renderer, lambda n, gp: skeleton.render(n, gp, contents), messages, text)
        except (jinja2.TemplateError, TemplateError):
            return None   # the slow path says why
        return _rendered(conv, text, spans, self.tcfg)


# Below this many rows a process pool costs more than it saves (forking, sending the texts back).
PARALLEL_MIN_ROWS = 2000
WORKERS = 2
_worker_renderer: ConversationRenderer | None = None   # set in each forked worker, never in the parent


def _init_worker(renderer: ConversationRenderer) -> None:
    """A forked worker inherits the parent's signal handlers: the trainer's SIGTERM handler only
    sets its stop flag, so a worker keeping it would survive Pool.terminate() and hang the exit of
    the pool. Workers die on SIGTERM and leave SIGINT to the parent. SIGTERM reaches a worker
    blocked (see _pool) and is unblocked only here, after the reset: a worker terminated before its
    initializer ran dies right here instead of catching the signal with the trainer's handler."""
    global _worker_renderer
    _worker_renderer = renderer
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})


@contextmanager
def _pool(context, workers: int, renderer: ConversationRenderer):
    """A pool whose workers all start with SIGTERM blocked: the mask is inherited through fork (and
    by the pool's helper thread, which forks replacement workers), the handler is not reset yet."""
    before = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    try:
        pool = context.Pool(workers, initializer=_init_worker, initargs=(renderer,))
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, before)
    with pool:
        yield pool


def _render_chunk(convs: list[Conversation]) -> list[Rendered | TemplateError]:
    return _render_rows(convs, _worker_renderer)


def _trace_chunk(keys: list) -> dict:
    return _worker_renderer.skeletons.trace(keys)


def _render_rows(convs: Sequence[Conversation], renderer: ConversationRenderer | None) -> list[Rendered | TemplateError]:
    out: list[Rendered | TemplateError] = []
    for conv in convs:
        if renderer is None and not conv.is_text:
            out.append(TemplateError(NO_CHAT_TEMPLATE))
            continue
        try:
            out.append(renderer(conv) if renderer is not None else
                       Rendered(conv.row, conv.text, [(conv.text, True)], plain_text=True))
        except TemplateError as err:
            out.append(err)
    return out


def _balanced(items: list, cost: Callable[[Any], int], n: int) -> list[list]:
    """`items` dealt into `n` lists of about equal total cost (largest first)."""
    groups: list[list] = [[] for _ in range(n)]
    totals = [0] * n
    for item in sorted(items, key=cost, reverse=True):
        i = totals.index(min(totals))
        groups[i].append(item)
        totals[i] += cost(item)
    return [g for g in groups if g]


def _render_all(convs: list[Conversation], renderer: ConversationRenderer | None,
                workers: int | None) -> list[Rendered | TemplateError]:
    if workers is None:
        workers = WORKERS if len(convs) > PARALLEL_MIN_ROWS and (os.cpu_count() or 1) > 1 else 1
    if workers <= 1 or renderer is None or "fork" not in multiprocessing.get_all_start_methods():
        return _render_rows(convs, renderer)
    context = multiprocessing.get_context("fork")   # workers inherit the compiled template
    if renderer.skeletons is not None:
        # The traced renders of the longest shapes are the costliest part (each is one slow-path row):
        # trace them all first, spread by length, so that no worker redoes them.
        shapes = list(dict.fromkeys(tuple(m["role"] for m in _with_system_prompt(c, renderer.tcfg))
                                    for c in convs if not c.is_text))
        keys = renderer.skeletons.missing(shapes)
        if keys:
            with _pool(context, workers, renderer) as pool:
                for traced in pool.map(_trace_chunk, _balanced(keys, lambda key: len(key[0]) + 1, workers * 4),
                                       chunksize=1):
                    renderer.skeletons.add(traced)
    # Chunks keep the rows in order and amortize the transfers.
    size = -(-len(convs) // (workers * 4))
    chunks = [convs[i:i + size] for i in range(0, len(convs), size)]
    with _pool(context, workers, renderer) as pool:
        return [r for chunk in pool.map(_render_chunk, chunks, chunksize=1) for r in chunk]


def tokenize_rendered(rendered: Sequence[Rendered], tokenizer: PreTrainedTokenizerBase,
                      fast: bool = True) -> list[Example]:
    """Tokenize every segment of every row in batched calls and assemble the Examples."""
    chat_pieces = [s for r in rendered if not r.plain_text for s, _ in r.segments]
    plain_pieces = [r.text for r in rendered if r.plain_text]
    encode = _encode_fast if fast and _backend(tokenizer) is not None else _encode
    chat_ids = iter(encode(tokenizer, chat_pieces, add_special_tokens=False))
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


def _backend(tokenizer: PreTrainedTokenizerBase):
    """The Rust tokenizer when calling it directly gives what `tokenizer(texts)` gives, else None."""
    backend = getattr(tokenizer, "_tokenizer", None)
    if not getattr(tokenizer, "is_fast", False) or backend is None or not hasattr(backend, "encode_batch"):
        return None
    if backend.truncation is not None or backend.padding is not None:
        return None
    return backend


def _encode_fast(tokenizer: PreTrainedTokenizerBase, texts: list[str], add_special_tokens: bool) -> list[list[int]]:
    """`_encode` through the Rust batch encoder (parallel unless TOKENIZERS_PARALLELISM=false), without
    offsets, each distinct text once: rows share their scaffolding and many short turns."""
    if not texts:
        return []
    backend = _backend(tokenizer)
    split_special = bool(getattr(tokenizer, "split_special_tokens", False))
    if backend.encode_special_tokens != split_special:
        backend.encode_special_tokens = split_special
    distinct = list(dict.fromkeys(texts))
    encode_batch = getattr(backend, "encode_batch_fast", backend.encode_batch)
    ids = dict(zip(distinct, (e.ids for e in encode_batch(distinct, add_special_tokens=add_special_tokens))))
    return [ids[t] for t in texts]


def render_and_mask(conv: Conversation, tokenizer: PreTrainedTokenizerBase, tcfg: TemplateConfig,
                    fast: bool = True) -> Example:
    """THE render+mask function of one row; raises TemplateError when the row cannot be masked."""
    examples, errors = render_and_mask_many([conv], tokenizer, tcfg, fast=fast)
    if errors:
        raise TemplateError(str(errors[0]))
    return examples[0]


def render_and_mask_many(convs: Iterable[Conversation], tokenizer: PreTrainedTokenizerBase,
                         tcfg: TemplateConfig, fast: bool = True,
                         workers: int | None = None) -> tuple[list[Example], list[RowError]]:
    """render_and_mask over many rows: one template compilation, batched tokenization; bad rows become RowErrors.

    `fast=False` takes the reference path for every row (same results, O(turns²) renders per row);
    `workers` overrides the process pool size (default: 2 above PARALLEL_MIN_ROWS rows, else none)."""
    convs = list(convs)
    renderer = ConversationRenderer(chat_renderer(tokenizer, tcfg), tcfg, fast) if tokenizer.chat_template else None
    rendered, errors = [], []
    for conv, outcome in zip(convs, _render_all(convs, renderer, workers)):
        if isinstance(outcome, TemplateError):
            errors.append(RowError(conv.row, "messages", str(outcome)))
        else:
            rendered.append(outcome)
    return tokenize_rendered(rendered, tokenizer, fast), errors
