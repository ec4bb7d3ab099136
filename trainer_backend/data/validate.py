"""Structural checks of a chat: the turn order a chat template and the response mask can rely on."""
from __future__ import annotations

from .turns import RowIssues, Turn

_OTHER = {"user": "an assistant", "assistant": "a user"}


def check_turns(turns: list[Turn], issues: RowIssues, container: str) -> None:
    if not any(turn.role != "system" for turn in turns):
        issues.add(container, "has no user or assistant turn")
        return
    previous = None
    for index, turn in enumerate(turns):
        if turn.role == "system":
            if index > 0:
                issues.add(turn.role_field, "system message must come first")
            continue
        if previous is None and turn.role != "user":
            issues.add(turn.role_field, "conversation must start with a user turn (after an optional system message)")
        elif previous == turn.role:
            issues.add(turn.role_field, f"two {turn.role} turns in a row; merge them or put "
                                        f"{_OTHER[turn.role]} turn between")
        if not turn.content.strip():
            issues.add(turn.content_field, f"empty {turn.role} turn")
        previous = turn.role
    last = turns[-1]
    if last.role != "assistant":
        issues.add(last.role_field, f"conversation must end with an assistant turn, not a {last.role} turn")
