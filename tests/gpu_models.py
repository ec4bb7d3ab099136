"""The small random Qwen2 model the GPU tests share: real architecture code on both engines, a
word-level tokenizer of 1,000 tokens (`t0` ... `t999`) plus pad, eos and unk."""
from __future__ import annotations

from pathlib import Path


def small_qwen_dir(folder: Path, layers: int, vocab_size: int) -> Path:
    """Saves the model (bf16, seed 0) and its tokenizer to `folder`. `vocab_size` may exceed the
    tokenizer's 1,003 entries (a real model's vocabulary size, for the LM head's cost)."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import AutoConfig, AutoModelForCausalLM, PreTrainedTokenizerFast

    cfg = AutoConfig.for_model("qwen2", hidden_size=512, intermediate_size=1408, num_hidden_layers=layers,
                               num_attention_heads=8, num_key_value_heads=2, vocab_size=vocab_size,
                               max_position_embeddings=4096, tie_word_embeddings=True)
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16).save_pretrained(folder)
    vocab = {f"t{i}": i for i in range(1000)} | {"<pad>": 1000, "<eos>": 1001, "<unk>": 1002}
    word_level = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    word_level.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=word_level, pad_token="<pad>", eos_token="<eos>",
                            unk_token="<unk>").save_pretrained(folder)
    return folder
