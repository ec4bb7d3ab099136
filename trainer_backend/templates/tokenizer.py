"""Load a tokenizer folder and make sure it carries the chat template the run asked for."""
from __future__ import annotations

import os
import socket
from pathlib import Path
from urllib.parse import urlparse

from transformers import AutoTokenizer, PreTrainedTokenizerBase

from .errors import TemplateError
from .fallbacks import FALLBACK_TEMPLATES

TEMPLATE_CHOICES = ("auto", *FALLBACK_TEMPLATES)


def load_tokenizer(name_or_path: str, template: str = "auto", local_only: bool = False) -> PreTrainedTokenizerBase:
    """Load `name_or_path` (from the local hub cache only when `local_only`); a named `template`
    replaces its chat template, "auto" keeps its own."""
    if template not in TEMPLATE_CHOICES:
        raise TemplateError(f"unknown template '{template}' (choices: {', '.join(TEMPLATE_CHOICES)})")
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(name_or_path), local_files_only=local_only)
    except (OSError, ValueError) as err:
        hint = "a folder with tokenizer files" if Path(name_or_path).exists() else "an existing model folder or hub id"
        raise TemplateError(f"cannot load a tokenizer from '{name_or_path}': expected {hint} ({err})") from None
    if template != "auto":
        tokenizer.chat_template = FALLBACK_TEMPLATES[template]
    elif not tokenizer.chat_template:
        names = ", ".join(FALLBACK_TEMPLATES)
        raise TemplateError(f"the tokenizer at '{name_or_path}' has no chat template: choose one of {names} "
                            "(template.name in the config, --template on the command line)")
    return tokenizer


HUB_CHECK_TIMEOUT_S = 3.0


def hub_reachable(timeout_s: float = HUB_CHECK_TIMEOUT_S) -> bool:
    """One TCP connection to the hub's endpoint: seconds, where a blocked hub makes transformers retry
    for about a minute."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        return False
    from huggingface_hub import constants

    url = urlparse(constants.ENDPOINT)
    try:
        socket.create_connection((url.hostname, url.port or (443 if url.scheme == "https" else 80)), timeout_s).close()
    except OSError:
        return False
    return True


def load_tokenizer_for_preview(name_or_path: str, template: str = "auto",
                               offline: str | None = None) -> tuple[PreTrainedTokenizerBase, str | None]:
    """(tokenizer, the stand-in used or None): a local folder, the local hub cache, the hub, or, when
    the hub cannot be reached, `offline` (a local tokenizer of the same family that a preset names)."""
    if Path(name_or_path).exists():
        return load_tokenizer(name_or_path, template), None
    try:
        return load_tokenizer(name_or_path, template, local_only=True), None
    except TemplateError:
        pass
    if hub_reachable():
        return load_tokenizer(name_or_path, template), None
    if offline and Path(offline).exists():
        return load_tokenizer(offline, template), offline
    hint = f"its offline stand-in '{offline}' is missing too" if offline else "the config names no offline stand-in"
    raise TemplateError(f"cannot load the tokenizer of '{name_or_path}': the model hub cannot be reached, no copy "
                        f"is cached here, and {hint}; give a local model folder (model.name_or_path) or set "
                        "model.offline_tokenizer to a local tokenizer of the same family")
