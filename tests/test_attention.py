"""Document-causal attention for packed rows (CPU): the BlockMask equals the one torch builds from
the mask function, FlexAttention on it equals SDPA with the dense document mask, and a tiny model
gives every packed sequence the per-token losses it has alone."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.nn.attention.flex_attention import create_block_mask

from trainer_backend.models.attention import (BLOCK, document_attention, document_block_mask, document_ids,
                                              padded_length, register_hf_implementation)
from trainer_backend.packing import collate_packed
from trainer_backend.templates.example import Example

CPU = torch.device("cpu")
LENGTH_SETS = [[3, 5, 120], [300, 17, 200, 250, 1], [128, 128, 256], [1000], [130, 126, 4, 252], [1] * 200 + [56]]


def dense_document_mask(lengths: list[int]) -> torch.Tensor:
    doc = document_ids(lengths, sum(lengths), CPU)
    n = sum(lengths)
    return (doc[:, None] == doc[None, :]) & torch.ones(n, n, dtype=torch.bool).tril()


@pytest.mark.parametrize("lengths", LENGTH_SETS)
def test_block_mask_is_the_one_torch_builds_from_the_document_causal_mask_function(lengths):
    n = sum(lengths)
    doc = document_ids(lengths, n, CPU)
    ours = document_block_mask(lengths, CPU)
    ref = create_block_mask(lambda b, h, q, kv: (doc[q] == doc[kv]) & (q >= kv), None, None, n, n, device="cpu")
    for field in ("kv_num_blocks", "full_kv_num_blocks", "q_num_blocks", "full_q_num_blocks"):
        assert torch.equal(getattr(ours, field), getattr(ref, field)), field
    assert torch.equal(ours.to_dense(), ref.to_dense())
    assert ours.mask_mod(0, 0, torch.tensor(n - 1), torch.tensor(0)).item() == (len(lengths) == 1)


@pytest.mark.parametrize("lengths", LENGTH_SETS[:3])
def test_flex_and_the_per_document_path_equal_sdpa_with_the_dense_mask(lengths):
    torch.manual_seed(0)
    n = sum(lengths)
    q = torch.randn(1, 4, n, 16, requires_grad=True)
    k, v = torch.randn(1, 2, n, 16), torch.randn(1, 2, n, 16)
    expect = F.scaled_dot_product_attention(q, k.repeat_interleave(2, 1), v.repeat_interleave(2, 1),
                                            attn_mask=dense_document_mask(lengths))
    mask = document_block_mask(lengths, CPU)
    with torch.no_grad():
        flex = document_attention(q, k, v, mask)           # FlexAttention (CPU has its forward only)
    per_doc = document_attention(q, k, v, mask, lengths=lengths)  # what a CPU pass with gradients runs
    torch.testing.assert_close(flex, expect, atol=2e-6, rtol=0)
    torch.testing.assert_close(per_doc, expect, atol=2e-6, rtol=0)
    grad, = torch.autograd.grad(per_doc.sum(), q)
    grad_ref, = torch.autograd.grad(expect.sum(), q)
    torch.testing.assert_close(grad, grad_ref, atol=2e-6, rtol=0)


def test_collate_packed_rounds_the_row_up_with_a_tail_that_is_its_own_untrained_document():
    a = Example(row=0, input_ids=[5, 6, 7], trained=[False, True, True], text="")
    b = Example(row=1, input_ids=[8, 9, 10, 11], trained=[False, False, True, True], text="")
    batch = collate_packed([a, b], pad_id=0, multiple=8)
    assert batch.input_ids.tolist() == [[5, 6, 7, 8, 9, 10, 11, 0]]
    assert batch.labels.tolist() == [[-100, 6, 7, -100, -100, 10, 11, -100]]
    assert batch.position_ids.tolist() == [[0, 1, 2, 0, 1, 2, 3, 0]]
    assert batch.cu_seqlens.tolist() == [0, 3, 7, 8] and batch.n_trained == 4
    assert padded_length(1) == BLOCK and padded_length(BLOCK) == BLOCK and padded_length(BLOCK + 1) == 2 * BLOCK


def test_packed_row_through_the_registered_flex_kernel_gives_each_sequence_its_own_losses(tiny_llama_dir):
    """One packed row (with its tail) through attn_implementation=document_flex, FlexAttention on
    CPU: every position's loss equals the loss of that sequence run alone (reference: transformers'
    SDPA on the single sequence), and the same row without the mask does not."""
    from transformers import AutoModelForCausalLM

    name = register_hf_implementation()
    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir, dtype=torch.float32, attn_implementation=name).eval()
    reference = AutoModelForCausalLM.from_pretrained(tiny_llama_dir, dtype=torch.float32,
                                                     attn_implementation="sdpa").eval()
    gen = torch.Generator().manual_seed(0)
    examples = [Example(row=i, input_ids=torch.randint(100, 5000, (n,), generator=gen).tolist(),
                        trained=[j > 0 for j in range(n)], text="") for i, n in enumerate([40, 7, 150, 40])]
    row = collate_packed(examples, pad_id=2, multiple=BLOCK)
    assert row.input_ids.shape == (1, 2 * BLOCK)
    real = sum(len(e.input_ids) for e in examples)
    with torch.no_grad():
        logits = model(input_ids=row.input_ids, position_ids=row.position_ids, use_cache=False,
                       attention_mask=document_block_mask(row.cu_seqlens.diff(), CPU)).logits[0, :real]
        alone = torch.cat([reference(input_ids=torch.tensor([e.input_ids]), use_cache=False).logits[0]
                           for e in examples])
        leaky = reference(input_ids=row.input_ids[:, :real], use_cache=False).logits[0]
    labels = torch.tensor([t for e in examples for t in e.input_ids])
    token_loss = F.cross_entropy(logits, labels, reduction="none")  # every position vs a fixed target
    torch.testing.assert_close(token_loss, F.cross_entropy(alone, labels, reduction="none"), atol=1e-5, rtol=0)
    assert not torch.allclose(F.cross_entropy(leaky, labels, reduction="none"), token_loss, atol=1e-3)


def test_without_a_block_mask_the_registered_kernel_is_transformers_sdpa(tiny_llama_dir):
    """Generation and padded batches (a 2-D mask, a cache) keep working under the registered name."""
    from transformers import AutoModelForCausalLM

    name = register_hf_implementation()
    ours = AutoModelForCausalLM.from_pretrained(tiny_llama_dir, dtype=torch.float32, attn_implementation=name).eval()
    sdpa = AutoModelForCausalLM.from_pretrained(tiny_llama_dir, dtype=torch.float32, attn_implementation="sdpa").eval()
    ids = torch.tensor([[2, 2, 300, 301, 302], [400, 401, 402, 403, 404]])
    mask = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]])
    a = ours.generate(input_ids=ids, attention_mask=mask, max_new_tokens=4, do_sample=False, pad_token_id=2)
    b = sdpa.generate(input_ids=ids, attention_mask=mask, max_new_tokens=4, do_sample=False, pad_token_id=2)
    assert a.tolist() == b.tolist()


def warm_up_config(engine: str, objective: str = "sft"):
    from trainer_backend.config import RunConfig

    return RunConfig.model_validate({"model": {"name_or_path": "m", "engine": engine},
                                     "template": {"max_seq_len": 512, "packing": True},
                                     "train": {"objective": objective, "micro_batch_size": 8}, "output": {"dir": "o"}})


def test_on_unsloth_the_warm_up_ends_with_passes_of_a_real_passs_size_packed_then_plain():
    """Unsloth's fused cross-entropy compiles again for its first pass of several chunks, and the
    plain (n, L) path compiles on its own: after the two short rows of WARM_UP_LENGTHS come a
    packed row that fills the 8 x 512 token budget and, for fixed-length data, 8 rows of 512."""
    from trainer_backend.models.attention import WARM_UP_LENGTHS
    from trainer_backend.train.passes import pass_inputs
    from trainer_backend.train.startup import warm_up_passes

    cfg = warm_up_config("unsloth")
    shapes = [tuple(pass_inputs(docs, cfg, 0, torch.device("cpu"))["input_ids"].shape)
              for docs in warm_up_passes(cfg, 0, plain_length=512)]
    short = [(1, -(-sum(lengths) // BLOCK) * BLOCK) for lengths in WARM_UP_LENGTHS]
    assert shapes == short + [(1, 8 * 512 - BLOCK), (8, 512)]
    long_pass = warm_up_passes(cfg, 0)[-1]
    assert max(len(d.input_ids) for d in long_pass) <= 512 and len(warm_up_passes(cfg, 0)) == 3


@pytest.mark.parametrize("engine, objective", [("unsloth", "dpo"), ("hf", "sft")])
def test_other_engines_and_objectives_warm_up_on_the_short_rows_only(engine, objective):
    from trainer_backend.models.attention import WARM_UP_LENGTHS
    from trainer_backend.train.startup import warm_up_passes

    passes = warm_up_passes(warm_up_config(engine, objective), 0, plain_length=512)
    assert [[len(d.input_ids) + 7 for d in docs] for docs in passes] == [list(p) for p in WARM_UP_LENGTHS]


def test_the_warm_up_runs_a_plain_pass_only_for_data_whose_rows_mostly_share_one_length():
    from trainer_backend.train.startup import plain_pass_length

    assert plain_pass_length([2048] * 11 + [700, 12, 2048 - 1]) == 2048   # pre-training blocks and a short last one
    assert plain_pass_length([512, 700, 512, 33, 90]) is None            # conversations: passes go packed
    assert plain_pass_length([]) is None
