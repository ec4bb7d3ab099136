"""Convert one raw record of each dataset format into a Conversation, collecting row errors."""
from __future__ import annotations

from typing import Callable, NamedTuple

from ..messages import msg
from .conversation import Conversation, Message, RowError
from .text import type_name
from .turns import RowIssues, Turn
from .validate import check_turns



class Converted(NamedTuple):
    """One row after conversion: the conversation, or None with the row's errors; `trimmed` says a
    trailing user turn (a question nobody answered) was left out."""
    conversation: Conversation | None
    errors: list[RowError]
    trimmed: bool = False


# (row index, record, drop a trailing user turn) -> Converted
Converter = Callable[[int, dict, bool], Converted]

# The fields each format reads; a column mapping may only target these.
FORMAT_FIELDS: dict[str, tuple[str, ...]] = {
    "alpaca": ("instruction", "input", "output", "system", "history"),
    "sharegpt": ("conversations", "system"),
    "messages": ("messages",),
    "text": ("text",),
    "preference": ("prompt", "chosen", "rejected"),
    "kto": ("prompt", "completion", "label"),
}
SHAREGPT_ROLES = {"system": "system", "human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant"}
MESSAGES_ROLES = {"system": "system", "user": "user", "assistant": "assistant"}


def _finish(issues: RowIssues, turns: list[Turn], container: str, trimmed: bool = False) -> Converted:
    if not issues.errors:
        check_turns(turns, issues, container)
    if issues.errors:
        return Converted(None, issues.errors)
    messages = tuple(Message(turn.role, turn.content) for turn in turns)
    return Converted(Conversation(row=issues.row, messages=messages), [], trimmed)


def _without_trailing_user(turns: list[Turn]) -> bool:
    """Drop a last user turn that follows an answered exchange (chat logs often end on a question
    nobody answered); a chat with no assistant turn at all stays as it is and is reported."""
    if len(turns) > 1 and turns[-1].role == "user" and any(turn.role == "assistant" for turn in turns[:-1]):
        turns.pop()
        return True
    return False


def convert_alpaca(row: int, record: dict, drop_trailing_user: bool = False) -> Converted:
    issues = RowIssues(row)
    turns: list[Turn] = []
    system = issues.optional_text(record, "system")
    if system.strip():
        turns.append(Turn("system", system, "system"))
    turns += _history_turns(record, issues)
    instruction = issues.required_text(record, "instruction")
    extra = issues.optional_text(record, "input")
    output = issues.required_text(record, "output")
    if instruction is not None:
        prompt = f"{instruction}\n\n{extra}" if extra.strip() else instruction
        turns.append(Turn("user", prompt, "instruction"))
    if output is not None:
        turns.append(Turn("assistant", output, "output"))
    return _finish(issues, turns, "instruction")


def _history_turns(record: dict, issues: RowIssues) -> list[Turn]:
    turns = []
    for index, pair in enumerate(issues.list_field(record, "history", required=False) or ()):
        path = f"history[{index}]"
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            issues.add(path, msg("row.pair_length", n=len(pair)) if isinstance(pair, (list, tuple))
                       else msg("row.pair_type", type=type_name(pair)))
            continue
        for role, value, sub in (("user", pair[0], 0), ("assistant", pair[1], 1)):
            content = issues.text(value, f"{path}[{sub}]")
            if content is not None:
                turns.append(Turn(role, content, f"{path}[{sub}]"))
    return turns


def _chat_converter(column: str, role_key: str, content_key: str, roles: dict[str, str],
                    system_column: bool) -> Converter:
    """A converter for a list of role/content objects; `system_column` also reads a `system` column."""
    def convert(row: int, record: dict, drop_trailing_user: bool = False) -> Converted:
        issues = RowIssues(row)
        turns: list[Turn] = []
        if system_column:
            system = issues.optional_text(record, "system")
            if system.strip():
                turns.append(Turn("system", system, "system"))
        for index, item in enumerate(issues.list_field(record, column, required=True) or ()):
            path = f"{column}[{index}]"
            if not issues.turn_object(item, path, role_key, content_key):
                continue
            role = issues.role(item, role_key, roles, path)
            content = issues.member_text(item, content_key, path)
            if role is not None and content is not None:
                turns.append(Turn(role, content, path, role_key, content_key))
        trimmed = drop_trailing_user and not issues.errors and _without_trailing_user(turns)
        return _finish(issues, turns, column, trimmed)

    return convert


def convert_text(row: int, record: dict, drop_trailing_user: bool = False) -> Converted:
    issues = RowIssues(row)
    text = issues.required_text(record, "text")
    if text is not None and not text.strip():
        issues.add("text", msg("row.empty_text"))
    if issues.errors:
        return Converted(None, issues.errors)
    return Converted(Conversation(row=row, text=text), [])


CONVERTERS: dict[str, Converter] = {
    "alpaca": convert_alpaca,
    "sharegpt": _chat_converter("conversations", "from", "value", SHAREGPT_ROLES, system_column=True),
    "messages": _chat_converter("messages", "role", "content", MESSAGES_ROLES, system_column=False),
    "text": convert_text,
}


def _register_preference() -> None:
    from .preference import convert_kto, convert_preference   # imports this module's role table
    CONVERTERS.update(preference=convert_preference, kto=convert_kto)


_register_preference()
