"""An Ollama `Modelfile` beside an exported GGUF file, so that `ollama create NAME -f Modelfile`
works without edits: FROM the file, a TEMPLATE rendered from the tokenizer's own chat template,
and the stop tokens that end a turn.

The TEMPLATE is found by rendering the chat template around marker strings (a system message, a
user message, an assistant reply) and putting Ollama's `{{ .System }}`, `{{ .Prompt }}` and
`{{ .Response }}` where the markers land. Ollama applies such a template to each turn of a
conversation in order.
"""
from __future__ import annotations

from pathlib import Path

from ..config import ConfigError

SYSTEM, PROMPT, RESPONSE = "\u27e6system\u27e7", "\u27e6prompt\u27e7", "\u27e6response\u27e7"
MODELFILE = "Modelfile"


def _render(tokenizer, messages: list[dict], generation: bool, chat_kwargs: dict) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation, **chat_kwargs)


def _literal(text: str) -> str:
    return text.replace("{{", '{{ "{{" }}')


def ollama_template(tokenizer, chat_kwargs: dict | None = None) -> tuple[str, str]:
    """(TEMPLATE text, the text that ends an assistant turn)."""
    chat_kwargs = chat_kwargs or {}
    user = [{"role": "user", "content": PROMPT}]
    plain = _render(tokenizer, user, True, chat_kwargs)
    before_prompt, after_prompt = plain.split(PROMPT)
    turn = _render(tokenizer, user + [{"role": "assistant", "content": RESPONSE}], False, chat_kwargs)
    end_of_turn = turn.split(RESPONSE, 1)[1]
    try:
        with_system = _render(tokenizer, [{"role": "system", "content": SYSTEM}] + user, True, chat_kwargs)
    except Exception:  # noqa: BLE001 - a template that refuses system messages (jinja raise_exception)
        with_system = None
    head = _literal(before_prompt)
    if with_system is not None and SYSTEM in with_system:
        system_prefix, rest = with_system.split(SYSTEM)
        between = rest.split(PROMPT)[0]
        head = (f"{{{{ if .System }}}}{_literal(system_prefix)}{{{{ .System }}}}{_literal(between)}"
                f"{{{{ else }}}}{_literal(before_prompt)}{{{{ end }}}}")
    template = f"{head}{{{{ .Prompt }}}}{_literal(after_prompt)}{{{{ .Response }}}}{_literal(end_of_turn)}"
    return template, end_of_turn


def stop_tokens(tokenizer, end_of_turn: str) -> list[str]:
    """The special tokens that end a turn in the template, and the tokenizer's eos token."""
    specials = [t.content for t in tokenizer.added_tokens_decoder.values() if t.special]
    stops = [s for s in specials if s in end_of_turn]
    if tokenizer.eos_token and tokenizer.eos_token not in stops:
        stops.append(tokenizer.eos_token)
    return stops


def modelfile_text(gguf_name: str, tokenizer, chat_kwargs: dict | None = None) -> str:
    template, end_of_turn = ollama_template(tokenizer, chat_kwargs)
    if '"""' in template:
        raise ConfigError('Modelfile: the chat template contains """, which a Modelfile TEMPLATE cannot hold')
    lines = [f"FROM ./{gguf_name}", f'TEMPLATE """{template}"""']
    lines += [f'PARAMETER stop "{s}"' for s in stop_tokens(tokenizer, end_of_turn)]
    return "\n".join(lines) + "\n"


def write_modelfile(folder: Path, gguf_name: str, tokenizer, chat_kwargs: dict | None = None) -> Path:
    path = Path(folder) / MODELFILE
    path.write_text(modelfile_text(gguf_name, tokenizer, chat_kwargs), encoding="utf-8")
    return path
