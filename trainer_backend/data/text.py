"""Check and normalize one text field: a string, valid UTF-8, in Unicode NFC.

NFC matters for Vietnamese: the same letter typed as NFD (base + combining marks) would otherwise
tokenize differently from the NFC form the models were trained on. Text already in NFC is returned
as the same object, so it round-trips byte for byte.
"""
from __future__ import annotations

import unicodedata
from typing import Any

from ..messages import Notice, msg


class FieldProblem(ValueError):
    """The value of one field is unusable; the caller adds the row and field path."""

    def __init__(self, notice: Notice):
        super().__init__(str(notice))
        self.notice = notice


_JSON_NAMES = {type(None): "null", bool: "boolean", int: "number", float: "number", str: "string",
               list: "list", tuple: "list", dict: "object"}


def type_name(value: Any) -> Notice:
    """The JSON name of a value's type, as users see it in their files (another type by its Python name)."""
    name = _JSON_NAMES.get(type(value))
    return msg(f"type.{name}") if name else msg("detail", detail=type(value).__name__)


def is_utf8(text: str) -> bool:
    """False when the text holds surrogate escapes, which stand for bytes that were not UTF-8 in
    the file (see readers.py)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def clean_text(value: Any) -> str:
    if not isinstance(value, str):
        raise FieldProblem(msg("row.not_string", type=type_name(value)))
    if value.isascii():
        return value
    if not is_utf8(value):
        raise FieldProblem(msg("row.not_utf8"))
    if unicodedata.is_normalized("NFC", value):
        return value
    return unicodedata.normalize("NFC", value)
