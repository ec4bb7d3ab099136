"""Choose the dataset format from the columns present, and apply a user's column mapping."""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

from ..messages import Notice, msg
from .conversation import DataError
from .formats import FORMAT_FIELDS
from .readers import Record

FORMATS = tuple(FORMAT_FIELDS)
# First match wins: chat columns are checked before `text`, which many chat datasets also carry.
_SIGNATURES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("preference", ("prompt", "chosen", "rejected")),
    ("kto", ("prompt", "completion", "label")),
    ("messages", ("messages",)),
    ("sharegpt", ("conversations",)),
    ("alpaca", ("instruction", "output")),
    ("text", ("text",)),
)


def file_columns(records: Iterable[Record | None]) -> list[str]:
    seen: dict[str, None] = {}
    for record in records:
        if record is not None:
            seen.update(dict.fromkeys(record))
    return list(seen)


def rename_columns(records: list[Record | None], columns: dict[str, str], path: Path) -> list[Record | None]:
    """Rename user columns to format fields, e.g. {"prompt": "instruction"}."""
    known = {name for fields in FORMAT_FIELDS.values() for name in fields}
    present = set(file_columns(records))
    for source, target in columns.items():
        if target not in known:
            raise DataError(path, msg("file.map_unknown_field", source=source, target=target,
                                      fields=", ".join(sorted(known))))
        if source not in present:
            raise DataError(path, msg("file.map_no_column", source=source, target=target,
                                      columns=", ".join(sorted(present))))
        if target in present and target not in columns:
            raise DataError(path, msg("file.map_clash", source=source, target=target))
    return [None if record is None else {columns.get(key, key): value for key, value in record.items()}
            for record in records]


def choose_format(requested: str, columns: list[str], mapping: dict[str, str], path: Path) -> tuple[str, Notice]:
    """The format and the reason it was chosen."""
    if requested != "auto":
        if requested not in FORMATS:
            raise DataError(path, msg("file.unknown_format", format=requested, formats=", ".join(FORMATS)))
        return requested, msg("detect.given", format=requested)
    for name, needed in _SIGNATURES:
        if all(column in columns for column in needed):
            key = "detect.column" if len(needed) == 1 else "detect.columns"
            if mapping:
                return name, msg(f"{key}_mapped", columns="/".join(needed), format=name,
                                 pairs=", ".join(f"{k}→{v}" for k, v in mapping.items()))
            return name, msg(key, columns="/".join(needed), format=name)
    raise DataError(path, msg("file.undetected", columns=", ".join(columns) if columns else msg("file.no_columns")))
