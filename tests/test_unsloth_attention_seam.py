"""The Unsloth names models/unsloth_attention.py relies on, read from the installed Unsloth's source
(importing unsloth needs a GPU). An upgrade that moves any of them fails here; the GPU test
(tests/test_attention_gpu.py) checks that every layer of a packed pass took the FlexAttention path."""
from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import pytest

from trainer_backend.models.unsloth_attention import SEAM_MODULES

FORWARDS = {"unsloth.models.llama": "LlamaAttention_fast_forward",
            "unsloth.models.mistral": "MistralAttention_fast_forward",
            "unsloth.models.qwen3": "Qwen3Attention_fast_forward"}


def source(module: str) -> ast.Module:
    spec = importlib.util.find_spec("unsloth")
    if spec is None:
        pytest.skip("unsloth is not installed")
    root = Path(spec.origin).parent
    return ast.parse((root / Path(*module.split(".")[1:])).with_suffix(".py").read_text(encoding="utf-8"))


def function(tree: ast.Module, name: str) -> ast.FunctionDef:
    found = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == name]
    assert found, f"{name} is gone"
    return found[0]


@pytest.mark.parametrize("module", SEAM_MODULES)
def test_each_fast_attention_forward_calls_run_attention_from_its_module_globals(module):
    tree = source(module)
    imported = [n for n in tree.body if isinstance(n, ast.ImportFrom) and n.module and
                n.module.endswith("utils.attention_dispatch") and any(a.name == "run_attention" for a in n.names)]
    assert imported, f"{module} no longer imports run_attention from utils.attention_dispatch"
    forward = function(tree, FORWARDS[module])
    calls = [c for c in ast.walk(forward) if isinstance(c, ast.Call) and isinstance(c.func, ast.Name)
             and c.func.id == "run_attention"]
    assert calls, f"{FORWARDS[module]} no longer calls run_attention"
    assert {k.arg for k in calls[0].keywords} == {"config", "context", "Q", "K", "V"}
    packed = [c for c in ast.walk(forward) if isinstance(c, ast.Call) and isinstance(c.func, ast.Name)
              and c.func.id == "get_packed_info_from_kwargs"]
    assert packed, f"{FORWARDS[module]} no longer reads packed_seq_lengths through get_packed_info_from_kwargs"


def test_qwen2_reuses_the_llama_forward():
    tree = source("unsloth.models.qwen2")
    assigned = [n for n in ast.walk(tree) if isinstance(n, ast.Assign) and isinstance(n.value, ast.Name)
                and n.value.id == "LlamaAttention_fast_forward"
                and any(isinstance(t, ast.Attribute) and t.attr == "forward" and isinstance(t.value, ast.Name)
                        and t.value.id == "Qwen2Attention" for t in n.targets)]
    assert assigned, "Qwen2Attention.forward is no longer LlamaAttention_fast_forward"


def test_packed_info_hands_the_callers_lengths_tensor_back():
    """Our BlockMask rides on the packed_seq_lengths tensor: Unsloth must return that very tensor
    (an int32 tensor already on the device) as seq_info[0] and read its fields from AttentionContext."""
    tree = source("unsloth.utils.packing")
    body = ast.unparse(function(tree, "get_packed_info_from_kwargs"))
    assert 'kwargs.get("packed_seq_lengths")' in body.replace("'", '"')
    assert "seq_lengths.to(device=device, dtype=torch.int32" in body.replace(" ", "").replace(
        "seq_lengths.to(device=device,dtype=torch.int32", "seq_lengths.to(device=device, dtype=torch.int32")
    assert "result = (lengths, cu_seqlens, max_seqlen)" in body
    context = [n for n in ast.walk(source("unsloth.utils.attention_dispatch"))
               if isinstance(n, ast.ClassDef) and n.name == "AttentionContext"]
    fields = {t.target.id for t in context[0].body if isinstance(t, ast.AnnAssign)}
    assert {"bsz", "q_len", "kv_seq_len", "seq_info", "attention_mask", "sliding_window", "is_causal"} <= fields


def test_the_wrapper_takes_only_packed_calls_that_carry_a_document_mask():
    """With a mask on the lengths tensor: FlexAttention, output in Unsloth's (bsz, q_len, heads, dim)
    layout, equal to SDPA with the dense document mask. Any other call: Unsloth's own function."""
    from types import SimpleNamespace

    import torch
    import torch.nn.functional as F

    from trainer_backend.models.attention import document_block_mask, document_ids
    from trainer_backend.models.unsloth_attention import MASK_ATTRIBUTE, DocumentAttention

    lengths = torch.tensor([50, 14, 64], dtype=torch.int32)
    setattr(lengths, MASK_ATTRIBUTE, document_block_mask(lengths, "cpu"))
    lengths.max_length = 64
    q, k, v = torch.randn(1, 4, 128, 16), torch.randn(1, 2, 128, 16), torch.randn(1, 2, 128, 16)
    calls = []
    wrapper = DocumentAttention(lambda **kw: calls.append(kw) or "unsloth")

    def context(seq_lengths, **over):
        return SimpleNamespace(**{"seq_info": (seq_lengths, None, 64), "attention_mask": None, "bsz": 1, "q_len": 128,
                                  "kv_seq_len": 128, "is_causal": True, "prefix_seg_info": None,
                                  "sliding_window": None, **over})

    config = SimpleNamespace(sdpa_kwargs=None)
    out = wrapper(config=config, context=context(lengths), Q=q, K=k, V=v)
    doc = document_ids(lengths, 128, torch.device("cpu"))
    dense = (doc[:, None] == doc[None, :]) & torch.ones(128, 128, dtype=torch.bool).tril()
    expect = F.scaled_dot_product_attention(q, k.repeat_interleave(2, 1), v.repeat_interleave(2, 1), attn_mask=dense)
    torch.testing.assert_close(out, expect.transpose(1, 2), atol=2e-6, rtol=0)
    assert wrapper.flex_calls == 1 and not calls
    plain = torch.tensor([128], dtype=torch.int32)  # no mask attached: not ours
    for ctx in (context(plain), context(lengths, attention_mask=torch.ones(1)), context(lengths, sliding_window=32),
                SimpleNamespace(**{**vars(context(lengths)), "seq_info": None})):
        assert wrapper(config=config, context=ctx, Q=q, K=k, V=v) == "unsloth"
    assert wrapper.flex_calls == 1 and len(calls) == 4
