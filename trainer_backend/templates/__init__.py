"""Chat templates and exact loss masks: what the Template tab previews is what the trainer trains."""
from .build import BuildReport, apply_length_policy, build_examples
from .errors import TemplateError
from .example import Example
from .fallbacks import FALLBACK_TEMPLATES
from .render import LEADING_REASONING, prompt_ids, render_and_mask, render_and_mask_many, token_texts
from .tokenizer import TEMPLATE_CHOICES, load_tokenizer, load_tokenizer_for_preview

__all__ = [
    "BuildReport", "Example", "FALLBACK_TEMPLATES", "LEADING_REASONING", "TEMPLATE_CHOICES", "TemplateError",
    "apply_length_policy", "build_examples", "load_tokenizer", "load_tokenizer_for_preview", "prompt_ids",
    "render_and_mask", "render_and_mask_many", "token_texts",
]
