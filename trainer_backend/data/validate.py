"""Structural checks of a chat: the turn order a chat template and the response mask can rely on."""
from __future__ import annotations

from ..messages import msg
from .turns import RowIssues, Turn


def check_turns(turns: list[Turn], issues: RowIssues, container: str) -> None:
    if not any(turn.role != "system" for turn in turns):
        issues.add(container, msg("row.no_chat_turn"))
        return
    previous = None
    for index, turn in enumerate(turns):
        if turn.role == "system":
            if index > 0:
                issues.add(turn.role_field, msg("row.system_not_first"))
            continue
        if previous is None and turn.role != "user":
            issues.add(turn.role_field, msg("row.start_not_user"))
        elif previous == turn.role:
            issues.add(turn.role_field, msg(f"row.two_{turn.role}_turns"))
        if not turn.content.strip():
            issues.add(turn.content_field, msg("row.empty_turn", role=turn.role))
        previous = turn.role
    last = turns[-1]
    if last.role != "assistant":
        issues.add(last.role_field, msg("row.end_not_assistant", role=last.role))
