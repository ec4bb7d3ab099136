"""The users file for hosting the studio, and the login check.

`users.yaml` maps a user name to a salted scrypt hash, or to the hash and what the admin allows
that user beyond the defaults:

    users:
      alice: scrypt$16384$8$1$<salt hex>$<hash hex>
      bob:
        password: scrypt$16384$8$1$<salt hex>$<hash hex>
        trust_remote_code: true      # may run modeling code shipped with a model (default: no)
        quota_gib: 200               # disk space of bob's uploads, jobs and exports (default: --quota-gib)

The file is read again whenever it changes: a user removed from it cannot log in any more, and
the studio ends that user's open sessions (see guard.py).
"""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import re
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from trainer_backend.safe_yaml import YamlError, dump_yaml, load_yaml_file

N, R, P = 2**14, 8, 1
USER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
MIN_PASSWORD_CHARS = 10
MIN_DISTINCT_CHARS = 5
# Verified when the name is unknown, so that a wrong name costs the same scrypt as a wrong password.
_DUMMY_HASH = f"scrypt${N}${R}${P}${'00' * 16}${'00' * 64}"
_log = logging.getLogger(__name__)


class AuthFileError(ValueError):
    """users.yaml is missing, unreadable or malformed, or a new password is too weak; the message
    names the file or the rule."""


@dataclass(frozen=True)
class UserEntry:
    name: str
    password_hash: str
    trust_remote_code: bool = False
    quota_gib: float | None = None        # None = the studio's --quota-gib


def hash_password(password: str, salt: bytes | None = None) -> str:
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=N, r=R, p=P)
    return f"scrypt${N}${R}${P}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        got = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p))
    except ValueError:
        return False
    return hmac.compare_digest(got.hex(), digest)


def password_problem(name: str, password: str) -> str | None:
    """Why a new password is refused, or None."""
    if len(password) < MIN_PASSWORD_CHARS:
        return f"the password needs at least {MIN_PASSWORD_CHARS} characters"
    if len(set(password)) < MIN_DISTINCT_CHARS:
        return f"the password needs at least {MIN_DISTINCT_CHARS} different characters"
    if name.lower() in password.lower():
        return "the password must not contain the user name"
    return None


def _entry(path: Path, name: str, value) -> UserEntry:
    if isinstance(value, str):
        return UserEntry(name, value)
    if isinstance(value, dict) and isinstance(value.get("password"), str) and \
            set(value) <= {"password", "trust_remote_code", "quota_gib"}:
        quota = value.get("quota_gib")
        if quota is not None and (isinstance(quota, bool) or not isinstance(quota, (int, float)) or quota <= 0):
            raise AuthFileError(f"{path}: users.{name}.quota_gib must be a positive number of GiB")
        return UserEntry(name, value["password"], value.get("trust_remote_code") is True,
                         float(quota) if quota is not None else None)
    raise AuthFileError(f"{path}: users.{name} must be a password hash or a mapping with password, "
                        "and optionally trust_remote_code and quota_gib")


def load_users(path: Path) -> dict[str, UserEntry]:
    if not path.exists():
        raise AuthFileError(f"{path}: no such file (create it with `python app.py add-user {path} NAME`)")
    try:
        data = load_yaml_file(path) or {}
    except YamlError as err:
        raise AuthFileError(str(err)) from None
    users = data.get("users") if isinstance(data, dict) else None
    if not isinstance(users, dict):
        raise AuthFileError(f"{path}: expected a mapping `users: {{name: password hash}}`")
    return {str(k): _entry(path, str(k), v) for k, v in users.items()}


def add_user(path: Path, name: str, password: str) -> None:
    """Add a user or change a password; what the admin allows the user is kept."""
    if not USER_NAME.match(name):
        raise AuthFileError(f"user name '{name}': use letters, digits, '_', '.', '-' (at most 64)")
    problem = password_problem(name, password)
    if problem:
        raise AuthFileError(problem)
    raw = {}
    if path.exists():
        load_users(path)                     # a malformed file is refused, not rewritten
        raw = load_yaml_file(path) or {}
    users = dict(raw.get("users") or {})
    old = users.get(name)
    users[name] = {**old, "password": hash_password(password)} if isinstance(old, dict) else hash_password(password)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dump_yaml({**raw, "users": dict(sorted(users.items()))}), encoding="utf-8")
    path.chmod(0o600)


class UsersFile:
    """The users file, read again when it changes (checked at most once a second). A file that
    turns unreadable keeps the last good version, so a half-saved edit locks nobody out."""

    def __init__(self, path: Path, clock: Callable[[], float] = time.monotonic):
        self.path = path
        self._clock = clock
        self._lock = threading.Lock()
        self._stamp = self._stat()
        self._users = load_users(path)
        self._checked = clock()

    def _stat(self) -> tuple[int, int, int] | None:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return st.st_mtime_ns, st.st_size, st.st_ino

    def get(self, name: str | None) -> UserEntry | None:
        return self.current().get(name) if name else None

    def current(self) -> dict[str, UserEntry]:
        with self._lock:
            if self._clock() - self._checked >= 1.0:
                self._checked = self._clock()
                stamp = self._stat()
                if stamp != self._stamp:
                    self._stamp = stamp
                    try:
                        self._users = load_users(self.path)
                    except AuthFileError as err:
                        _log.warning("keeping the previous users: %s", err)
            return self._users


class LoginGuard:
    """Password checks with a lockout: after `max_failures` wrong passwords for one name within
    `window_s`, that name is refused for `lockout_s`, right password or not. Unknown names get the
    same treatment and the same scrypt work, so neither the answer, the lockout nor the time
    tells whether a name exists."""

    def __init__(self, users: UsersFile, max_failures: int = 5, window_s: float = 900.0,
                 lockout_s: float = 300.0, clock: Callable[[], float] = time.monotonic):
        self.users = users
        self.max_failures, self.window_s, self.lockout_s = max_failures, window_s, lockout_s
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def check(self, name: str, password: str) -> bool:
        entry = self.users.get(name)
        ok = verify_password(password, entry.password_hash if entry else _DUMMY_HASH) and entry is not None
        key = name.lower()[:80]   # no valid name is longer; a flood of huge ones stays small
        with self._lock:
            now = self._clock()
            recent = self._failures.setdefault(key, deque())
            while recent and now - recent[0] > self.window_s:
                recent.popleft()
            if len(recent) >= self.max_failures and now - recent[-1] < self.lockout_s:
                return False
            if ok:
                self._failures.pop(key, None)
                return True
            recent.append(now)
            if len(self._failures) > 10_000:   # a flood of made-up names must not grow this forever
                self._failures = {k: v for k, v in self._failures.items() if v and now - v[-1] < self.window_s}
            return False


def make_checker(guard: LoginGuard, concurrency: int = 2):
    """The `auth=` callable for gr.Blocks.launch: a coroutine function (gradio awaits it), so
    scrypt runs off the event loop, at most `concurrency` at a time: a flood of logins cannot take
    every core or stall the pages of logged-in users."""
    gate = asyncio.Semaphore(concurrency)

    async def check(name: str, password: str) -> bool:
        async with gate:
            return await asyncio.to_thread(guard.check, name, password)

    return check
