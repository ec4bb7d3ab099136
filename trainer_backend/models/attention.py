"""Document-causal attention for packed rows: every token attends to the earlier tokens of its own
document only, on a kernel that skips the blocks between documents (never a dense T x T mask).

A packed pass is one row (1, T) holding several documents back to back (the last one may be the
untrained pad tail that rounds T up to a multiple of BLOCK). Its mask is described by the document
lengths alone:

    mask = document_block_mask([3, 5, 120], device)      # T = 128
    out = document_attention(q, k, v, mask, scale)        # q (1, H, T, D), k/v (1, H_kv, T, D)

Kernels: FlexAttention (torch's own, compiled on CUDA) by default; flash-attn's
varlen kernel when flash-attn is installed (transformers and Unsloth then take `cu_seqlens` from
the packed position ids / lengths themselves). Both engines reach the kernel through one seam:
  - transformers: an attention implementation registered under HF_IMPLEMENTATION; a packed pass
    passes its BlockMask as `attention_mask`, which transformers hands through untouched;
  - Unsloth: its fast attention forwards call `run_attention` from their module's globals; the
    adapter in models/unsloth_attention.py wraps that name (tests/test_unsloth_attention_seam.py
    fails when an Unsloth upgrade moves it).
"""
from __future__ import annotations

import functools
import importlib.util
from typing import Sequence

import torch
from torch.nn.attention.flex_attention import BlockMask, flex_attention

BLOCK = 128                                # FlexAttention's tile; packed rows are padded to a multiple
HF_IMPLEMENTATION = "document_flex"        # the transformers attn_implementation name we register


def flash_varlen_available() -> bool:
    """flash-attn installed: its varlen kernel takes packed rows through cu_seqlens."""
    return importlib.util.find_spec("flash_attn") is not None


def padded_length(n_tokens: int) -> int:
    """Row length of a packed pass: the compiled kernels want a multiple of BLOCK."""
    return -(-n_tokens // BLOCK) * BLOCK


def document_ids(lengths: Sequence[int] | torch.Tensor, total: int, device: torch.device) -> torch.Tensor:
    """(total,) int32: the index of the document each token belongs to."""
    lengths = torch.as_tensor(lengths, dtype=torch.int64, device=device)
    docs = torch.arange(lengths.numel(), dtype=torch.int32, device=device)
    return torch.repeat_interleave(docs, lengths, output_size=total)


def _ordered(blocks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(count per row, column indices with the selected ones first) of a (n, n) bool block matrix."""
    counts = blocks.sum(-1, dtype=torch.int32)
    order = torch.argsort((~blocks).to(torch.int8), dim=-1, stable=True).to(torch.int32)
    return counts[None, None], order[None, None]


def document_block_mask(lengths: Sequence[int] | torch.Tensor, device: torch.device | str,
                        total: int | None = None) -> BlockMask:
    """The document-causal BlockMask of one packed row whose documents have `lengths` (summing to
    `total`). Built from per-block first/last document ids, so it costs O((T/BLOCK)^2) small
    tensor ops on the device, never a T x T evaluation and no host sync.

    A q block i and a kv block j (j <= i) interact iff they share a document: documents are
    contiguous, so iff last_doc[j] >= first_doc[i]. The pair is full (no per-token mask needed) iff
    j < i and both blocks lie whole inside one and the same document."""
    device = torch.device(device)
    if total is None:
        total = int(sum(int(n) for n in lengths))
    doc = document_ids(lengths, total, device)
    n_blocks = -(-total // BLOCK)
    starts = torch.arange(n_blocks, device=device) * BLOCK
    first = doc[starts]
    last = doc[torch.clamp(starts + BLOCK, max=total) - 1]
    i = torch.arange(n_blocks, device=device)
    lower = i[None, :] <= i[:, None]                       # [q block, kv block]: kv at or before q
    touching = lower & (last[None, :] >= first[:, None])
    single = (first == last) & (starts + BLOCK <= total)   # a block cut by the row's end is never full
    full = (i[None, :] < i[:, None]) & single[None, :] & single[:, None] & (first[None, :] == first[:, None])
    partial = touching & ~full

    def document_causal(b, h, q_idx, kv_idx):
        return (doc[q_idx] == doc[kv_idx]) & (q_idx >= kv_idx)

    kv_num, kv_idx = _ordered(partial)
    full_num, full_idx = _ordered(full)
    return BlockMask.from_kv_blocks(kv_num, kv_idx, full_num, full_idx, BLOCK_SIZE=BLOCK,
                                    mask_mod=document_causal, seq_lengths=(total, total))


@functools.cache
def _compiled_flex():
    # dynamic=True: one compiled kernel serves every row length (a static compile costs ~15 s a length).
    return torch.compile(flex_attention, dynamic=True)


def document_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, block_mask: BlockMask,
                       scale: float | None = None, lengths: Sequence[int] | None = None) -> torch.Tensor:
    """Attention over one packed row: (1, H, T, D) in, (1, H, T, D) out; grouped key/value heads
    are broadcast by the kernel. CUDA runs compiled FlexAttention. FlexAttention has no CPU
    backward, so a CPU pass that needs gradients runs one causal SDPA call per document of
    `lengths` (same mask, no T x T tensor); without gradients CPU runs eager FlexAttention."""
    gqa = q.shape[1] != k.shape[1]
    if q.is_cuda:
        return _compiled_flex()(q, k, v, block_mask=block_mask, scale=scale, enable_gqa=gqa)
    needs_grad = torch.is_grad_enabled() and any(t.requires_grad for t in (q, k, v))
    if not needs_grad:
        q, k, v = q.detach(), k.detach(), v.detach()  # its device check refuses tensors that require grad
        return flex_attention(q, k, v, block_mask=block_mask, scale=scale, enable_gqa=gqa)
    if lengths is None:
        raise ValueError("document_attention on CPU with gradients needs the document lengths")
    outs, start = [], 0
    for n in lengths:
        end = start + int(n)
        outs.append(torch.nn.functional.scaled_dot_product_attention(
            q[:, :, start:end], k[:, :, start:end], v[:, :, start:end], is_causal=True, scale=scale,
            enable_gqa=gqa))
        start = end
    return torch.cat(outs, dim=2)


def lengths_from_positions(position_ids: torch.Tensor) -> list[int]:
    """Document lengths of a packed row whose position ids restart at 0 for every document."""
    starts = (position_ids[0] == 0).nonzero().flatten().tolist() + [position_ids.shape[-1]]
    return [b - a for a, b in zip(starts, starts[1:])]


def _hf_document_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    """transformers' attention-interface signature; returns (B, T, H, D) and no weights. A packed
    pass hands its BlockMask in as `attention_mask` (transformers passes a 4-D mask through
    untouched); any other call (generation, a padded batch) gets transformers' own SDPA path."""
    if not isinstance(attention_mask, BlockMask):
        from transformers.integrations.sdpa_attention import sdpa_attention_forward

        return sdpa_attention_forward(module, query, key, value, attention_mask, scaling=scaling,
                                      dropout=dropout, **kwargs)
    if dropout and module.training:
        raise ValueError("attention dropout is not supported on packed rows")
    window = kwargs.get("sliding_window")
    if window is not None and int(kwargs["position_ids"].max()) >= window:
        raise ValueError(f"a packed document is longer than the model's sliding window ({window} tokens), which "
                         "the flex kernel does not apply: set template.max_seq_len to at most the window or "
                         "model.attn_implementation to sdpa")
    lengths = None if query.is_cuda else lengths_from_positions(kwargs["position_ids"])
    out = document_attention(query, key, value, attention_mask, scaling, lengths)
    return out.transpose(1, 2).contiguous(), None


@functools.cache
def register_hf_implementation() -> str:
    """Make HF_IMPLEMENTATION a valid `attn_implementation` for transformers models: packed
    passes run FlexAttention on their BlockMask, everything else runs as under "sdpa" (same mask
    builder, same kernel)."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(HF_IMPLEMENTATION, _hf_document_attention)
    AttentionMaskInterface.register(HF_IMPLEMENTATION, sdpa_mask)
    return HF_IMPLEMENTATION


WARM_UP_LENGTHS = ([BLOCK + 3, BLOCK - 3], [3 * BLOCK + 5, 2 * BLOCK - 5])
"""Two packed rows of 2 and 5 blocks. Compiled with dynamic shapes, the first call still fixes a
size that happens to equal another dimension (2 blocks and 2 key/value heads share one symbol),
and the first longer row compiles again; the second call is that recompile, after which the kernel
is general in the row length."""


def warm_up(device: torch.device, heads: int, kv_heads: int, head_dim: int, dtype: torch.dtype) -> None:
    """Compile the CUDA kernels (forward and backward) on small packed rows, so that the first
    training step does not wait for them. The inputs look like the models' own (distinct q, k, v,
    each a (1, T, H, D) projection viewed as (1, H, T, D)): the compiled graph is guarded on
    aliasing and layout, and any difference compiles it again (train.startup.warm_up_model then
    runs the model's own call)."""
    for lengths in WARM_UP_LENGTHS:
        n = sum(lengths)
        mask = document_block_mask(lengths, device)

        def projection(h: int) -> torch.Tensor:
            return torch.randn(1, n, h, head_dim, device=device, dtype=dtype, requires_grad=True).transpose(1, 2)

        document_attention(projection(heads), projection(kv_heads), projection(kv_heads), mask).sum().backward()
