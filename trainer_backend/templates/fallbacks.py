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

def _mistral(open_inst: str, close_inst: str, answer: str) -> str:
    """The [INST] family as mistral-common encodes it for fine-tuning (an empty system prompt adds
    nothing), with one deliberate difference: the system prompt joins the FIRST user message.
    mistral-common v3 puts it in the last one, which changes the earlier turns each time the
    conversation grows; a training template must render every turn's prompt as a prefix of the whole
    conversation, so that every assistant turn can be trained. Rows with one user turn are identical."""
    return (
        "{% if messages[0]['role'] == 'system' %}"
        "{% set system = messages[0]['content'] + '\\n\\n' if messages[0]['content'] != '' else '' %}"
        "{% set loop_messages = messages[1:] %}"
        "{% else %}{% set system = '' %}{% set loop_messages = messages %}{% endif %}"
        "{{ bos_token }}"
        "{% for message in loop_messages %}"
        "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
        "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
        "{% endif %}"
        "{% if message['role'] == 'user' %}"
        f"{{{{ '{open_inst}' + (system if loop.first else '') + message['content'] + '{close_inst}' }}}}"
        f"{{% else %}}{{{{ ' ' + {answer} + eos_token }}}}{{% endif %}}"
        "{% endfor %}"
    )


# Source of both: https://docs.mistral.ai/cookbook/concept-deep-dive-tokenization-templates and
# mistral-common's InstructTokenizerV1/V3 (tests compare the ids on real data).
# Tokenizer v1 (Mistral-7B-Instruct v0.1/v0.2): <s> [INST] user [/INST] assistant</s> [INST] ...
MISTRAL = _mistral(" [INST] ", " [/INST]", "message['content']")
# Tokenizer v3 (Mistral-7B-Instruct v0.3, Mixtral-8x22B): [INST]/[/INST] are control tokens, there
# is no space before [/INST], and trailing spaces of an answer are dropped.
MISTRAL_V3 = _mistral("[INST] ", "[/INST]", "message['content'].rstrip(' ')")

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

# Llama 2 Chat (and the Vietnamese Llama 2 derivatives trained on its format): the system prompt
# sits in <<SYS>> tags inside the first user turn, every exchange is <s>[INST] user [/INST] answer </s>.
# Source: the chat template of https://huggingface.co/meta-llama/Llama-2-7b-chat-hf/blob/main/tokenizer_config.json
LLAMA2 = (
    "{% if messages[0]['role'] == 'system' %}"
    "{% set loop_messages = messages[1:] %}{% set system_message = messages[0]['content'] %}"
    "{% else %}{% set loop_messages = messages %}{% set system_message = false %}{% endif %}"
    "{% for message in loop_messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
    "{% endif %}"
    "{% if loop.index0 == 0 and system_message != false %}"
    "{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}"
    "{% else %}{% set content = message['content'] %}{% endif %}"
    "{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ ' ' + content.strip() + ' ' + eos_token }}{% endif %}"
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
    "llama2": LLAMA2,
    "alpaca": ALPACA,
}
