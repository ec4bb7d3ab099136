"""Random-init models of published architectures, for benchmarks on a GPU machine without a hub.

Random weights train at exactly the speed and memory of real ones. The tokenizer is byte-level with
no merges (one token per byte), which transformers loads the same whether it picks the generic
fast class or the architecture's own class (Qwen2Tokenizer rebuilds BPE from the vocabulary and
merges, and would drop a word-level vocabulary): a text of N ASCII letters is N tokens.
"""
from __future__ import annotations

from pathlib import Path


def write_byte_tokenizer(folder: Path, chat_template: str, specials: tuple[str, ...] = ()) -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {c: i for i, c in enumerate(alphabet)} | {"<pad>": 256, "<unk>": 257}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", unk_token="<unk>")
    if specials:
        fast.add_special_tokens({"additional_special_tokens": list(specials)})
        fast.eos_token = specials[-1]
    else:
        fast.add_special_tokens({"eos_token": "<eos>"})
    fast.chat_template = chat_template
    fast.save_pretrained(folder)


def chatml_tokenizer(folder: Path) -> None:
    """The project's ChatML template with its two special tokens (<|im_end|> ends a turn)."""
    from trainer_backend.templates import FALLBACK_TEMPLATES

    write_byte_tokenizer(folder, FALLBACK_TEMPLATES["chatml"], ("<|im_start|>", "<|im_end|>"))


def make_model_dir(folder: Path, fields: dict) -> Path:
    """Save a random-init bf16 model of the config.json `fields` (kept if already there) with a
    ChatML byte tokenizer."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    folder = Path(folder)
    if not (folder / "config.json").exists():
        kw = dict(fields)
        cfg = AutoConfig.for_model(kw.pop("model_type"), **kw)
        torch.manual_seed(0)
        with torch.device("cuda"):
            model = AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16)
        model.save_pretrained(folder)
        del model
        torch.cuda.empty_cache()
    chatml_tokenizer(folder)
    return folder


def letters(rng, n: int) -> str:
    """n random lowercase letters and spaces: n tokens under the byte tokenizer."""
    return "".join(rng.choice("abcdefghijklmnopqrstuvwxyz ") for _ in range(n))
