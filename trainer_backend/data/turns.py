"""One turn of a row being converted, and the problems found in that row."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from ..messages import Notice, msg
from .conversation import Role, RowError
from .text import FieldProblem, clean_text, type_name

_MISSING = object()


class Turn(NamedTuple):
    """A message with the path of the field it came from, so errors can point at it: `path` alone
    (Alpaca columns) or `path.role_key` / `path.content_key` (items of a chat list).
    A tuple rather than a dataclass: one is built for every message of every row."""
    role: Role
    content: str
    path: str
    role_key: str = ""
    content_key: str = ""

    @property
    def role_field(self) -> str:
        return f"{self.path}.{self.role_key}" if self.role_key else self.path

    @property
    def content_field(self) -> str:
        return f"{self.path}.{self.content_key}" if self.content_key else self.path


@dataclass
class RowIssues:
    row: int
    errors: list[RowError] = field(default_factory=list)

    def add(self, field_path: str, message: Notice) -> None:
        self.errors.append(RowError(self.row, field_path, message))

    def text(self, value: Any, field_path: str) -> str | None:
        """The cleaned string, or None after recording why it is unusable."""
        if value is _MISSING:
            self.add(field_path, msg("row.missing"))
            return None
        try:
            return clean_text(value)
        except FieldProblem as problem:
            self.add(field_path, problem.notice)
            return None

    def required_text(self, record: dict, key: str) -> str | None:
        return self.text(record.get(key, _MISSING), key)

    def member_text(self, item: dict, key: str, path: str) -> str | None:
        """`item[key]` of the list item at `path`; plain ASCII strings skip the checks."""
        value = item.get(key, _MISSING)
        if value.__class__ is str and value.isascii():
            return value
        return self.text(value, f"{path}.{key}")

    def turn_object(self, item: Any, path: str, role_key: str, content_key: str) -> bool:
        """True when a chat list's item is an object; else records why not."""
        if isinstance(item, dict):
            return True
        self.add(path, msg("row.not_turn_object", role_key=role_key, content_key=content_key, type=type_name(item)))
        return False

    def role(self, item: dict, role_key: str, roles: dict[str, Role], path: str) -> Role | None:
        """The normalized role of a chat list's item, or None after recording why it has none."""
        found = item.get(role_key)
        role = roles.get(found) if isinstance(found, str) else None
        if role is None:
            self.add(f"{path}.{role_key}", msg("row.missing") if role_key not in item else
                     msg("row.unknown_role", role=repr(found), roles=", ".join(roles)))
        return role

    def optional_text(self, record: dict, key: str) -> str:
        value = record.get(key)
        return "" if value is None else (self.text(value, key) or "")

    def list_field(self, record: dict, key: str, required: bool) -> list | None:
        """A list column; CSV cells holding JSON arrays are accepted too."""
        value = record.get(key, _MISSING)
        if value is _MISSING or value is None:
            if required:
                self.add(key, msg("row.missing" if value is _MISSING else "row.null_list"))
            return None
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                self.add(key, msg("row.not_json_list"))
                return None
        if not isinstance(value, (list, tuple)):
            self.add(key, msg("row.not_list", type=type_name(value)))
            return None
        return list(value)
