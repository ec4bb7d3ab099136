"""Chat templates and exact loss masks: what the Template tab previews is what the trainer trains."""
from .build import BuildReport, apply_length_policy, build_examples
from .errors import TemplateError
from .example import Example
from .fallbacks import FALLBACK_TEMPLATES
from .render import render_and_mask, render_and_mask_many
from .tokenizer import TEMPLATE_CHOICES, load_tokenizer

__all__ = [
    "BuildReport", "Example", "FALLBACK_TEMPLATES", "TEMPLATE_CHOICES", "TemplateError", "apply_length_policy",
    "build_examples", "load_tokenizer", "render_and_mask", "render_and_mask_many",
]
