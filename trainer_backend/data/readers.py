"""Read a dataset file into raw records (one dict per source row), whatever its file type.

JSON and JSONL are parsed line by line here rather than through `datasets`, because a broken line
must become an error of that row, not the failure of the whole file. Bytes that are not UTF-8 are
kept as surrogate escapes so the row that holds them can be named later (see `text.py`).
"""
from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..messages import Notice, msg
from .conversation import DataError, RowError
from .text import is_utf8, type_name

Record = dict[str, Any]


@dataclass
class RawRows:
    """`records[i]` is row i, or None when the row could not be parsed (its error is in `errors`)."""
    records: list[Record | None]
    errors: list[RowError] = field(default_factory=list)


FILE_SUFFIXES = (".json", ".jsonl", ".ndjson", ".csv", ".tsv", ".parquet")
# `org/name`, `org/name:config`, `org/name@split` or `org/name:config@split` (split slices allowed)
HUB_ID = re.compile(r"^(?P<repo>[A-Za-z0-9][\w.-]*/[\w.-]+)(?::(?P<config>[\w.-]+))?(?:@(?P<split>.+))?$")


def read_records(path: str | Path) -> RawRows:
    hub = HUB_ID.match(str(path))
    path = Path(path)
    if not path.exists() and hub and path.suffix.lower() not in FILE_SUFFIXES:
        return _read_hub(str(path), hub["repo"], hub["config"], hub["split"] or "train")
    if not path.exists():
        raise DataError(path, msg("file.missing"))
    if path.is_dir():
        return _read_saved_dataset(path)
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        return _read_parquet(path)
    text = _decode(path)
    if suffix in (".csv", ".tsv"):
        return _read_csv(path, text, delimiter="\t" if suffix == ".tsv" else ",")
    start = text.lstrip()[:1]
    if suffix in (".json", ".jsonl", ".ndjson") or start in ("[", "{"):
        # many published ".json" datasets are JSON lines, so the content decides
        if start == "[" and suffix != ".jsonl":
            return _read_json_array(path, text)
        if start == "{" and _is_one_object(text):
            raise DataError(path, msg("file.one_object"))
        return _read_jsonl(text)
    raise DataError(path, msg("file.unsupported", suffix=suffix or msg("file.no_extension")))


def _decode(path: Path) -> str:
    try:
        data = path.read_bytes()
    except OSError as err:
        raise DataError(path, msg("file.unreadable", detail=err.strerror)) from None
    return data.removeprefix(b"\xef\xbb\xbf").decode("utf-8", errors="surrogateescape")


class DuplicateKey(ValueError):
    pass


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """JSON would keep the last of two equal keys silently; a row that names a key twice is refused."""
    record = dict(pairs)
    if len(record) != len(pairs):
        seen: set[str] = set()
        twice = next(k for k, _ in pairs if k in seen or seen.add(k))
        raise DuplicateKey(twice)
    return record


def _loads(text: str) -> Any:
    return json.loads(text, object_pairs_hook=_unique_keys)


def _is_one_object(text: str) -> bool:
    """A pretty-printed JSON object: its first line alone is not an object, the whole text is one."""
    first = text.lstrip().split("\n", 1)[0]
    try:
        json.loads(first)
        return False
    except (ValueError, RecursionError):
        pass
    try:
        return isinstance(json.loads(text), dict)
    except (ValueError, RecursionError):
        return False


def _read_jsonl(text: str) -> RawRows:
    rows = RawRows([])
    # split on "\n" only: str.splitlines would also split inside strings on U+2028 and friends
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        row = len(rows.records)
        try:
            record = _loads(line)
        except (json.JSONDecodeError, DuplicateKey, RecursionError) as err:
            rows.records.append(None)
            rows.errors.append(RowError(row, "line", _broken_line_message(line, number, err)))
            continue
        rows.records.append(_as_record(record, row, "line", msg("row.where_line", n=number), rows.errors))
    return rows


def _broken_line_message(line: str, number: int, err: Exception) -> Notice:
    if not is_utf8(line):
        return msg("row.line_not_utf8", line=number)
    if isinstance(err, (DuplicateKey, RecursionError)):
        return msg("row.line_refused", line=number, problem=_refused(err))
    return msg("row.line_not_json", line=number, detail=err.msg, column=err.colno)


def _refused(err: DuplicateKey | RecursionError) -> Notice:
    if isinstance(err, DuplicateKey):
        return msg("row.duplicate_key", name=str(err))
    return msg("row.too_deep")


def _read_json_array(path: Path, text: str) -> RawRows:
    try:
        items = _loads(text)
    except json.JSONDecodeError as err:
        raise DataError(path, msg("file.bad_json", line=err.lineno, column=err.colno, detail=err.msg)) from None
    except (DuplicateKey, RecursionError) as err:
        raise DataError(path, msg("file.refused", problem=_refused(err))) from None
    rows = RawRows([])
    for row, item in enumerate(items):
        rows.records.append(_as_record(item, row, "row", msg("row.where_row", n=row), rows.errors))
    return rows


def _as_record(item: Any, row: int, field_name: str, where: Notice, errors: list[RowError]) -> Record | None:
    if isinstance(item, dict):
        return item
    errors.append(RowError(row, field_name, msg("row.not_object", where=where, type=type_name(item))))
    return None


def _read_csv(path: Path, text: str, delimiter: str) -> RawRows:
    # strict: a quote that is never closed is an error, not a field that swallows the rest of the file
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    try:
        header = next(reader)
    except StopIteration:
        raise DataError(path, msg("file.empty")) from None
    except csv.Error as err:
        raise DataError(path, msg("file.csv_header", detail=str(err))) from None
    rows = RawRows([])
    start = reader.line_num + 1
    try:
        for values in reader:
            if values:
                rows.records.append(_csv_record(header, values, len(rows.records), start, rows.errors))
            start = reader.line_num + 1
    except csv.Error as err:
        if reader.line_num > start and str(err) == "unexpected end of data":
            raise DataError(path, msg("file.csv_open_quote", line=start)) from None
        raise DataError(path, msg("file.csv_error", line=reader.line_num, detail=str(err))) from None
    return rows


def _csv_record(header: list[str], values: list[str], row: int, line: int,
                errors: list[RowError]) -> Record | None:
    if len(values) != len(header):
        errors.append(RowError(row, "line", msg("row.csv_width", line=line, values=len(values), columns=len(header))))
        return None
    return dict(zip(header, values))


def _read_parquet(path: Path) -> RawRows:
    import pyarrow
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (pyarrow.ArrowException, OSError) as err:
        raise DataError(path, msg("file.bad_parquet", detail=str(err))) from None
    return RawRows(table.to_pylist())


def _read_saved_dataset(path: Path) -> RawRows:
    import datasets

    try:
        loaded = datasets.load_from_disk(str(path))
    except FileNotFoundError:
        raise DataError(path, msg("file.bad_folder")) from None
    if isinstance(loaded, datasets.DatasetDict):
        splits = list(loaded)
        if "train" not in loaded and len(splits) != 1:
            raise DataError(path, msg("file.no_train_split", splits=", ".join(splits)))
        loaded = loaded["train" if "train" in loaded else splits[0]]
    return RawRows(loaded.to_list())


def _read_hub(hub_id: str, repo: str, config: str | None, split: str) -> RawRows:
    """A hub dataset through `datasets` and its cache (HF_DATASETS_CACHE): with no network, a
    dataset loaded once before is read from the cache."""
    import datasets

    try:
        loaded = datasets.load_dataset(repo, config, split=split)
    except ConnectionError as err:
        raise DataError(hub_id, msg("file.hub_unreachable", detail=str(err))) from None
    except (FileNotFoundError, ValueError) as err:  # unknown dataset, config or split
        raise DataError(hub_id, msg("detail", detail=str(err))) from None
    return RawRows(loaded.to_list())
