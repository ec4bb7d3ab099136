"""Choose the dataset format from the columns present, and apply a user's column mapping."""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

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


def signature(format: str) -> tuple[str, ...]:
    """The columns whose presence makes `auto` choose `format`."""
    return dict(_SIGNATURES)[format]


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
            raise DataError(path, f"column mapping {source}={target}: '{target}' is not a field of any format "
                            f"(fields: {', '.join(sorted(known))})")
        if source not in present:
            raise DataError(path, f"column mapping {source}={target}: the file has no column '{source}' "
                            f"(columns: {', '.join(sorted(present))})")
        if target in present and target not in columns:
            raise DataError(path, f"column mapping {source}={target}: the file already has a column "
                            f"'{target}'; map or remove one of them")
    return [None if record is None else {columns.get(key, key): value for key, value in record.items()}
            for record in records]


def choose_format(requested: str, columns: list[str], mapping: dict[str, str], path: Path) -> tuple[str, str]:
    """The format and the reason it was chosen."""
    if requested != "auto":
        if requested not in FORMATS:
            raise DataError(path, f"unknown format '{requested}'; use auto, {', '.join(FORMATS)}")
        return requested, f"format {requested} given"
    mapped = f" (after mapping {', '.join(f'{k}→{v}' for k, v in mapping.items())})" if mapping else ""
    for name, needed in _SIGNATURES:
        if all(column in columns for column in needed):
            noun = "column" if len(needed) == 1 else "columns"
            return name, f"{noun} {'/'.join(needed)} found{mapped} → {name}"
    found = ", ".join(columns) if columns else "none"
    raise DataError(path, f"cannot detect the format from the columns ({found}); expected instruction+output "
                    "(alpaca), conversations (sharegpt), messages, text, prompt+chosen+rejected (preference) or "
                    "prompt+completion+label (kto); pass a format and a column mapping "
                    "such as prompt=instruction,response=output")
