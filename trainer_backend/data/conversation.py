"""The one normalized form every dataset row becomes, whatever its file format."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from ..messages import Notice, msg

Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True)
class Message:
    role: Role
    content: str


@dataclass(frozen=True)
class Conversation:
    """A chat (messages) or, for continued pre-training, raw `text` trained on every token.

    `row` is the 0-based index of the source row, so every later report can point back to it.
    """
    row: int
    messages: tuple[Message, ...] = ()
    text: str | None = None

    @property
    def is_text(self) -> bool:
        return self.text is not None


@dataclass(frozen=True)
class RowError:
    """A user-fixable problem in one row: `row` is 0-based, `field` names the column or path,
    `message` says what is wrong (in English with str(), in the user's language in the studio)."""
    row: int
    field: str
    message: Notice

    def described(self) -> Notice:
        return msg("row.at", row=self.row, field=self.field, message=self.message)

    def __str__(self) -> str:
        return str(self.described())


class DataError(ValueError):
    """A dataset that cannot be used as a whole (unreadable file, undetectable format, a row that
    fails in strict mode); the message names the file and, where there is one, the row.

    `notice` is what is wrong without the file, for a UI that names the file its own way (a
    server's upload folder is no business of the user's) and in the user's language."""

    def __init__(self, path: str | Path, notice: Notice):
        super().__init__(f"{path}: {notice}")
        self.path = str(path)
        self.notice = notice

    def __reduce__(self):  # pickles (a worker pool's errors) with both arguments
        return DataError, (self.path, self.notice)


@dataclass
class LoadedDataset:
    path: str
    format: str            # alpaca | sharegpt | messages | text | preference | kto
    reason: Notice         # why this format was chosen (detected or given)
    rows: int              # rows read from the file
    conversations: list[Conversation] = field(default_factory=list)   # PreferenceRows for preference and kto
    errors: list[RowError] = field(default_factory=list)
    trimmed_rows: list[int] = field(default_factory=list)   # chats whose trailing user turn was dropped

    @property
    def valid_rows(self) -> int:
        return len(self.conversations)

    @property
    def invalid_rows(self) -> int:
        """Rows with at least one error (a row can have several)."""
        return len({error.row for error in self.errors})
