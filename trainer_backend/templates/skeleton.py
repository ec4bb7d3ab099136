"""Skeletons: render a conversation SHAPE once, then fill in each row's contents with string operations.

The exact masking path (render.py) finds each response span by prefix diffs: for every assistant
turn k it renders the prompt `messages[:k]` with a generation prompt and the turn `messages[:k+1]`.
Each render walks all earlier messages through the jinja sandbox, so a row costs O(turns²) message
renders; chitchat rows have ~35 messages.

A render depends on the contents only through what the template does with them. So every render the
prefix-diff path needs is done ONCE per tuple of roles, on placeholder contents: message k's content
is the private-use marker "\\ue000k\\ue001", wrapped in `_Traced`, a `str` subclass that

- concatenates into another `_Traced` (`'<|im_start|>' + content + '<|im_end|>'`), so the output keeps
  a marker wherever a content is written verbatim, and
- records every other operation the template applies to a content (`'</think>' in content`,
  `content | trim`, `content.startswith(...)`, `len`, comparisons, slicing ...) with its result, as a
  GUARD. Results are abstracted: a string equal to its input stays the same traced value, a string
  without markers is a constant, booleans and numbers are values; any other outcome (a result that
  cuts a marker, a content used as an argument, hashing, iteration) makes the shape untraceable.

A rendered placeholder is then a list of literal pieces and content indices ("pieces"). For a real
row of that shape whose contents satisfy every guard (e.g. Llama 3's `trim` leaves the content
unchanged, Qwen3 finds no `</think>` in it), the template takes the same branches and computes the
same values, so each render equals its pieces with the real contents substituted. render.py then
runs the very same span logic on those substituted renders, so spans, errors and segments are the
slow path's, and only rows that fail a guard (or a shape the tracer cannot follow) pay for the full
prefix-diff path.

What the tracer cannot see: C-level code that reads a content's characters without calling a method
on it (a plain string's method taking the content as argument, `'%s' % (content,)`, `tojson`, the
text produced by jinja's `~`). render.py therefore still checks each row's ONE full render against
the substituted skeleton and falls back when they differ; the residual risk is a template whose
untraceable content inspection changes a prefix render but not the full render. The renders cached
here are keyed by (roles of the prefix, generation prompt), so conversations of one alternating
pattern share all their renders: a whole data set costs about two renders per distinct length.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import jinja2

_OPEN, _CLOSE = "\ue000", "\ue001"
_MARKER = re.compile(f"{_OPEN}(\\d+){_CLOSE}")

Piece = str | int   # literal text, or the index of the message whose content goes there


class Untraceable(Exception):
    """The template used a content in a way the tracer cannot replay on other contents."""


def marker(k: int) -> str:
    return f"{_OPEN}{k}{_CLOSE}"


def _has_marker_chars(s: str) -> bool:
    return _OPEN in s or _CLOSE in s


def _join(parts: Sequence[Piece]) -> str:
    return "".join(marker(p) if type(p) is int else p for p in parts)


def substitute(pieces: Sequence[Piece], contents: Sequence[str]) -> str:
    return "".join(contents[p] if type(p) is int else p for p in pieces)


# A guard: on the real value of `parts`, str.<method>(*args, **kwargs) must match `spec`.
# spec: ("same",) the value itself | ("=", constant) | ("seq", type, [spec, ...])
Guard = tuple[tuple[Piece, ...], str, tuple, tuple, tuple]


def _spec(result: Any, value: str) -> tuple:
    if result is None or type(result) in (bool, int):
        return ("=", result)
    if isinstance(result, str):
        if result == value:
            return ("same",)
        if _has_marker_chars(result):
            raise Untraceable("a string operation cut a content")
        return ("=", str(result))
    if type(result) in (list, tuple):
        return ("seq", type(result), [_spec(r, value) for r in result])
    raise Untraceable(f"a string operation returned {type(result).__name__}")


def matches(result: Any, spec: tuple, value: str) -> bool:
    kind = spec[0]
    if kind == "same":
        return type(result) is str and result == value
    if kind == "=":
        return type(result) is type(spec[1]) and result == spec[1]
    return (type(result) is spec[1] and len(result) == len(spec[2])
            and all(matches(r, s, value) for r, s in zip(result, spec[2])))


class _Traced(str):
    """A placeholder content (or a concatenation holding contents) that logs how it is inspected."""

    def __new__(cls, parts: tuple[Piece, ...], log: list, value: str | None = None):
        obj = super().__new__(cls, _join(parts) if value is None else value)
        obj._parts = parts
        obj._log = log
        return obj

    def __add__(self, other):
        if isinstance(other, _Traced):
            return _Traced(self._parts + other._parts, self._log, str.__add__(self, other))
        if isinstance(other, str):
            return _Traced(self._parts + (str.__str__(other),), self._log, str.__add__(self, other))
        return NotImplemented

    def __radd__(self, other):
        if isinstance(other, str):
            return _Traced((str.__str__(other),) + self._parts, self._log, str.__add__(other, self))
        return NotImplemented

    def __str__(self):
        # `{{ content }}` and string filters call str(); keep the trace through it
        return self

    def __hash__(self):
        raise Untraceable("a content was hashed")

    def __iter__(self):
        raise Untraceable("a content was iterated")

    def _lift(self, result: Any, spec: tuple) -> Any:
        if spec[0] == "same":
            return self
        if spec[0] == "=":
            return result
        return spec[1](self._lift(r, s) for r, s in zip(result, spec[2]))


def _traced_method(name: str) -> Callable:
    base = getattr(str, name)

    def method(self, *args, **kwargs):
        if any(isinstance(a, _Traced) for a in (*args, *kwargs.values())):
            raise Untraceable(f"a content was an argument of str.{name}")
        value = str.__str__(self)
        result = base(value, *args, **kwargs)
        if result is NotImplemented:
            return result
        spec = _spec(result, value)
        self._log.append((self._parts, name, args, tuple(sorted(kwargs.items())), spec))
        return self._lift(result, spec)
    method.__name__ = name
    return method


_PASSTHROUGH = {"__add__", "__radd__", "__str__", "__hash__", "__iter__", "__new__", "__init__", "__getattribute__",
                "__setattr__", "__delattr__", "__init_subclass__", "__subclasshook__", "__class__", "__doc__",
                "__getnewargs__", "__reduce__", "__reduce_ex__", "__sizeof__", "__dir__", "__getstate__"}
for _name in dir(str):
    if _name not in _PASSTHROUGH and callable(getattr(str, _name)) and _name != "maketrans":
        setattr(_Traced, _name, _traced_method(_name))


@dataclass(frozen=True)
class TracedRender:
    pieces: tuple[Piece, ...]
    guards: tuple[Guard, ...]

    @property
    def format_string(self) -> str:
        """The pieces as a str.format pattern: substituting contents becomes one C-level call."""
        return "".join("{%d}" % p if type(p) is int else p.replace("{", "{{").replace("}", "}}") for p in self.pieces)


def trace_render(render: Callable[[list[dict[str, str]], bool], str], roles: Sequence[str],
                 generation_prompt: bool) -> TracedRender:
    """Render placeholder messages of `roles`; raises Untraceable or the template's own errors."""
    log: list[Guard] = []
    messages = [{"role": role, "content": _Traced((k,), log)} for k, role in enumerate(roles)]
    text = str.__str__(render(messages, generation_prompt))
    pieces: list[Piece] = []
    pos = 0
    for m in _MARKER.finditer(text):
        pieces += [text[pos:m.start()], int(m.group(1))]
        pos = m.end()
    pieces.append(text[pos:])
    if any(type(p) is str and _has_marker_chars(p) for p in pieces) or \
            any(type(p) is int and p >= len(roles) for p in pieces):
        raise Untraceable("the output holds a damaged content marker")
    guards = {repr(g[:4]): g for g in log}   # the operation determines the recorded result
    return TracedRender(tuple(p for p in pieces if p != ""), tuple(guards.values()))


@dataclass(frozen=True)
class Skeleton:
    """What one shape needs: the renders the prefix-diff path asks for, and the guards they rely on."""
    formats: dict[tuple[int, bool], str]   # (prefix length, generation prompt) -> TracedRender.format_string
    guards: tuple[Guard, ...]

    def holds_for(self, contents: Sequence[str]) -> bool:
        for parts, name, args, kwargs, spec in self.guards:
            value = substitute(parts, contents)
            try:
                result = getattr(str, name)(value, *args, **dict(kwargs))
            except Exception:
                return False
            if not matches(result, spec, value):
                return False
        return True

    def render(self, n_messages: int, generation_prompt: bool, contents: Sequence[str]) -> str:
        """The rendering of the first `n_messages` messages (`contents` substituted)."""
        return self.formats[n_messages, generation_prompt].format(*contents)


def needed_renders(roles: Sequence[str]) -> list[tuple[int, bool]]:
    """The renders the prefix-diff path asks for: (prefix length, generation prompt)."""
    needed = [(len(roles), False)]
    for k, role in enumerate(roles):
        if role == "assistant":
            needed += [(k, True), (k + 1, False)]
    return needed


RenderKey = tuple[tuple[str, ...], bool]   # (roles of the rendered messages, generation prompt)


class SkeletonCache:
    """Skeletons per shape for one render+mask call (one template, one set of template variables)."""

    def __init__(self, render: Callable[[list[dict[str, str]], bool], str]):
        self._render = render
        self._renders: dict[RenderKey, TracedRender | None] = {}
        self._skeletons: dict[tuple[str, ...], Skeleton | None] = {}
        self._formats: dict[int, str] = {}   # by id of a TracedRender held in _renders

    def missing(self, shapes: Sequence[tuple[str, ...]]) -> list[RenderKey]:
        """The traced renders `shapes` need that are not made yet, each once."""
        keys = {(roles[:n], gp): None for roles in shapes for n, gp in needed_renders(roles)}
        return [key for key in keys if key not in self._renders]

    def trace(self, keys: Sequence[RenderKey]) -> dict[RenderKey, TracedRender | None]:
        return {key: self._traced(*key) for key in keys}

    def add(self, traced: dict[RenderKey, TracedRender | None]) -> None:
        """Renders traced elsewhere (a worker process) by the same template and variables."""
        self._renders.update(traced)

    def _traced(self, roles: tuple[str, ...], generation_prompt: bool) -> TracedRender | None:
        key = (roles, generation_prompt)
        if key not in self._renders:
            try:
                self._renders[key] = trace_render(self._render, roles, generation_prompt)
            except (Untraceable, jinja2.TemplateError, TypeError, ValueError, AttributeError, IndexError, KeyError):
                self._renders[key] = None   # rows of this shape take the slow path, which reports errors
        return self._renders[key]

    def skeleton(self, roles: tuple[str, ...]) -> Skeleton | None:
        if roles not in self._skeletons:
            self._skeletons[roles] = self._build(roles)
        return self._skeletons[roles]

    def _build(self, roles: tuple[str, ...]) -> Skeleton | None:
        renders = {}
        for n, generation_prompt in needed_renders(roles):
            traced = self._traced(roles[:n], generation_prompt)
            if traced is None:
                return None
            renders[n, generation_prompt] = traced
        guards: dict[str, Guard] = {}
        for traced in {id(r): r for r in renders.values()}.values():
            for guard in traced.guards:
                guards.setdefault(repr(guard[:4]), guard)   # the operation determines the recorded result
        return Skeleton({key: self._format(r) for key, r in renders.items()}, tuple(guards.values()))

    def _format(self, traced: TracedRender) -> str:
        key = id(traced)
        if key not in self._formats:
            self._formats[key] = traced.format_string
        return self._formats[key]
