"""References the project did not write, for checking trained ids and masks on real data.

For each family: the rows of real data sets (chitchat conversations, chatterbot question/answer pairs,
English→Vietnamese message pairs of Debian's translations), and per rendered row

- ids: the tokenizer's own joint encoding of the rendered text (`tokenizer(text, add_special_tokens=False)`);
- text: the tokenizer's own `apply_chat_template` (for the templates the tokenizer ships);
- trained text: exactly each assistant answer, in the form the family's published template writes it,
  plus its end-of-turn token; cut where a token starting in the prompt absorbed the answer's first
  characters (read from the tokenizer's own offsets);
- Mistral: the ids of mistral-common's fine-tuning encoding.

Used by tests/test_templates_references.py (a sample) and bench/template_fidelity.py (all rows).
"""
from __future__ import annotations

import gettext
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

from trainer_backend.config import TemplateConfig
from trainer_backend.data import Conversation, Message, load_dataset

LOCALE_VI = Path("/usr/share/locale/vi/LC_MESSAGES")


@dataclass(frozen=True)
class Family:
    tokenizer: str                 # key of conftest.TOKENIZERS
    template: str
    thinking: bool | None
    eot: str
    own_template: bool             # the tokenizer ships this template: compare with apply_chat_template
    mistral_common: str | None = None   # the mistral-common model file to compare ids with


FAMILIES = {
    "smollm2": Family("smollm2", "auto", None, "<|im_end|>", True),
    "qwen3-thinking-on": Family("qwen3", "auto", True, "<|im_end|>", True),
    "qwen3-thinking-off": Family("qwen3", "auto", False, "<|im_end|>", True),
    "llama3": Family("llama3", "auto", None, "<|eot_id|>", True),
    "mistral-v1": Family("mistral-v1", "mistral", None, "</s>", False, "tokenizer.model.v1"),
    "mistral-v3": Family("mistral-v3", "mistral-v3", None, "</s>", False, "mistral_instruct_tokenizer_240323.model.v3"),
    "vistral-on-mistral-v1": Family("mistral-v1", "vistral", None, "</s>", False),
    "llama2-on-mistral-v1": Family("mistral-v1", "llama2", None, "</s>", False),
}


def vietnamese_pairs(limit: int, per_row: int = 3) -> list[dict]:
    """English→Vietnamese message pairs from the installed Debian translations, `per_row` exchanges a
    row (ShareGPT rows); many start or end with spaces or newlines, as the messages do."""
    rows, turns = [], []
    for mo in sorted(LOCALE_VI.glob("*.mo")):
        with open(mo, "rb") as f:
            catalog = gettext.GNUTranslations(f)._catalog
        for en, vi in catalog.items():
            if isinstance(en, str) and en.strip() and isinstance(vi, str) and vi.strip() and vi != en:
                turns += [{"from": "human", "value": f"Dịch sang tiếng Việt: {en}"}, {"from": "gpt", "value": vi}]
                if len(turns) == 2 * per_row:
                    rows.append({"conversations": turns})
                    turns = []
                    if len(rows) >= limit:
                        return rows
    return rows


def real_conversations(data_dir: Path, tmp: Path, per_source: int) -> list[Conversation]:
    """`per_source` rows of each real data set, numbered in one sequence."""
    vi = tmp / "vi_pairs.jsonl"
    vi.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in vietnamese_pairs(per_source)),
                  encoding="utf-8")
    convs = []
    for path in (data_dir / "chitchat_sharegpt.jsonl", data_dir / "chatterbot_alpaca.jsonl", vi):
        convs += load_dataset(path).conversations[:per_source]
    return [Conversation(row=i, messages=c.messages) for i, c in enumerate(convs)]


def answer_forms(family: Family, conv: Conversation, tcfg: TemplateConfig) -> list[str]:
    """Each assistant answer as the family's published template writes it, with its end of turn."""
    answers = [m.content for m in conv.messages if m.role == "assistant"]
    name = family.template if family.template != "auto" else family.tokenizer
    if name in ("llama3", "vistral"):
        return [a.strip() + family.eot for a in answers]
    if name == "llama2":
        return [" " + a.strip() + " " + family.eot for a in answers]
    if name == "mistral":
        return [" " + a + family.eot for a in answers]
    if name == "mistral-v3":
        return [" " + a.rstrip(" ") + family.eot for a in answers]
    if name == "qwen3":
        last = answers[-1].lstrip("\n")
        if conv.messages[-1].role == "assistant":
            last = ("" if family.thinking is False else "<think>\n\n</think>\n\n") + last
        return [a + family.eot for a in answers[:-1]] + [last + family.eot]
    return [a + family.eot for a in answers]


@dataclass
class Tally:
    rows: int = 0
    dropped: int = 0
    ids: int = 0            # rows whose ids differ from the joint encoding
    text: int = 0           # rows whose text differs from apply_chat_template
    trained: int = 0        # rows whose trained text differs from the answers
    mistral_common: int = 0  # rows whose pieces, joined, differ from mistral-common's (another layout)
    mistral_common_ids: int = 0  # rows whose ids differ from mistral-common's (also: runs of spaces split
    #                              by the HF tokenizer unlike the sentencepiece library: "▁▁|Where" vs "▁|▁Where")
    examples: dict[str, list[int]] = field(default_factory=dict)   # check -> first rows that differ

    def differ(self, check: str, row: int) -> None:
        setattr(self, check, getattr(self, check) + 1)
        self.examples.setdefault(check, [])
        if len(self.examples[check]) < 5:
            self.examples[check].append(row)


def trained_runs(text: str, offsets, trained) -> list[str]:
    """The text of each maximal run of trained tokens, read from the tokenizer's offsets."""
    runs, start, end = [], None, None
    for (a, b), flag in zip(list(offsets) + [(None, None)], list(trained) + [False]):
        if flag:
            start = a if start is None else start
            end = b
        elif start is not None:
            runs.append(text[start:end])
            start = None
    return runs


def expected_runs(text: str, forms: list[str], offsets) -> list[str] | None:
    """Each answer form located in `text` in order, less the leading characters held by a token
    that starts before it (the documented boundary rule); None when a form is not in the text."""
    out, pos = [], 0
    for form in forms:
        at = text.find(form, pos)
        if at < 0:
            return None
        first = next(b for a, b in offsets if b > at)   # end of the token holding the form's first char
        holder_start = next(a for a, b in offsets if b > at)
        out.append(form if holder_start >= at else form[first - at:])
        pos = at + len(form)
    return [r for r in out if r]


def mistral_common_ids(model_file: Path, conv: Conversation, system_prompt: str | None = None) -> list[int]:
    """mistral-common is fetched into the asset cache (cache/pkgs/mistral_common/data/<model file>)."""
    pkgs = str(model_file.parent.parent.parent)
    if pkgs not in sys.path:
        sys.path.append(pkgs)
    from mistral_common.protocol.instruct.messages import AssistantMessage, SystemMessage, UserMessage
    from mistral_common.protocol.instruct.request import ChatCompletionRequest
    from mistral_common.protocol.instruct.validator import ValidationMode
    from mistral_common.tokens.tokenizers.mistral import MistralTokenizer

    kinds = {"system": SystemMessage, "user": UserMessage, "assistant": AssistantMessage}
    tokenizer = _mistral_tokenizers.setdefault(model_file, MistralTokenizer.from_file(str(model_file),
                                                                                      mode=ValidationMode.finetuning))
    messages = list(conv.messages)
    if system_prompt and (not messages or messages[0].role != "system"):
        messages.insert(0, Message("system", system_prompt))
    request = ChatCompletionRequest(messages=[kinds[m.role](content=m.content) for m in messages])
    return tokenizer.encode_chat_completion(request).tokens


_mistral_tokenizers: dict = {}


def check(family: Family, tok, convs: list[Conversation], tcfg: TemplateConfig, mistral_data: Path | None,
          build) -> Tally:
    """Every check on every row; `build(convs, tok, tcfg)` is the project's build_examples."""
    examples, report = build(convs, tok, tcfg)
    tally = Tally(rows=len(convs), dropped=report.rows_in - report.kept)
    by_row = {c.row: c for c in convs}
    kwargs = {} if family.thinking is None else {"enable_thinking": family.thinking}
    for ex in examples:
        conv = by_row[ex.row]
        enc = tok(ex.text, add_special_tokens=False, return_offsets_mapping=True)
        if enc["input_ids"] != ex.input_ids:
            tally.differ("ids", ex.row)
        if family.own_template:
            messages = [{"role": m.role, "content": m.content} for m in conv.messages]
            if tcfg.system_prompt and messages[0]["role"] != "system":
                messages.insert(0, {"role": "system", "content": tcfg.system_prompt})
            if tok.apply_chat_template(messages, tokenize=False, **kwargs) != ex.text:
                tally.differ("text", ex.row)
        want = expected_runs(ex.text, answer_forms(family, conv, tcfg), enc["offset_mapping"])
        if enc["input_ids"] != ex.input_ids or want != trained_runs(ex.text, enc["offset_mapping"], ex.trained):
            tally.differ("trained", ex.row)
        if family.mistral_common and mistral_data is not None:
            reference = mistral_common_ids(mistral_data / family.mistral_common, conv, tcfg.system_prompt)
            if reference != ex.input_ids:
                tally.differ("mistral_common_ids", ex.row)
            if "".join(tok.convert_ids_to_tokens(reference)) != "".join(tok.convert_ids_to_tokens(ex.input_ids)):
                tally.differ("mistral_common", ex.row)
    return tally
