"""Random-init models of published architectures, for benchmarks on a GPU machine without a hub.

Random weights train at exactly the speed and memory of real ones. The tokenizer is byte-level with
no merges (one token per byte), which transformers loads the same whether it picks the generic
fast class or the architecture's own class (Qwen2Tokenizer rebuilds BPE from the vocabulary and
merges, and would drop a word-level vocabulary): a text of N ASCII letters is N tokens.
"""
from __future__ import annotations

from pathlib import Path


def chatml_tokenizer(folder: Path) -> None:
    """Byte-level, no merges, with the project's ChatML template and its two special tokens
    (<|im_end|> ends a turn)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    from trainer_backend.templates import FALLBACK_TEMPLATES

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {c: i for i, c in enumerate(alphabet)} | {"<pad>": 256, "<unk>": 257}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", unk_token="<unk>")
    fast.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"]})
    fast.eos_token = "<|im_end|>"
    fast.chat_template = FALLBACK_TEMPLATES["chatml"]
    fast.save_pretrained(folder)


def architecture(name: str) -> dict:
    """Published config.json fields of a shape the planner was calibrated on (qwen2.5-1.5b,
    qwen2.5-7b, mistral-7b, qwen3-8b): trainer_backend/planner/calibration.yaml is their one record."""
    from trainer_backend.planner.calibration import load_calibration

    return dict(load_calibration().architectures[name])


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


def write_alpaca_letters(path: Path, rows: int, seq: int, seed: int = 0) -> None:
    """Alpaca rows longer than `seq` tokens (a prompt of seq/8 letters, an answer of seq): once
    truncated to template.max_seq_len = seq, every example is exactly `seq` tokens."""
    import json
    import random

    rng = random.Random(seed)
    with Path(path).open("w") as f:
        for _ in range(rows):
            f.write(json.dumps({"instruction": letters(rng, seq // 8), "output": letters(rng, seq)}) + "\n")


def timed_random_steps(model, optimizer, batch: int, seq: int, steps: int, accum: int = 1) -> list[float]:
    """Wall seconds of each optimizer step of `accum` passes of (batch, seq) random token ids (below
    1000), each pass's loss divided by `accum`: a bare loop, the raw baseline of the benches."""
    import time

    import torch

    times = []
    for _ in range(steps):
        torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(accum):
            ids = torch.randint(0, 1000, (batch, seq), device="cuda")
            (model(input_ids=ids, labels=ids).loss / accum).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return times
