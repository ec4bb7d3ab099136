"""Named chat templates for tokenizers that ship none (or when the user picks one).

Each renders a list of {role, content} messages like a tokenizer's own template, including
`add_generation_prompt`, so masking works the same way for them as for built-in templates.
"""
from __future__ import annotations

CHATML = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

# Llama 3 Instruct: the header/eot layout of Meta's published template.
LLAMA3 = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}"
)

def _mistral(open_inst: str, close_inst: str) -> str:
    """The [INST] family: the system prompt joins the FIRST user message. (mistral-common v3 puts
    it in the last one, but a training template must render every turn's prompt as a prefix of
    the whole conversation.)"""
    return (
        "{% if messages[0]['role'] == 'system' %}"
        "{% set system = messages[0]['content'] + '\\n\\n' %}{% set loop_messages = messages[1:] %}"
        "{% else %}{% set system = '' %}{% set loop_messages = messages %}{% endif %}"
        "{{ bos_token }}"
        "{% for message in loop_messages %}"
        "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
        "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
        "{% endif %}"
        "{% if message['role'] == 'user' %}"
        f"{{{{ '{open_inst}' + (system if loop.first else '') + message['content'] + '{close_inst}' }}}}"
        "{% else %}{{ ' ' + message['content'] + eos_token }}{% endif %}"
        "{% endfor %}"
    )


# Source of both: https://docs.mistral.ai/cookbook/concept-deep-dive-tokenization-templates
# Tokenizer v1 (Mistral-7B-Instruct v0.1/v0.2): <s> [INST] user [/INST] assistant</s> [INST] ...
MISTRAL = _mistral(" [INST] ", " [/INST]")
# Tokenizer v3 (Mistral-7B-Instruct v0.3, Mixtral-8x22B): [INST]/[/INST] are control tokens and
# there is no space before [/INST].
MISTRAL_V3 = _mistral("[INST] ", "[/INST]")

# Vistral-7B-Chat (Mistral v1 layout with an extended Vietnamese vocabulary): the system prompt
# joins the first user turn, the answer follows [/INST] directly and ends with </s>.
# Source: https://huggingface.co/Viet-Mistral/Vistral-7B-Chat/blob/main/tokenizer_config.json
VISTRAL = (
    "{% if messages[0]['role'] == 'system' %}"
    "{% set loop_messages = messages[1:] %}{% set system_message = messages[0]['content'].strip() + '\\n\\n' %}"
    "{% else %}{% set loop_messages = messages %}{% set system_message = '' %}{% endif %}"
    "{{ bos_token }}"
    "{% for message in loop_messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
    "{% endif %}"
    "{% if loop.index0 == 0 %}{% set content = system_message + message['content'] %}"
    "{% else %}{% set content = message['content'] %}{% endif %}"
    "{% if message['role'] == 'user' %}{{ '[INST] ' + content.strip() + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ content.strip() + eos_token }}{% endif %}"
    "{% endfor %}"
)

# Alpaca-style plain text for base models: no special tokens but the final eos.
ALPACA = (
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{ message['content'] + '\\n\\n' }}"
    "{% elif message['role'] == 'user' %}{{ '### Instruction:\\n' + message['content'] + '\\n\\n' }}"
    "{% else %}{{ '### Response:\\n' + message['content'] + eos_token + '\\n\\n' }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '### Response:\\n' }}{% endif %}"
)

FALLBACK_TEMPLATES: dict[str, str] = {
    "chatml": CHATML,
    "llama3": LLAMA3,
    "mistral": MISTRAL,
    "mistral-v3": MISTRAL_V3,
    "vistral": VISTRAL,
    "alpaca": ALPACA,
}
