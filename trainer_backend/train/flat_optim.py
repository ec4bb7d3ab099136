"""bitsandbytes' 8-bit AdamW stepping one flat buffer per parameter group instead of each tensor.

bitsandbytes updates a model tensor by tensor: one Python call and one kernel each, and a device
synchronization after each one unless Unsloth has patched that away. With LoRA r=16 on all linear
layers of a 7B model that is 392 updates a step: 12.3 ms, against 5.0 ms flat and 1.4 ms for
torch's fused fp32 AdamW (bench/results/optim_step.md). `flattened(cls)` is a subclass that, at
each step, copies the gradients and weights of a group's tensors into one flat buffer, lets
bitsandbytes update it as a single tensor, and copies the weights back.

Why the numbers do not change: bitsandbytes quantizes its 8-bit state in blocks of BLOCK entries,
counted from a tensor's first entry, and every other part of its update is entry by entry. Each
tensor's segment of the flat buffer starts on a multiple of BLOCK, and the padding after it is
zero in weights, gradients and state, so every block holds what it holds when that tensor is
stepped alone. Tensors under bitsandbytes' `min_8bit_size` keep their own 32-bit state and are
stepped alone, as bitsandbytes does. tests/test_flat_optim.py (CPU kernels) and
tests/test_optim_gpu.py (CUDA kernels) check the weights and state bit for bit.

Memory: the flat weights and gradients exist only during the step, after the backward pass has
freed the activations. `optim.build_optimizer` flattens only up to config.FLAT_8BIT_MAX_ENTRIES
trainable entries (LoRA of 7B models; not full fine-tuning), and the planner counts what the copies
exceed the freed activations by (planner/estimate.flat_copy_bytes). Between steps the flat
parameter holds no storage. A tensor without a gradient steps with a zero one, as it does when
the multi-worker sync fills in the gradient it lacks (sync/buckets.gather_grads).

    optimizer = flattened(bnb.optim.AdamW8bit)(param_groups(named, 0.01), lr=2e-4)
    loss.backward(); optimizer.step(); optimizer.zero_grad()
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

BLOCK = 256           # entries per quantization block of bitsandbytes' 8-bit optimizer state
MIN_8BIT_SIZE = 4096  # bitsandbytes' default: smaller tensors get 32-bit state


@dataclass
class FlatGroup:
    """The tensors of one parameter group stepped as `flat`, each at its BLOCK-aligned offset."""
    flat: torch.nn.Parameter
    params: list[torch.nn.Parameter]
    offsets: list[int]
    numel: int

    @classmethod
    def of(cls, params: list[torch.nn.Parameter]) -> "FlatGroup":
        offsets, end = [], 0
        for p in params:
            offsets.append(end)
            end += -(-p.numel() // BLOCK) * BLOCK
        first = params[0]
        return cls(torch.nn.Parameter(first.new_empty(0), requires_grad=first.requires_grad), params, offsets, end)

    def _views(self, flat: torch.Tensor) -> list[torch.Tensor]:
        return [flat[o:o + p.numel()].view_as(p) for o, p in zip(self.offsets, self.params)]

    def gather(self) -> None:
        weights = self.params[0].new_zeros(self.numel)
        grads = torch.zeros_like(weights)
        torch._foreach_copy_(self._views(weights), [p.detach() for p in self.params])
        present = [(v, p.grad) for v, p in zip(self._views(grads), self.params) if p.grad is not None]
        if present:
            torch._foreach_copy_([v for v, _ in present], [g for _, g in present])
        self.flat.data, self.flat.grad = weights, grads

    def scatter(self) -> None:
        torch._foreach_copy_([p.detach() for p in self.params], self._views(self.flat.data))
        self.flat.data, self.flat.grad = self.flat.data.new_empty(0), None


def flat_groups(groups: list[dict]) -> tuple[list[dict], list[FlatGroup]]:
    """bitsandbytes' parameter groups where each group's 8-bit tensors of one dtype and device
    have become one flat parameter; small tensors stay as they are."""
    out, flats = [], []
    for group in groups:
        params = list(group["params"])
        small = [p for p in params if p.numel() < MIN_8BIT_SIZE]
        kinds = dict.fromkeys((p.dtype, p.device) for p in params if p.numel() >= MIN_8BIT_SIZE)
        mine = [FlatGroup.of([p for p in params if p.numel() >= MIN_8BIT_SIZE and (p.dtype, p.device) == kind])
                for kind in kinds]
        flats += mine
        out.append({**group, "params": [f.flat for f in mine] + small})
    return out, flats


def flattened(cls: type) -> type:
    """`cls`, a bitsandbytes 8-bit optimizer, stepping each group's large tensors as one."""

    class Flat(cls):
        def __init__(self, params, **kwargs):
            groups, self.flat_groups = flat_groups(list(params))
            super().__init__(groups, min_8bit_size=MIN_8BIT_SIZE, **kwargs)

        @torch.no_grad()
        def step(self, closure=None):
            for f in self.flat_groups:
                f.gather()
            try:
                return super().step(closure)
            finally:
                for f in self.flat_groups:
                    f.scatter()

        def zero_grad(self, set_to_none: bool = True) -> None:
            super().zero_grad(set_to_none)
            for f in self.flat_groups:
                for p in f.params:
                    if set_to_none:
                        p.grad = None
                    elif p.grad is not None:
                        p.grad.zero_()

    Flat.__name__ = Flat.__qualname__ = f"Flat{cls.__name__}"
    return Flat
