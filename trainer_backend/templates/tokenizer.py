"""Load a tokenizer folder and make sure it carries the chat template the run asked for."""
from __future__ import annotations

from pathlib import Path

from transformers import AutoTokenizer, PreTrainedTokenizerBase

from .errors import TemplateError
from .fallbacks import FALLBACK_TEMPLATES

TEMPLATE_CHOICES = ("auto", *FALLBACK_TEMPLATES)


def load_tokenizer(name_or_path: str, template: str = "auto") -> PreTrainedTokenizerBase:
    """Load `name_or_path`; a named `template` replaces its chat template, "auto" keeps its own."""
    if template not in TEMPLATE_CHOICES:
        raise TemplateError(f"unknown template '{template}' (choices: {', '.join(TEMPLATE_CHOICES)})")
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(name_or_path))
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
