"""The chunked LM head of the log-prob objectives holds one (chunk x vocabulary) fp32 buffer at a
time, forward and backward, with the same log-probs and gradients as autograd through whole logits.

Peak bytes are read from torch.profiler's memory events (the CPU allocator reports every block it
hands out and takes back while profiling)."""
from __future__ import annotations

import types

import pytest
import torch

from trainer_backend.train.objectives import logps

CHUNK, VOCAB, WIDTH, ROWS, LENGTH = 64, 4096, 16, 2, 96
BUFFER = CHUNK * VOCAB * 4   # one chunk's fp32 logits


class HeadOnly(torch.nn.Module):
    """A causal LM whose decoder is its embedding: the step's memory is the LM head's."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.embed = torch.nn.Embedding(VOCAB, WIDTH)
        self.head = torch.nn.Linear(WIDTH, VOCAB, bias=False).requires_grad_(False)
        self.config = types.SimpleNamespace()

    def get_decoder(self):
        return lambda input_ids, use_cache: (self.embed(input_ids),)

    def get_output_embeddings(self):
        return self.head


def peak_bytes(fn) -> int:
    """The most bytes `fn` had allocated at once, beyond what was live when it started."""
    from torch._C._profiler import _EventType
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events, stack = [], list(prof.profiler.kineto_results.experimental_event_tree())
    while stack:
        node = stack.pop()
        if node.tag == _EventType.Allocation:
            events.append((node.start_time_ns, node.extra_fields.alloc_size, node.extra_fields.ptr))
        stack += node.children
    live, total, peak = {}, 0, 0
    for _, size, ptr in sorted(events):
        if size > 0:
            live[ptr] = size
        total += size if size > 0 else -live.pop(ptr, 0)
        peak = max(peak, total)
    return peak


def test_the_lm_head_step_holds_one_chunk_of_logits(monkeypatch):
    monkeypatch.setattr(logps, "LOGP_HEAD_CHUNK", CHUNK)
    model = HeadOnly()
    ids = torch.randint(0, VOCAB, (ROWS, LENGTH + 1))
    cols = torch.arange(LENGTH)

    def step():
        logps.scored_logps(model, {"input_ids": ids}, cols, ids[:, 1:]).sum().backward()

    peak = peak_bytes(step)
    # one buffer of logits, the slices of the hidden states and their gradient; autograd through
    # logsumexp and gather under a checkpoint held 4 buffers at once
    assert BUFFER < peak < 1.5 * BUFFER


@pytest.mark.parametrize("cap", [None, 30.0])
def test_the_lm_head_gives_autograd_log_probs_and_gradients(cap):
    torch.manual_seed(0)
    hidden = torch.randn(CHUNK, WIDTH, requires_grad=True)
    weight = torch.randn(VOCAB, WIDTH, requires_grad=True)
    bias = torch.randn(VOCAB, requires_grad=True)
    targets = torch.randint(0, VOCAB, (CHUNK,))
    upstream = torch.randn(CHUNK)

    def by_autograd():   # in fp64, through the whole logits
        logits = torch.nn.functional.linear(hidden.double(), weight.double(), bias.double())
        if cap:
            logits = torch.tanh(logits / cap) * cap
        return torch.log_softmax(logits, -1).gather(-1, targets[:, None]).squeeze(-1)

    ours = logps.HeadLogps.apply(hidden, weight, bias, targets, cap)
    expected = by_autograd()
    torch.testing.assert_close(ours, expected.float(), rtol=0, atol=1e-4)
    got = torch.autograd.grad((ours * upstream).sum(), (hidden, weight, bias))
    want = torch.autograd.grad((expected * upstream.double()).sum(), (hidden, weight, bias))
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=0, atol=1e-4 * float(w.abs().max()))
