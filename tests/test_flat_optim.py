"""train/flat_optim.py: bitsandbytes' 8-bit AdamW stepping one flat buffer per group is bitsandbytes'
own per-tensor step bit for bit: the weights, the 8-bit state and its block maxima, a resume from
its state dict. On CPU (bitsandbytes runs its optimizers there too); tests/test_optim_gpu.py
checks the CUDA kernels."""
from __future__ import annotations

import pytest

bnb = pytest.importorskip("bitsandbytes")
import torch  # noqa: E402

from trainer_backend.train.flat_optim import BLOCK, flattened  # noqa: E402
from trainer_backend.train.optim import param_groups  # noqa: E402

# 8-bit from 4,096 entries on; 300 x 50 and 4,100 end inside a 256-entry block; (128, 16) and (100,)
# keep 32-bit state; the 1-D tensors form the undecayed group.
SHAPES = [(16, 3584), (512, 16), (300, 50), (16, 1000), (128, 16), (100,), (4100,)]
KW = dict(lr=1e-2, betas=(0.9, 0.999), eps=1e-8)


def make(cls, seed: int = 0):
    torch.manual_seed(seed)
    params = [torch.nn.Parameter(torch.randn(s) * 0.1) for s in SHAPES]
    return params, cls(param_groups([(str(i), p) for i, p in enumerate(params)], 0.01), **KW)


def gradients(n: int) -> list[list[torch.Tensor]]:
    g = torch.Generator().manual_seed(1)
    return [[torch.randn(s, generator=g) for s in SHAPES] for _ in range(n)]


def steps(params, optimizer, grads: list[list[torch.Tensor]]) -> None:
    for step in grads:
        for p, grad in zip(params, step):
            p.grad = grad.clone()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)


def states(params, optimizer) -> list[dict]:
    """Each model tensor's optimizer state as bitsandbytes keeps it for that tensor alone."""
    if not hasattr(optimizer, "flat_groups"):
        return [optimizer.state[p] for p in params]
    out = {}
    for f in optimizer.flat_groups:
        s = optimizer.state[f.flat]
        for p, o in zip(f.params, f.offsets):
            blocks = slice(o // BLOCK, -(-(o + p.numel()) // BLOCK))
            out[id(p)] = {"step": s["step"], "state1": s["state1"][o:o + p.numel()],
                          "state2": s["state2"][o:o + p.numel()], "absmax1": s["absmax1"][blocks],
                          "absmax2": s["absmax2"][blocks]}
    return [out.get(id(p), optimizer.state.get(p)) for p in params]


def assert_same(a_params, a_opt, b_params, b_opt) -> None:
    for i, (a, b) in enumerate(zip(a_params, b_params)):
        assert torch.equal(a, b), f"weights of tensor {i} {tuple(a.shape)}"
    for i, (sa, sb) in enumerate(zip(states(a_params, a_opt), states(b_params, b_opt))):
        assert sa["step"] == sb["step"]
        for key in ("state1", "state2", "absmax1", "absmax2"):
            if key in sa:
                assert torch.equal(sa[key].flatten(), sb[key].flatten()), f"{key} of tensor {i} {SHAPES[i]}"


def test_the_flat_step_is_bitsandbytes_per_tensor_step_bit_for_bit():
    stock = make(bnb.optim.AdamW8bit)
    flat = make(flattened(bnb.optim.AdamW8bit))
    steps(*stock, gradients(6))
    steps(*flat, gradients(6))
    assert_same(*stock, *flat)
    params, optimizer = flat
    # two groups (decayed matrices, undecayed vectors), each one flat tensor plus its small ones
    shapes = [[tuple(p.shape) for p in g["params"]] for g in optimizer.param_groups]
    assert shapes == [[(0,), (128, 16)], [(0,), (100,)]]
    assert [optimizer.state[p]["state1"].dtype for g in optimizer.param_groups for p in g["params"]] == \
        [torch.uint8, torch.float32, torch.uint8, torch.float32]
    assert all(p.grad is None for p in params)           # zero_grad cleared the model's gradients
    assert all(f.flat.numel() == 0 and f.flat.grad is None for f in optimizer.flat_groups)  # no memory between steps


def test_a_tensor_without_a_gradient_steps_as_with_a_zero_gradient():
    stock = make(bnb.optim.AdamW8bit)
    flat = make(flattened(bnb.optim.AdamW8bit))
    for (params, optimizer), missing in ((stock, torch.zeros_like), (flat, lambda _: None)):
        g = torch.Generator().manual_seed(3)
        for _ in range(3):
            for i, p in enumerate(params):
                grad = torch.randn(p.shape, generator=g)
                p.grad = missing(grad) if i == 2 else grad
            optimizer.step()
    assert_same(*stock, *flat)


def test_a_resume_from_the_state_dict_continues_bit_for_bit(tmp_path):
    cls, grads = flattened(bnb.optim.AdamW8bit), gradients(5)
    straight = make(cls)
    steps(*straight, grads)

    params, optimizer = make(cls)
    steps(params, optimizer, grads[:2])
    torch.save({"weights": [p.detach().clone() for p in params], "optimizer": optimizer.state_dict()}, tmp_path / "c")
    saved = torch.load(tmp_path / "c", weights_only=False)
    resumed_params, resumed = make(cls, seed=7)   # other weights: the checkpoint must bring them all
    with torch.no_grad():
        for p, w in zip(resumed_params, saved["weights"]):
            p.copy_(w)
    resumed.load_state_dict(saved["optimizer"])
    steps(resumed_params, resumed, grads[2:])
    assert_same(*straight, resumed_params, resumed)


def test_a_checkpoint_of_the_tensor_by_tensor_optimizer_is_refused_with_a_message(tmp_path):
    """Checkpoints written before the flat step hold one state per tensor: resuming one says why it
    cannot, instead of a traceback or a silently different optimizer."""
    from trainer_backend.config import ConfigError
    from trainer_backend.train.checkpoint import TrainState, load_checkpoint, save_checkpoint

    params, old = make(bnb.optim.AdamW8bit)
    steps(params, old, gradients(1))
    named = [(f"p{i}", p) for i, p in enumerate(params)]
    scheduler = torch.optim.lr_scheduler.LambdaLR(old, lambda step: 1.0)
    path = save_checkpoint(tmp_path, TrainState(1, 0, 1, 5), named, old, scheduler)

    _, new = make(flattened(bnb.optim.AdamW8bit))
    with pytest.raises(ConfigError, match="its optimizer state does not fit this run's optimizer") as err:
        load_checkpoint(path, named, new, torch.optim.lr_scheduler.LambdaLR(new, lambda step: 1.0))
    assert str(path) in str(err.value) and "'train.optimizer'" in str(err.value)
