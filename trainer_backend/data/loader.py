"""`load_dataset`: read a file, detect its format, convert every row, keep the valid ones."""
from __future__ import annotations

from pathlib import Path

from ..messages import msg
from .conversation import DataError, LoadedDataset, RowError
from .detect import choose_format, file_columns, rename_columns
from .formats import CONVERTERS
from .readers import read_records


def load_dataset(path: str | Path, format: str = "auto", columns: dict[str, str] | None = None,
                 strict: bool = False, drop_trailing_user: bool = True) -> LoadedDataset:
    """Rows that fail validation are reported in `errors` and left out, or raise DataError when strict.
    A chat ending on a user turn loses that turn (listed in `trimmed_rows`) unless
    `drop_trailing_user` is False, when it is an invalid row."""
    path = Path(path)
    raw = read_records(path)
    if not raw.records:
        raise DataError(path, msg("file.no_rows"))
    if not any(record is not None for record in raw.records):
        raise DataError(path, msg("file.no_readable_row", n=len(raw.errors), first=raw.errors[0].described()))
    records = rename_columns(raw.records, columns, path) if columns else raw.records
    chosen, reason = choose_format(format, file_columns(records), columns or {}, path)
    convert = CONVERTERS[chosen]
    read_errors = {error.row: error for error in raw.errors}
    dataset = LoadedDataset(path=str(path), format=chosen, reason=reason, rows=len(records))
    for row, record in enumerate(records):
        if record is None:
            row_errors = [read_errors[row]]
        else:
            conversation, row_errors, trimmed = convert(row, record, drop_trailing_user)
            if trimmed:
                dataset.trimmed_rows.append(row)
        if row_errors:
            if strict:
                raise _strict_failure(path, row_errors)
            dataset.errors.extend(row_errors)
        else:
            dataset.conversations.append(conversation)
    return dataset


def dataset_columns(path: str | Path) -> list[str]:
    """The columns of a file in the order they first appear, for a UI that offers them for mapping
    (also when the format cannot be detected)."""
    return file_columns(read_records(Path(path)).records)


def _strict_failure(path: Path, errors: list[RowError]) -> DataError:
    if len(errors) > 1:
        return DataError(path, msg("file.strict_more", first=errors[0].described(), more=len(errors) - 1))
    return DataError(path, msg("file.strict", first=errors[0].described()))
