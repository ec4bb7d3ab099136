"""An ASGI middleware in front of gradio's routes, for what gradio's own options cannot say:

- a user removed from the users file is logged out at their next request;
- the page served before login carries no description of the API;
- the raw upload route (`/gradio_api/upload`, which any client can call, not only the Data tab)
  takes only dataset files, within the upload size, the user's quota and the disk floor, and
  records who sent each file;
- a cached upload is served back to the user who sent it only.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from studio.i18n import t
from studio.quota import NoRoom, check_room
from studio.sessions import end_sessions, session_user, without_api_info
from studio.uploads import ALLOWED_SUFFIXES, sanitize_name

if TYPE_CHECKING:
    from studio.context import StudioContext

UPLOAD_ROUTE = "/gradio_api/upload"
FILE_ROUTES = ("/gradio_api/file=", "/gradio_api/file/")
MULTIPART_SLACK = 64 * 1024        # boundaries and part headers around the file bytes


class StudioGuard:
    def __init__(self, app, ctx: StudioContext, upload_dir: Path):
        self.app, self.ctx, self.upload_dir = app, ctx, upload_dir.resolve()

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        user = self._user(scope)
        path, method = scope["path"], scope["method"]
        if path == UPLOAD_ROUTE and method == "POST" and user is not None:
            return await self._upload(scope, receive, send, user)
        if path.startswith(FILE_ROUTES) and not self._may_read(path, user):
            return await _reply(send, 403, "File not allowed.")
        if user is None and self.ctx.users is not None and method == "GET" and _is_page(path):
            return await self.app(scope, receive, _rewriting(send, without_api_info))
        await self.app(scope, receive, send)

    def _user(self, scope) -> str | None:
        """The user of the request as the tabs name it, or None before login."""
        if self.ctx.users is None:
            return "local"
        name = session_user(scope)
        if name is not None and self.ctx.users.get(name) is None:
            end_sessions(scope, name)
            return None
        return sanitize_name(name) if name else None

    def _may_read(self, route_path: str, user: str | None) -> bool:
        file = Path(route_path.split("=", 1)[1] if "=" in route_path else route_path.split("/file/", 1)[1])
        if not file.resolve().is_relative_to(self.upload_dir):
            return True   # gradio's own rules decide
        owner = self.ctx.ledger.owner(file)
        return owner is None or owner == user

    async def _upload(self, scope, receive, send, user: str) -> None:
        lang = _language(scope)
        length = _content_length(scope)
        limit = self.ctx.settings.max_upload_bytes
        if length is None:
            return await _reply(send, 411, t(lang, "upload.need_length"))
        if length > limit + MULTIPART_SLACK:
            await _drain(receive, length, limit)
            return await _reply(send, 413, t(lang, "upload.too_big", mb=length / 2**20, limit=limit / 2**20))
        try:
            check_room(self.ctx, user, length)
        except NoRoom as err:
            await _drain(receive, length, limit)
            return await _reply(send, 507 if err.key == "room.disk" else 413, t(lang, err.key, **err.params))
        status, headers, body = await _captured(self.app, scope, receive)
        if status == 200:
            stored = json.loads(body)
            refused = [Path(p).name for p in stored if not p.lower().endswith(ALLOWED_SUFFIXES)]
            if refused:
                for p in stored:
                    self.ctx.ledger.discard(p)
                return await _reply(send, 415, t(lang, "upload.bad_type", name=refused[0],
                                                 allowed=", ".join(ALLOWED_SUFFIXES)))
            self.ctx.ledger.record(user, stored)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _is_page(path: str) -> bool:
    return not path.startswith(("/gradio_api", "/assets", "/static", "/svelte", "/login", "/favicon"))


def _language(scope) -> str:
    accept = dict(scope.get("headers", ())).get(b"accept-language", b"").decode("latin-1")
    return "vi" if accept.lower().startswith("vi") else "en"


def _content_length(scope) -> int | None:
    value = dict(scope.get("headers", ())).get(b"content-length")
    return int(value) if value and value.isdigit() else None


async def _drain(receive, length: int, limit: int) -> None:
    """Read a refused body to its end, so that the client reads the answer instead of a broken
    connection; one far over the limit is not waited for (the connection closes on it)."""
    if length > 4 * limit + MULTIPART_SLACK:
        return
    while True:
        message = await receive()
        if message["type"] != "http.request" or not message.get("more_body"):
            return


async def _reply(send, status: int, text: str) -> None:
    body = text.encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


async def _captured(app, scope, receive) -> tuple[int, list, bytes]:
    """Run the app and keep its whole response (the upload route answers with a short JSON list)."""
    parts: dict[str, Any] = {"status": 500, "headers": [], "body": b""}

    async def keep(message) -> None:
        if message["type"] == "http.response.start":
            parts["status"], parts["headers"] = message["status"], list(message.get("headers", []))
        elif message["type"] == "http.response.body":
            parts["body"] += message.get("body", b"")

    await app(scope, receive, keep)
    headers = [(k, v) for k, v in parts["headers"] if k.lower() != b"content-length"]
    return parts["status"], headers + [(b"content-length", str(len(parts["body"])).encode())], parts["body"]


def _rewriting(send, rewrite):
    """A `send` that buffers an HTML response and passes its body through `rewrite`."""
    held: dict[str, Any] = {}

    async def wrapped(message) -> None:
        if message["type"] == "http.response.start":
            held["start"], held["body"] = message, b""
            return
        if message["type"] != "http.response.body" or "start" not in held:
            return await send(message)
        held["body"] += message.get("body", b"")
        if message.get("more_body"):
            return
        start = held.pop("start")
        body = held["body"]
        if b"text/html" in dict(start.get("headers", [])).get(b"content-type", b""):
            body = rewrite(body)
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        await send({**start, "headers": headers + [(b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    return wrapped
