"""The job registry: one SQLite file per workdir (`jobs.db`, WAL mode), one row per job.

Every process that touches a workdir (studios, CLIs, the per-job supervisors) opens its own
connection; decisions that must not be taken twice (which job starts, who records the end of a
run) happen inside `BEGIN IMMEDIATE` transactions, which SQLite serializes across processes.
Any SQLite failure (a full disk, a damaged file) surfaces as one RegistryError naming the file
and what to do; no caller sees a raw sqlite3 exception.
"""
from __future__ import annotations

import json
import logging
import sqlite3
from contextlib import contextmanager
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Iterator

from ..messages import Notice
from .errors import JobError

_log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,   -- FIFO order
    id TEXT UNIQUE NOT NULL,
    owner TEXT NOT NULL,
    name TEXT NOT NULL,
    state TEXT NOT NULL,
    gpus TEXT NOT NULL,                      -- JSON list of physical GPU indices, [] = CPU job
    command TEXT NOT NULL,                   -- JSON argv of the train command, without config and --resume
    cwd TEXT NOT NULL,                       -- relative data/model paths of the config resolve here
    grace_s REAL NOT NULL,
    max_retries INTEGER NOT NULL,
    stall_s REAL NOT NULL DEFAULT 600,       -- the preparation watchdog (0 = off)
    retries INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    started_at REAL,
    ended_at REAL,
    supervisor_pid INTEGER,
    supervisor_created REAL,                 -- process start time: tells a live supervisor from a reused pid
    train_pid INTEGER,
    pgid INTEGER,
    exit_code INTEGER,
    exit_reason TEXT,
    kind TEXT NOT NULL DEFAULT 'train',      -- train | chat (see info.py)
    exit_notice TEXT,                        -- exit_reason as a notice (JSON key and arguments), to translate
    train_created REAL                       -- the train process's start time (a warm worker's precedes started_at)
)
"""

_BUSY_TIMEOUT_S = 60.0
# Columns added after the first release, with their definition: an older jobs.db gets them on open.
_ADDED_COLUMNS = {"kind": "TEXT NOT NULL DEFAULT 'train'", "stall_s": "REAL NOT NULL DEFAULT 600", "exit_notice": "TEXT",
                  "train_created": "REAL"}
_SQLITE_BUSY, _SQLITE_LOCKED, _SQLITE_FULL = 5, 6, 13


class RegistryError(JobError):
    """The registry file cannot be read or written; the message names it and what to do."""


def _explain(path: Path, err: sqlite3.Error) -> RegistryError:
    text, code = str(err), (getattr(err, "sqlite_errorcode", None) or 0) & 0xFF  # the primary result code
    if code == _SQLITE_FULL:
        hint = "the disk is full: free space on it (old jobs, checkpoints, exports), then retry"
    elif code in (_SQLITE_BUSY, _SQLITE_LOCKED):
        hint = "another process holds it too long; retry in a moment"
    else:
        hint = ("the file is damaged: stop the studio, move it aside (job folders are kept) and restart; "
                "jobs already in the registry are then no longer listed")
    return RegistryError(f"job registry {path}: {text}; {hint}")


@dataclass
class JobRow:
    seq: int
    id: str
    owner: str
    name: str
    state: str
    gpus: list[int]
    command: list[str]
    cwd: str
    grace_s: float
    max_retries: int
    stall_s: float
    retries: int
    created_at: float
    started_at: float | None
    ended_at: float | None
    supervisor_pid: int | None
    supervisor_created: float | None
    train_pid: int | None
    pgid: int | None
    exit_code: int | None
    exit_reason: str | None
    kind: str = "train"
    exit_notice: str | None = None
    train_created: float | None = None

    @property
    def notice(self) -> Notice | None:
        try:
            return Notice.from_json(json.loads(self.exit_notice)) if self.exit_notice else None
        except ValueError:
            return None

    @classmethod
    def from_sql(cls, row: sqlite3.Row) -> "JobRow":
        values = dict(row)
        values["gpus"] = json.loads(values["gpus"])
        values["command"] = json.loads(values["command"])
        return cls(**values)


_JSON_COLUMNS = {"gpus", "command"}
_COLUMNS = {f.name for f in fields(JobRow)}


class Registry:
    def __init__(self, db_path: str | Path):
        self.path = Path(db_path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._errors():
            conn = self.connect()
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute(_SCHEMA)
                _add_columns(conn)
            finally:
                conn.close()

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as err:
            raise _explain(self.path, err) from None

    def connect(self) -> sqlite3.Connection:
        # Autocommit mode: transactions are opened explicitly, so BEGIN IMMEDIATE means what it says.
        conn = sqlite3.connect(self.path, timeout=_BUSY_TIMEOUT_S, isolation_level=None)
        conn.row_factory = sqlite3.Row
        return conn

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction taken up front: no other process can decide anything until it ends."""
        with self._errors():
            conn = self.connect()
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    yield conn
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
            finally:
                conn.close()

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        with self._errors():
            conn = self.connect()
            try:
                yield conn
            finally:
                conn.close()


def _add_columns(conn: sqlite3.Connection) -> None:
    """A registry written by an older version lacks the columns added since (chat jobs' `kind`, the
    watchdog's `stall_s`); their defaults describe its jobs."""
    have = {row["name"] for row in conn.execute("PRAGMA table_info(jobs)")}
    for name, definition in _ADDED_COLUMNS.items():
        if name not in have:
            try:
                conn.execute(f"ALTER TABLE jobs ADD COLUMN {name} {definition}")
            except sqlite3.OperationalError:   # another process added it first
                pass


def ending(notice: Notice | None) -> dict[str, str | None]:
    """The columns that say why a job ended: its English text and the notice to translate it."""
    if notice is None:
        return {"exit_reason": None, "exit_notice": None}
    return {"exit_reason": str(notice), "exit_notice": json.dumps(notice.to_json())}


def insert(conn: sqlite3.Connection, **values: Any) -> None:
    values = _encode(values)
    names = ", ".join(values)
    marks = ", ".join("?" for _ in values)
    conn.execute(f"INSERT INTO jobs ({names}) VALUES ({marks})", list(values.values()))


def update(conn: sqlite3.Connection, job_id: str, **values: Any) -> None:
    values = _encode(values)
    sets = ", ".join(f"{name} = ?" for name in values)
    conn.execute(f"UPDATE jobs SET {sets} WHERE id = ?", [*values.values(), job_id])


def fetch(conn: sqlite3.Connection, job_id: str) -> JobRow | None:
    row = conn.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
    return JobRow.from_sql(row) if row else None


def fetch_all(conn: sqlite3.Connection, states: tuple[str, ...] = (), owner: str | None = None,
              kind: str | None = None) -> list[JobRow]:
    sql, args = "SELECT * FROM jobs WHERE 1", []
    if kind is not None:
        sql += " AND kind = ?"
        args.append(kind)
    if states:
        sql += f" AND state IN ({', '.join('?' for _ in states)})"
        args += list(states)
    if owner is not None:
        sql += " AND owner = ?"
        args.append(owner)
    rows = []
    for r in conn.execute(sql + " ORDER BY seq", args):
        try:
            rows.append(JobRow.from_sql(r))
        except (ValueError, TypeError):  # one damaged row hides only its own job
            _log.error("job registry: skipping the damaged row of job %r", r["id"])
    return rows


def delete(conn: sqlite3.Connection, job_id: str) -> None:
    conn.execute("DELETE FROM jobs WHERE id = ?", (job_id,))


def _encode(values: dict[str, Any]) -> dict[str, Any]:
    unknown = set(values) - _COLUMNS
    if unknown:  # column names are code, never user input; this guards against typos
        raise KeyError(f"unknown job columns: {sorted(unknown)}")
    return {k: json.dumps(v) if k in _JSON_COLUMNS else v for k, v in values.items()}
