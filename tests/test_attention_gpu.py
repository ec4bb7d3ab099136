"""GPU: packed rows through compiled FlexAttention give each document the loss it has alone, on
both engines, and Unsloth's attention really took the FlexAttention path on every layer.

Each engine runs in its own process: importing unsloth patches transformers for the whole process.
"""
from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LENGTHS = [300, 17, 500, 129, 64]   # 1,010 tokens: a 14-token tail rounds the row to 1,024
LAYERS = 3


def document_losses(engine: str, model_dir: str) -> dict:
    """Child process: per-document loss sums, packed (one row, FlexAttention) and alone."""
    if engine == "unsloth":
        import unsloth  # noqa: F401
    import torch

    sys.path.insert(0, str(ROOT))
    from trainer_backend.config import RunConfig
    from trainer_backend.models.engine import resolve_engine
    from trainer_backend.models.loading import load_for_training
    from trainer_backend.templates.example import Example
    from trainer_backend.train.passes import pass_inputs

    device = torch.device("cuda", 0)
    cfg = resolve_engine(RunConfig.model_validate({
        "model": {"name_or_path": model_dir, "engine": engine},
        "template": {"max_seq_len": 1024, "packing": True},
        "train": {"micro_batch_size": 1, "precision": "bf16" if engine == "unsloth" else "fp32",
                  "gradient_checkpointing": "off"},
        "sync": {"devices": [0]}, "output": {"dir": "/tmp/unused"},
    }), device)
    assert cfg.model.attn_implementation == "flex", cfg.model.attn_implementation
    rng = random.Random(0)
    docs = [[rng.randrange(1000) for _ in range(n)] for n in LENGTHS]
    model = load_for_training(cfg, device).model
    one = torch.ones((), device=device)

    def loss(examples) -> float:
        with torch.no_grad():
            return model(**pass_inputs(examples, cfg, 0, device), num_items_in_batch=one, use_cache=False).loss.item()

    def only(i: int) -> list:
        """All documents in the row, only document i trained."""
        return [Example(row=j, input_ids=d, trained=[j == i and k > 0 for k in range(len(d))], text="")
                for j, d in enumerate(docs)]

    packed = [loss(only(i)) for i in range(len(docs))]
    alone = [loss([only(i)[i]]) for i in range(len(docs))]
    calls = None
    if engine == "unsloth":
        from trainer_backend.models.unsloth_attention import install
        calls = sum(w.flex_calls for w in install())
    # the same row without any document mask: how far a leak across documents moves the losses
    ids = torch.tensor([[t for d in docs for t in d]], device=device)
    leaky = []
    for i in range(len(docs)):
        labels = torch.tensor([[t for e in only(i) for t in e.labels()]], device=device)
        with torch.no_grad():
            leaky.append(model(input_ids=ids, labels=labels, num_items_in_batch=one, use_cache=False).loss.item())
    return dict(packed=packed, alone=alone, leaky=leaky, flex_calls=calls)


@pytest.mark.gpu
def test_flex_packed_rows_give_every_document_its_own_loss_on_both_engines(tmp_path):
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import AutoConfig, AutoModelForCausalLM, PreTrainedTokenizerFast

    model_dir = tmp_path / "qwen-small"
    cfg = AutoConfig.for_model("qwen2", hidden_size=512, intermediate_size=1408, num_hidden_layers=LAYERS,
                               num_attention_heads=8, num_key_value_heads=2, vocab_size=1003,
                               max_position_embeddings=4096, tie_word_embeddings=True)
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16).save_pretrained(model_dir)
    vocab = {f"t{i}": i for i in range(1000)} | {"<pad>": 1000, "<eos>": 1001, "<unk>": 1002}
    word_level = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    word_level.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=word_level, pad_token="<pad>", eos_token="<eos>",
                            unk_token="<unk>").save_pretrained(model_dir)
    for engine, rel in (("hf", 1e-4), ("unsloth", 1e-2)):  # fp32 vs bf16
        out = subprocess.run([sys.executable, __file__, engine, str(model_dir)], capture_output=True, text=True,
                             cwd=ROOT, timeout=600)
        assert out.returncode == 0, out.stderr[-3000:]
        r = json.loads(out.stdout.strip().splitlines()[-1])
        assert r["packed"] == pytest.approx(r["alone"], rel=rel), engine
        if engine == "hf":
            # not vacuous: without the mask every document after the first sees the ones before it
            assert all(abs(lk - a) > 10 * rel * a for lk, a in zip(r["leaky"][1:], r["alone"][1:])), r
        else:
            # one call per layer per packed forward (5 of them); the alone passes are plain batches
            assert r["flex_calls"] == LAYERS * len(LENGTHS), r


if __name__ == "__main__":
    print(json.dumps(document_losses(sys.argv[1], sys.argv[2])))
