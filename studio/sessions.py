"""The one place that knows gradio's private session details (tests/test_studio_hosting.py fails
when an upgrade moves them): the login cookie and token table of gradio's App, and where the page
template embeds the API description."""
from __future__ import annotations

import re
from typing import Any

from starlette.requests import cookie_parser

_API_INFO = re.compile(rb"window\.gradio_api_info = .*?;</script>", re.S)


def session_user(scope: dict[str, Any]) -> str | None:
    """The logged-in name of an ASGI request to the gradio app, or None."""
    app = scope.get("app")
    tokens, cookie_id = getattr(app, "tokens", None), getattr(app, "cookie_id", None)
    if tokens is None or cookie_id is None:
        raise RuntimeError("gradio's App no longer has `tokens` and `cookie_id`; update studio/sessions.py")
    header = b"; ".join(value for name, value in scope.get("headers", ()) if name == b"cookie")
    cookies = cookie_parser(header.decode("latin-1"))
    for key in (f"access-token-{cookie_id}", f"access-token-unsecure-{cookie_id}"):
        if cookies.get(key) in tokens:
            return tokens[cookies[key]]
    return None


def end_sessions(scope: dict[str, Any], name: str) -> None:
    """Log `name` out everywhere (the user was removed from the users file)."""
    tokens = scope["app"].tokens
    for token in [t for t, user in tokens.items() if user == name]:
        tokens.pop(token, None)


def without_api_info(page: bytes) -> bytes:
    """The page gradio serves before login, without the description of every endpoint (it names
    the server's folders in its example values)."""
    stripped, count = _API_INFO.subn(b"window.gradio_api_info = null;</script>", page, count=1)
    if count != 1 and b"gradio_api_info" in page:
        raise RuntimeError("gradio's page template changed; update studio/sessions.py")
    return stripped
