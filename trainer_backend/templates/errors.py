"""The error a user can fix by choosing another template or editing a row."""
from __future__ import annotations

from ..messages import Notice, msg


class TemplateError(ValueError):
    """A chat template cannot render or mask a conversation; the message says what to do. The
    errors of one row are Notices (shown among the row errors in the user's language); loading
    errors may be plain text."""

    def __init__(self, message: Notice | str):
        super().__init__(str(message))
        self.notice = message if isinstance(message, Notice) else msg("detail", detail=message)
