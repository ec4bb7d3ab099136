"""Preference rows: a prompt with a chosen and a rejected completion (DPO, ORPO, SimPO), or with
one completion labelled desirable or not (KTO).

Both layouts of TRL's preference datasets are read: plain strings (`prompt` is the user turn)
and conversational (`prompt` a message list ending with a user turn, each completion a list
holding one assistant message). A row becomes a `PreferenceRow`, which IS the conversation
prompt + chosen (or prompt + completion), so the Data tab and the template function treat it
like any chat; `rejected` / `desirable` carry the rest.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..messages import msg
from .conversation import Conversation, Message
from .formats import MESSAGES_ROLES, Converted
from .turns import RowIssues, Turn
from .validate import check_turns


@dataclass(frozen=True)
class PreferenceRow(Conversation):
    """`messages` = prompt + the chosen (KTO: the only) completion as the last assistant turn."""
    rejected: str | None = None      # paired rows
    desirable: bool | None = None    # KTO rows

    @property
    def prompt(self) -> tuple[Message, ...]:
        return self.messages[:-1]

    def with_completion(self, completion: str) -> Conversation:
        return Conversation(row=self.row, messages=self.prompt + (Message("assistant", completion),))


def _prompt_turns(record: dict, issues: RowIssues) -> list[Turn]:
    value = record.get("prompt")
    if isinstance(value, str) or value is None:
        text = issues.required_text(record, "prompt")
        return [Turn("user", text, "prompt")] if text is not None else []
    turns = []
    for index, item in enumerate(issues.list_field(record, "prompt", required=True) or ()):
        path = f"prompt[{index}]"
        if not issues.turn_object(item, path, "role", "content"):
            continue
        role = issues.role(item, "role", MESSAGES_ROLES, path)
        content = issues.member_text(item, "content", path)
        if role is not None and content is not None:
            turns.append(Turn(role, content, path, "role", "content"))
    return turns


def _completion(record: dict, key: str, issues: RowIssues) -> str | None:
    """A string, or a list holding one assistant message (the conversational layout)."""
    value = record.get(key)
    if isinstance(value, str) or value is None:
        return issues.required_text(record, key)
    items = issues.list_field(record, key, required=True)
    if items is None:
        return None
    if len(items) != 1 or not isinstance(items[0], dict) or items[0].get("role") != "assistant":
        issues.add(key, msg("row.not_completion"))
        return None
    return issues.member_text(items[0], "content", f"{key}[0]")


def _label(record: dict, issues: RowIssues) -> bool | None:
    value = record.get("label")
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):  # CSV cells
        return value.strip().lower() == "true"
    issues.add("label", msg("row.missing") if "label" not in record else msg("row.bad_label", value=repr(value)))
    return None


def _finish(issues: RowIssues, prompt: list[Turn], completions: dict[str, str | None], **extra) -> Converted:
    for key, text in completions.items():
        if text is not None and not issues.errors:
            check_turns(prompt + [Turn("assistant", text, key)], issues, "prompt")
    if issues.errors:
        return Converted(None, issues.errors)
    first = next(iter(completions.values()))
    messages = tuple(Message(t.role, t.content) for t in prompt) + (Message("assistant", first),)
    return Converted(PreferenceRow(row=issues.row, messages=messages, **extra), [])


# A preference row ends on its completions by construction: no trailing user turn to drop, so the
# loader's `drop_trailing_user` does not apply to these converters.
def convert_preference(row: int, record: dict, drop_trailing_user: bool = False) -> Converted:
    issues = RowIssues(row)
    prompt = _prompt_turns(record, issues)
    chosen, rejected = _completion(record, "chosen", issues), _completion(record, "rejected", issues)
    if chosen is not None and chosen == rejected:
        issues.add("rejected", msg("row.identical_pair"))
    return _finish(issues, prompt, {"chosen": chosen, "rejected": rejected}, rejected=rejected)


def convert_kto(row: int, record: dict, drop_trailing_user: bool = False) -> Converted:
    issues = RowIssues(row)
    prompt = _prompt_turns(record, issues)
    completion = _completion(record, "completion", issues)
    desirable = _label(record, issues)
    return _finish(issues, prompt, {"completion": completion}, desirable=desirable)
