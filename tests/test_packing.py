"""Packing: bins within budget, exact collated tensors, and packed losses equal to one-by-one losses."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from trainer_backend.config import TemplateConfig
from trainer_backend.data import Conversation, Message
from trainer_backend.packing import collate_packed, collate_padded, pack
from trainer_backend.templates import Example, build_examples, load_tokenizer


def ex(row: int, n: int, trained_from: int = 1) -> Example:
    return Example(row=row, input_ids=list(range(100 + row, 100 + row + n)),
                   trained=[i >= trained_from for i in range(n)], text="")


def test_pack_fills_bins_best_fit_decreasing_and_is_deterministic():
    examples = [ex(0, 6), ex(1, 5), ex(2, 4), ex(3, 3), ex(4, 2), ex(5, 7)]
    bins = pack(examples, token_budget=10)
    assert [[e.row for e in b] for b in bins] == [[5, 3], [0, 2], [1, 4]]
    assert all(sum(len(e.input_ids) for e in b) <= 10 for b in bins)
    assert pack(examples, 10) == bins


def test_pack_refuses_an_example_longer_than_the_budget():
    with pytest.raises(ValueError, match="row 1 has 12 tokens, more than the packing budget of 10"):
        pack([ex(0, 3), ex(1, 12)], 10)


def test_collate_packed_tensors():
    batch = collate_packed([ex(0, 3, trained_from=2), ex(1, 4, trained_from=1)])
    assert batch.input_ids.tolist() == [[100, 101, 102, 101, 102, 103, 104]]
    assert batch.labels.tolist() == [[-100, -100, 102, -100, 102, 103, 104]]
    assert batch.position_ids.tolist() == [[0, 1, 2, 0, 1, 2, 3]]
    assert batch.cu_seqlens.tolist() == [0, 3, 7] and batch.cu_seqlens.dtype == torch.int32
    assert (batch.max_seqlen, batch.n_trained) == (4, 4)


def test_collate_padded_tensors():
    batch = collate_padded([ex(0, 2), ex(1, 3, trained_from=2)], pad_id=0)
    assert batch.input_ids.tolist() == [[100, 101, 0], [101, 102, 103]]
    assert batch.labels.tolist() == [[-100, 101, -100], [-100, -100, 103]]
    assert batch.attention_mask.tolist() == [[1, 1, 0], [1, 1, 1]]
    assert batch.n_trained == 2


def _token_losses(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per-position loss of the HF shift (position i predicts label i+1); 0 where untrained."""
    return F.cross_entropy(logits[0, :-1].float(), labels[0, 1:], ignore_index=-100, reduction="none")


def test_packed_batch_gives_the_same_per_token_losses_as_one_by_one(tiny_llama_dir):
    from transformers import AutoModelForCausalLM

    tok = load_tokenizer(str(tiny_llama_dir))
    convs = [Conversation(row=i, messages=(Message("user", q), Message("assistant", a)))
             for i, (q, a) in enumerate([("Xin chào", "Chào bạn, rất vui được gặp."),
                                         ("Hà Nội ở đâu?", "Ở miền Bắc Việt Nam."),
                                         ("1+1?", "2")])]
    examples, _ = build_examples(convs, tok, TemplateConfig())
    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir, dtype=torch.float32, attn_implementation="sdpa").eval()
    batch = collate_packed(examples)
    with torch.no_grad():
        packed = _token_losses(model(input_ids=batch.input_ids, position_ids=batch.position_ids,
                                     use_cache=False).logits, batch.labels)
        singles = [_token_losses(model(input_ids=b.input_ids, use_cache=False).logits, b.labels)
                   for b in (collate_packed([e]) for e in examples)]
        # the last token of a sequence "predicts" the next sequence's untrained first token: loss 0
        alone = torch.cat([torch.cat([s, torch.zeros(1)]) for s in singles])[:-1]
        # without restarting positions the sequences would see each other: the check above is not vacuous
        leaky = _token_losses(model(input_ids=batch.input_ids, use_cache=False).logits, batch.labels)
    assert packed.shape == alone.shape
    assert torch.allclose(packed, alone, atol=1e-5, rtol=0)
    assert not torch.allclose(leaky, alone, atol=1e-3, rtol=0)
    assert (packed > 0).sum().item() == batch.n_trained
