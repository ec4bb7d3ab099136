"""The error a user can fix by choosing another template or editing a row."""
from __future__ import annotations


class TemplateError(ValueError):
    """A chat template cannot render or mask a conversation; the message says what to do."""
