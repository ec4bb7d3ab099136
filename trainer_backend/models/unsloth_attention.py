"""The one place that reaches into Unsloth's private code: its packed attention goes through
FlexAttention with the pass's document-causal BlockMask.

Why a patch: Unsloth replaces the attention forward of Llama, Qwen2, Qwen3 and Mistral with its own
(`LlamaAttention_fast_forward` ...), which ignores transformers' `attn_implementation`. Each of those
forwards reads the packed row's lengths from `packed_seq_lengths` (`get_packed_info_from_kwargs`,
which hands the tensor back as `seq_info[0]` when it is already int32 on the device) and then calls
`run_attention(config=..., context=..., Q=..., K=..., V=...)`, looked up in its module's globals.
Without flash-attn that call runs one SDPA launch per run of equal-length documents. We wrap the
name `run_attention` in those modules: a call whose `seq_info[0]` carries a `document_mask`
(attached by train.passes) runs FlexAttention; every other call runs Unsloth's own code unchanged.
tests/test_unsloth_attention_seam.py fails when an Unsloth upgrade moves any of these names, and
the GPU test checks that every layer of a packed pass took the FlexAttention path.
"""
from __future__ import annotations

import importlib

from .attention import document_attention

# Modules whose fast attention forwards call `run_attention` (Qwen2 reuses LlamaAttention_fast_forward).
SEAM_MODULES = ("unsloth.models.llama", "unsloth.models.mistral", "unsloth.models.qwen3")
MASK_ATTRIBUTE = "document_mask"   # set on the packed_seq_lengths tensor of a pass


class DocumentAttention:
    """Stands in for Unsloth's `run_attention`; counts the calls it served (the GPU test reads it)."""

    def __init__(self, original) -> None:
        self.original = original
        self.flex_calls = 0

    def takes(self, context) -> bool:
        info = context.seq_info
        return (info is not None and getattr(info[0], MASK_ATTRIBUTE, None) is not None
                and context.attention_mask is None and context.bsz == 1
                and context.q_len == context.kv_seq_len and getattr(context, "is_causal", True)
                and getattr(context, "prefix_seg_info", None) is None
                and (context.sliding_window is None
                     or getattr(info[0], "max_length", context.q_len) <= context.sliding_window))

    def __call__(self, *, config, context, Q, K, V):
        if not self.takes(context):
            return self.original(config=config, context=context, Q=Q, K=K, V=V)
        self.flex_calls += 1
        scale = (config.sdpa_kwargs or {}).get("scale")
        out = document_attention(Q, K, V, getattr(context.seq_info[0], MASK_ATTRIBUTE), scale)
        return out.transpose(1, 2)  # Unsloth's forwards take (bsz, q_len, heads, head_dim)


def install() -> list[DocumentAttention]:
    """Wrap `run_attention` in every seam module (once); returns the wrappers."""
    wrappers = []
    for name in SEAM_MODULES:
        module = importlib.import_module(name)
        current = module.run_attention
        if not isinstance(current, DocumentAttention):
            current = DocumentAttention(current)
            module.run_attention = current
        wrappers.append(current)
    return wrappers
