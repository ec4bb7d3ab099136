"""Render a Conversation with a chat template and mark exactly the tokens the model must learn.

How the mask stays exact: the response spans are found in the rendered text by prefix diffs
(the prompt rendered with `add_generation_prompt` must be a prefix of the full render; the turn
rendered on its own says where it ends), never by searching marker strings. The rendered text is
then tokenized ONCE, as a whole, so the ids are always the tokenizer's own encoding of the text
(`tokenizer(text, add_special_tokens=False)`: what apply_chat_template gives at inference, with no
extra SentencePiece `▁` at a segment start), and each token's character offsets say which span it
falls in.

Where a token straddles a span boundary (a byte-level BPE merge of the prompt's last newline with an
answer that starts with one, e.g. Qwen's `\n\n`), the rule is: a token is trained when its FIRST
character is in a trained span. At inference the prompt is given and every generated token starts
after it, so a token that starts in the prompt is never one the model generates; the answer's leading
characters it absorbed stay untrained. (Special tokens never merge, so ends of turn are exact.)

Speed without giving that up (skeleton.py): the renders the prefix diffs need are made once per
conversation SHAPE (its tuple of roles, under this call's template variables) on traced placeholder
contents; a row whose contents pass the shape's guards gets them by substituting its contents, and
its one real full render must equal the substituted skeleton. The span logic below then runs
unchanged on those renders, so a row gets exactly the spans (or the error) of the slow path, which
any row failing a check takes. `fast=False` forces the slow path everywhere (tests compare both).
Large inputs are rendered in a process pool of two (forked, rows in order), and the rows are
tokenized in one call of the Rust tokenizer's batch encoder.

Rendering stops at the length limit (max_seq_len, or max_tokens when larger): a row whose text may
hold more tokens is tokenized on growing prefixes, each cut just after a special token (the tokenizer
splits special tokens out first, so a prefix's tokens are exactly the first tokens of the whole text),
until one holds more than the limit. The row keeps that prefix (its length policy then truncates or
drops it, as it would the whole row; the whole text is encoded once more, only for its token count,
which the tokens cut are counted from), and no span is looked for in turns that start beyond the
limit. The prefix-diff renders then grow with the turns that fit in the limit, not with the
conversation; very long conversations never take the skeleton path (its traces grow with the square
of the turns).
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
from ..messages import msg
from .errors import TemplateError
from .example import Example
from .skeleton import SkeletonCache

# Reasoning templates (Qwen3, DeepSeek-R1) drop `<think>` blocks from assistant turns once they are
# history; the turn must then be matched in that stripped form.
LEADING_REASONING = re.compile(r"^<think>.*?</think>\n*", re.DOTALL)  # Qwen3 lstrips only newlines
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
        last = self._last_special(delta)
        return delta[:last.end()] if last else delta

    def end_of_turn(self, body: str) -> str:
        """The special token that ends `body` (a turn cut by through_end_of_turn), or ''."""
        last = self._last_special(body)
        return last.group() if last and last.end() == len(body) else ""

    def _last_special(self, text: str) -> re.Match | None:
        last = None
        for last in self.special_tokens.finditer(text):
            pass
        return last


def chat_renderer(tokenizer: PreTrainedTokenizerBase, tcfg: TemplateConfig) -> ChatRenderer:
    if not tokenizer.chat_template:
        raise TemplateError(msg("row.no_chat_template"))
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
    unlike_inference: int = 0  # trained assistant turns rendered unlike a turn the model generates
    whole_tokens: int | None = None  # tokens of the whole row when `text` stops at the length limit


def _with_system_prompt(conv: Conversation, tcfg: TemplateConfig) -> list[dict[str, str]]:
    messages = [{"role": m.role, "content": m.content} for m in conv.messages]
    if tcfg.system_prompt and (not messages or messages[0]["role"] != "system"):
        messages.insert(0, {"role": "system", "content": tcfg.system_prompt})
    return messages


def _prompt_end(text: str, prompt: str, not_before: int) -> tuple[int | None, bool]:
    """Where the turn starts in `text`, and whether the whole generation prompt precedes it there
    (a reasoning template writes its empty think block only in the prompt of the turn generated)."""
    for c, whole in ((prompt, True), (_TRAILING_REASONING.sub("", prompt), False)):
        if len(c) >= not_before and text.startswith(c):
            return len(c), whole
    return None, False


def _turn_end(renderer: ChatRenderer, text: str, start: int, body: str, content: str) -> tuple[int | None, bool]:
    """Where the turn that starts at `start` ends in `text`, and whether it is written there as the
    model generates it (`body`, the turn rendered last). Reasoning templates write a history turn
    without its think block, and Qwen3 writes it verbatim where it lstrips the last turn."""
    history_forms = (LEADING_REASONING.sub("", body), content + renderer.end_of_turn(body))
    for c, as_generated in ((body, True), *((h, False) for h in history_forms)):
        if text.startswith(c, start):
            return start + len(c), as_generated
    return None, False


def _response_spans(renderer: ChatRenderer, render: Callable[[int, bool], str], messages: list[dict[str, str]],
                    text: str, limit: int | None = None) -> tuple[list[tuple[int, int]], list[bool]]:
    """`render(n, generation_prompt)` is the rendering of `messages[:n]`; `text` is the full rendering.

    Returns the spans of the assistant turns that start before character `limit` (all when None) and,
    per span, whether the turn is written in `text` unlike the way the model generates it."""
    spans: list[tuple[int, int]] = []
    unlike: list[bool] = []
    for k, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        prompt = render(k, True)
        start, whole_prompt = _prompt_end(text, prompt, spans[-1][1] if spans else 0)
        if start is not None and limit is not None and start >= limit:
            break
        turn = render(k + 1, False)
        if start is None or not turn.startswith(prompt):
            raise _unstable(k)
        end, as_generated = _turn_end(renderer, text, start, renderer.through_end_of_turn(turn[len(prompt):]),
                                      message["content"])
        if end is None:
            raise _unstable(k)
        spans.append((start, end))
        unlike.append(not (whole_prompt and as_generated))
    return spans, unlike


def _unstable(k: int) -> TemplateError:
    return TemplateError(msg("row.not_prefix_stable", message=k))


def _segments(text: str, spans: list[tuple[int, int]], trained: set[int]) -> list[Segment]:
    segments: list[Segment] = []
    pos = 0
    for i, (start, end) in enumerate(spans):
        segments += [(text[pos:start], False), (text[start:end], i in trained)]
        pos = end
    segments.append((text[pos:], False))
    return [s for s in segments if s[0]]


def _rendered(conv: Conversation, text: str, spans: list[tuple[int, int]], unlike: list[bool],
              tcfg: TemplateConfig, cut: Cut | None = None) -> Rendered:
    whole = cut.tokens if cut else None
    if cut is not None:
        text = text[:cut.end]
        spans = [(start, min(end, cut.end)) for start, end in spans]
    if tcfg.loss == "full":
        return Rendered(conv.row, text, [(text, True)], unlike_inference=sum(unlike), whole_tokens=whole)
    trained = set(range(len(spans))) if tcfg.loss == "response_only" else {len(spans) - 1}
    last_is_final = bool(spans) and len(spans) == sum(m.role == "assistant" for m in conv.messages)
    if tcfg.loss == "last_turn" and not last_is_final:
        trained = set()   # the last assistant turn starts beyond the length limit: nothing is trained
    return Rendered(conv.row, text, _segments(text, spans, trained), unlike_inference=sum(unlike[i] for i in trained),
                    whole_tokens=whole)


@dataclass(frozen=True)
class Cut:
    """Where a long row's text stops: `limit` is the end of the last token within the length limit,
    `end` the end of the tokenized prefix kept (after a special token, past the limit), `tokens`
    the whole text's token count (the tokens truncation cuts are counted from it)."""
    limit: int
    end: int
    tokens: int


def render_conversation(conv: Conversation, renderer: ChatRenderer, tcfg: TemplateConfig,
                        cut_at: Callable[[str], Cut | None] = lambda text: None) -> Rendered:
    """The text of one row and its scaffold/response segments under `tcfg.loss` (the slow, reference path).

    `cut_at(text)` says where the length limit falls in `text` (None: the whole text fits)."""
    if conv.is_text:
        return Rendered(conv.row, conv.text, [(conv.text, True)], plain_text=True)
    messages = _with_system_prompt(conv, tcfg)
    try:
        text = renderer.render(messages, generation_prompt=False)
        cut = cut_at(text)
        spans, unlike = _response_spans(renderer, lambda n, gp: renderer.render(messages[:n], gp), messages, text,
                                        cut.limit if cut else None)
    except jinja2.TemplateError as err:
        raise TemplateError(msg("row.template_rejected", detail=str(err))) from None
    return _rendered(conv, text, spans, unlike, tcfg, cut)


# Skeleton traces cost the square of a shape's turns: longer conversations take the slow path, which
# stops at the length limit.
SKELETON_MAX_MESSAGES = 128


class ConversationRenderer:
    """render_conversation for many rows of one call, with the skeletons of the shapes seen so far."""

    def __init__(self, renderer: ChatRenderer, tcfg: TemplateConfig, fast: bool = True,
                 tokenizer: PreTrainedTokenizerBase | None = None):
        self.renderer = renderer
        self.tcfg = tcfg
        self.tokenizer = tokenizer   # finds the length limit in long rows (None: whole rows)
        self.skeletons = SkeletonCache(renderer.render) if fast else None
        self.fast_rows = 0   # rows that took the skeleton path

    def __call__(self, conv: Conversation) -> Rendered:
        if self.skeletons is not None and not conv.is_text and len(conv.messages) < SKELETON_MAX_MESSAGES:
            rendered = self._fast(conv)
            if rendered is not None:
                self.fast_rows += 1
                return rendered
        return render_conversation(conv, self.renderer, self.tcfg, self.cut_at)

    def cut_at(self, text: str) -> Cut | None:
        """Where the length limit falls in `text` (None when the whole text fits)."""
        n = max(self.tcfg.max_seq_len, self.tcfg.max_tokens or 0)
        if self.tokenizer is None or len(text.encode("utf-8")) < n:   # a token holds at least one byte
            return None
        end = 0
        while end < len(text):
            # Prefixes about double each time, so the whole search costs about two encodings of the last.
            after = self.renderer.special_tokens.search(text, max(4 * n, 2 * end))
            end = after.end() if after else len(text)
            ids, offsets = encode_with_offsets(self.tokenizer, [text[:end]])[0]
            if len(ids) > n:
                # One encoding of the whole text, for the rows cut only: a count, no render grows with it.
                whole = ids if end == len(text) else encode_with_offsets(self.tokenizer, [text])[0][0]
                return Cut(offsets[n - 1][1], end, len(whole))
        return None

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
            cut = self.cut_at(text)
            spans, unlike = _response_spans(self.renderer, lambda n, gp: skeleton.render(n, gp, contents),
                                            messages, text, cut.limit if cut else None)
        except (jinja2.TemplateError, TemplateError):
            return None   # the slow path says why
        return _rendered(conv, text, spans, unlike, self.tcfg, cut)


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
            out.append(TemplateError(msg("row.no_chat_template")))
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
    """Tokenize every row's whole text in one batched call and mark the tokens that start in a trained segment."""
    chat = [r for r in rendered if not r.plain_text]
    encoded = iter(encode_with_offsets(tokenizer, [r.text for r in chat], fast))
    plain_ids = iter(_encode(tokenizer, [r.text for r in rendered if r.plain_text], add_special_tokens=True))
    examples = []
    for r in rendered:
        if r.plain_text:
            ids = list(next(plain_ids))
            if tokenizer.eos_token_id is not None and (not ids or ids[-1] != tokenizer.eos_token_id):
                ids.append(tokenizer.eos_token_id)
            trained = [True] * len(ids)
        else:
            ids, offsets = next(encoded)
            ids, trained = list(ids), trained_flags(offsets, _trained_spans(r.segments))
        if trained:
            trained[0] = False  # nothing predicts the first token
        examples.append(Example(row=r.row, input_ids=ids, trained=trained, text=r.text,
                                unlike_inference=r.unlike_inference, whole_tokens=r.whole_tokens))
    return examples


def _trained_spans(segments: list[Segment]) -> list[tuple[int, int]]:
    spans, pos = [], 0
    for piece, trained in segments:
        if trained:
            spans.append((pos, pos + len(piece)))
        pos += len(piece)
    return spans


def token_starts(offsets: Sequence[tuple[int, int]]) -> list[int]:
    """The first character each token owns: its offset start, or the end of the tokens before it when
    that comes first (a trimmed leading space belongs to the token after it). Byte-level pieces of
    one letter share its offsets: the first piece owns it."""
    starts, seen = [], 0
    for start, end in offsets:
        starts.append(min(start, seen))
        seen = max(seen, end)
    return starts


def trained_flags(offsets: Sequence[tuple[int, int]], spans: list[tuple[int, int]]) -> list[bool]:
    """Token i is trained when the first character it owns lies in one of `spans` (sorted, disjoint)."""
    flags, j = [], 0
    for key in token_starts(offsets):
        while j < len(spans) and spans[j][1] <= key:
            j += 1
        flags.append(j < len(spans) and spans[j][0] <= key)
    return flags


def token_texts(tokenizer: PreTrainedTokenizerBase, text: str) -> tuple[list[int], list[str]]:
    """(ids, the text each token owns): pieces with their spaces, whole letters where byte-level
    tokens split one (its first piece shows it), and together the whole text. For display."""
    ids, offsets = encode_with_offsets(tokenizer, [text])[0]
    starts = token_starts(offsets)
    ends = starts[1:] + [len(text)]
    return list(ids), [text[a:max(a, b)] for a, b in zip(starts, ends)]


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


def encode_with_offsets(tokenizer: PreTrainedTokenizerBase, texts: list[str],
                        fast: bool = True) -> list[tuple[list[int], list[tuple[int, int]]]]:
    """[(ids, character offsets)] of each text as `tokenizer(text, add_special_tokens=False)` encodes it;
    through the Rust batch encoder (parallel unless TOKENIZERS_PARALLELISM=false) when it can."""
    if not texts:
        return []
    backend = _backend(tokenizer) if fast else None
    if backend is None:
        try:
            out = tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True)
        except NotImplementedError:
            raise TemplateError(f"{type(tokenizer).__name__} gives no character offsets, which exact masks need: "
                                "use a fast tokenizer (a model folder with tokenizer.json)") from None
        return [(list(i), [tuple(o) for o in off]) for i, off in zip(out["input_ids"], out["offset_mapping"])]
    split_special = bool(getattr(tokenizer, "split_special_tokens", False))
    if backend.encode_special_tokens != split_special:
        backend.encode_special_tokens = split_special
    return [(e.ids, e.offsets) for e in backend.encode_batch(texts, add_special_tokens=False)]


def prompt_ids(conv: Conversation, tokenizer: PreTrainedTokenizerBase, tcfg: TemplateConfig) -> list[int]:
    """The ids a model generates after at inference: `conv` (ending with a user turn) rendered with the
    run's template settings (system prompt, thinking) and the generation prompt, encoded as training encodes."""
    if not tokenizer.chat_template:
        raise TemplateError(msg("row.no_chat_template"))
    try:
        text = chat_renderer(tokenizer, tcfg).render(_with_system_prompt(conv, tcfg), generation_prompt=True)
    except jinja2.TemplateError as err:
        raise TemplateError(msg("row.template_rejected", detail=str(err))) from None
    return list(encode_with_offsets(tokenizer, [text])[0][0])


def render_and_mask(conv: Conversation, tokenizer: PreTrainedTokenizerBase, tcfg: TemplateConfig,
                    fast: bool = True) -> Example:
    """THE render+mask function of one row; raises TemplateError when the row cannot be masked.

    Contract (every caller: trainer, previews, preference pairs): `tcfg` is the run's whole
    TemplateConfig (template variables, system prompt, loss mode, length limit); the result's
    `input_ids == tokenizer(example.text, add_special_tokens=False).input_ids` (raw-text rows: with
    the tokenizer's special tokens and a final EOS), and `trained[i]` is True exactly for the tokens
    whose first character lies in a trained assistant turn (from its first character through its
    end-of-turn token). E.g. ChatML, `loss="response_only"`, user "Hi", assistant "Hello":
    text `<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello<|im_end|>\n`, trained tokens
    `Hello`, `<|im_end|>`. Rows longer than the limit keep a prefix of more than max_seq_len tokens
    (apply_length_policy cuts or drops it)."""
    examples, errors = render_and_mask_many([conv], tokenizer, tcfg, fast=fast)
    if errors:
        raise TemplateError(errors[0].described())
    return examples[0]


def render_and_mask_many(convs: Iterable[Conversation], tokenizer: PreTrainedTokenizerBase,
                         tcfg: TemplateConfig, fast: bool = True,
                         workers: int | None = None) -> tuple[list[Example], list[RowError]]:
    """render_and_mask over many rows: one template compilation, batched tokenization; bad rows become RowErrors.

    `fast=False` takes the reference path for every row (same results, more renders per row);
    `workers` overrides the process pool size (default: 2 above PARALLEL_MIN_ROWS rows, else none)."""
    convs = list(convs)
    renderer = ConversationRenderer(chat_renderer(tokenizer, tcfg), tcfg, fast, tokenizer) \
        if tokenizer.chat_template else None
    rendered, errors = [], []
    for conv, outcome in zip(convs, _render_all(convs, renderer, workers)):
        if isinstance(outcome, TemplateError):
            errors.append(RowError(conv.row, "messages", outcome.notice))
        else:
            rendered.append(outcome)
    return tokenize_rendered(rendered, tokenizer, fast), errors
