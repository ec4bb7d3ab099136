"""Password file for hosting the studio: `users.yaml` maps a user name to a salted scrypt hash.

    users:
      alice: scrypt$16384$8$1$<salt hex>$<hash hex>
"""
from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from pathlib import Path

import yaml

N, R, P = 2**14, 8, 1
USER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class AuthFileError(ValueError):
    """users.yaml is missing, unreadable or malformed; the message names the file."""


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


def load_users(path: Path) -> dict[str, str]:
    if not path.exists():
        raise AuthFileError(f"{path}: no such file (create it with `python app.py add-user {path} NAME`)")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        raise AuthFileError(f"{path}: not valid YAML ({err})") from None
    users = data.get("users") if isinstance(data, dict) else None
    if not isinstance(users, dict) or not all(isinstance(v, str) for v in users.values()):
        raise AuthFileError(f"{path}: expected a mapping `users: {{name: password hash}}`")
    return {str(k): v for k, v in users.items()}


def add_user(path: Path, name: str, password: str) -> None:
    if not USER_NAME.match(name):
        raise AuthFileError(f"user name '{name}': use letters, digits, '_', '.', '-' (at most 64)")
    if not password:
        raise AuthFileError("the password is empty")
    users = load_users(path) if path.exists() else {}
    users[name] = hash_password(password)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({"users": users}, sort_keys=True), encoding="utf-8")
    path.chmod(0o600)


def make_checker(path: Path):
    """The `auth=` callable for gr.Blocks.launch; the file is read once at start."""
    users = load_users(path)

    def check(name: str, password: str) -> bool:
        stored = users.get(name)
        return stored is not None and verify_password(password, stored)

    return check
