"""A tokenizer as GGUF metadata: the vocabulary in id order with token types, the BPE merges,
SentencePiece-style scores, the special token ids and the chat template, in the keys llama.cpp
reads (`tokenizer.ggml.*`, `tokenizer.chat_template`).

Two layouts, told apart by the tokenizer's own definition (tokenizer.json):
- byte-level BPE (Llama 3, Qwen, SmolLM2): model `gpt2`, with the pre-tokenizer named as llama.cpp
  names its regex (`tokenizer.ggml.pre`);
- SentencePiece BPE with byte fallback (Mistral, Llama 2, Vistral): model `llama`, with scores
  (a token made by merge r scores -r, so that llama.cpp merges in the same order) and merges.
"""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass

from gguf import GGUFWriter, TokenType

from ..config import ConfigError

# Split patterns of tokenizer.json -> the name llama.cpp gives the same regex
SPLIT_PATTERNS = {
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+": "llama-bpe",
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+": "qwen2",
}


@dataclass
class Vocab:
    model: str                 # gpt2 | llama
    pre: str | None            # llama.cpp's pre-tokenizer name (gpt2 model only)
    tokens: list[str]
    types: list[int]
    merges: list[str]
    scores: list[float] | None
    add_space_prefix: bool


def pre_tokenizer_name(pre: dict | None) -> str:
    """The llama.cpp name of a byte-level pre-tokenizer; `default` (with a warning) when unknown."""
    steps = pre.get("pretokenizers", []) if pre and pre.get("type") == "Sequence" else [pre] if pre else []
    kinds = [s.get("type") for s in steps]
    if kinds == ["ByteLevel"] and steps[0].get("use_regex", True):
        return "gpt-2"
    if kinds == ["Digits", "ByteLevel"] and steps[0].get("individual_digits") and steps[1].get("use_regex", True):
        return "smollm"
    if kinds == ["Split", "ByteLevel"] and steps[0]["pattern"].get("Regex") in SPLIT_PATTERNS:
        return SPLIT_PATTERNS[steps[0]["pattern"]["Regex"]]
    print(f"GGUF export: the tokenizer's pre-tokenizer {kinds} has no llama.cpp name; writing 'default', "
          "with which llama.cpp may split some text differently from the tokenizer", file=sys.stderr)
    return "default"


def read_vocab(tokenizer, vocab_size: int) -> Vocab:
    """`vocab_size` is the model's (embedding rows), which may exceed the tokenizer's: the rows no
    token uses are written as unused `[PAD<i>]` tokens, as llama.cpp's converter does."""
    spec = json.loads(tokenizer.backend_tokenizer.to_str())
    model = spec["model"]
    if model.get("type") != "BPE":
        raise ConfigError(f"GGUF export: the tokenizer's model is {model.get('type')}; only BPE tokenizers "
                          "(byte-level or SentencePiece-style) are supported")
    by_id = {i: tok for tok, i in tokenizer.get_vocab().items()}
    if len(by_id) > vocab_size:
        raise ConfigError(f"GGUF export: the tokenizer has {len(by_id)} tokens but the model only {vocab_size} embeddings")
    added = {t.content: t for t in tokenizer.added_tokens_decoder.values()}
    sentencepiece = bool(model.get("byte_fallback")) and (spec.get("pre_tokenizer") or {}).get("type") == "Metaspace"
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges", [])]
    tokens, types = [], []
    for i in range(vocab_size):
        tok = by_id.get(i)
        if tok is None:
            tokens.append(f"[PAD{i}]")
            types.append(TokenType.UNUSED)
        elif tok in added:
            tokens.append(tok)
            types.append(TokenType.CONTROL if added[tok].special else TokenType.USER_DEFINED)
        else:
            tokens.append(tok)
            types.append(_sentencepiece_type(tok, tokenizer) if sentencepiece else TokenType.NORMAL)
    if not sentencepiece:
        return Vocab("gpt2", pre_tokenizer_name(spec.get("pre_tokenizer")), tokens, [int(t) for t in types],
                     merges, None, add_space_prefix=False)
    made_by = {m.replace(" ", ""): rank for rank, m in reversed(list(enumerate(merges)))}
    scores = [-float(made_by[t]) if t in made_by and ty == TokenType.NORMAL else 0.0 for t, ty in zip(tokens, types)]
    prepend = spec["pre_tokenizer"].get("prepend_scheme", "always") != "never"
    return Vocab("llama", None, tokens, [int(t) for t in types], merges, scores, add_space_prefix=prepend)


def _sentencepiece_type(tok: str, tokenizer) -> TokenType:
    if tok == tokenizer.unk_token:
        return TokenType.UNKNOWN
    if len(tok) == 6 and tok.startswith("<0x") and tok.endswith(">"):
        return TokenType.BYTE
    return TokenType.NORMAL


def adds_token(tokenizer, token_id: int | None, position: int) -> bool:
    """Whether plain encoding puts `token_id` first (position 0) or last (-1), as training saw it."""
    ids = tokenizer("a")["input_ids"]
    return token_id is not None and bool(ids) and ids[position] == token_id


def write_vocab(writer: GGUFWriter, tokenizer, vocab_size: int) -> Vocab:
    vocab = read_vocab(tokenizer, vocab_size)
    writer.add_tokenizer_model(vocab.model)
    if vocab.pre:
        writer.add_tokenizer_pre(vocab.pre)
    writer.add_token_list(vocab.tokens)
    writer.add_token_types(vocab.types)
    if vocab.scores is not None:
        writer.add_token_scores(vocab.scores)
    writer.add_token_merges(vocab.merges)
    for add, token_id in ((writer.add_bos_token_id, tokenizer.bos_token_id), (writer.add_eos_token_id, tokenizer.eos_token_id),
                          (writer.add_unk_token_id, tokenizer.unk_token_id), (writer.add_pad_token_id, tokenizer.pad_token_id)):
        if token_id is not None:
            add(token_id)
    writer.add_add_bos_token(adds_token(tokenizer, tokenizer.bos_token_id, 0))
    writer.add_add_eos_token(adds_token(tokenizer, tokenizer.eos_token_id, -1))
    writer.add_add_space_prefix(vocab.add_space_prefix)
    if tokenizer.chat_template:
        writer.add_chat_template(tokenizer.chat_template)
    return vocab
