"""Two GPUs (nccl and shm) train the same LoRA weights as one GPU on the union of their batches:
the real train command on a tiny random llama in bf16. Needs 2 CUDA GPUs."""
from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from multiworker_runs import train, write_config, write_dataset
from trainer_backend.train.events import read_events

pytestmark = [pytest.mark.gpu, pytest.mark.slow,
              pytest.mark.skipif(not torch.cuda.is_available() or torch.cuda.device_count() < 2,
                                 reason="needs 2 CUDA GPUs")]

# Why these tolerances: bf16 keeps 8 significant bits. A sequence trained on another GPU sits in
# a different micro-batch, so the matmuls tile and accumulate it in another order and its
# activations differ by about one bf16 ulp (2^-8 relative) here and there; the gradients then
# differ by well under 1% of their typical size. Adam's first steps move every element by about
# +-lr whatever the size of its gradient, so an element whose gradient is within that noise of
# zero may move the other way, 2*lr from the reference. If a fraction f of the elements do, the
# norm of the difference of the LoRA B matrices (they start at zero: they are the whole update) is
# 2*sqrt(f) of the update's norm: 0.3 allows f of about 2%. A missing or wrong sync (each GPU
# stepping on its own half of the batch) flips about a third of the signs: a ratio near 1. The
# logged losses are forward values on identical data and weights that barely differ: 1%.
WEIGHT_REL_TOL = 0.3
LOSS_REL_TOL = 0.01


def gpu_config(tmp, model, data, name, devices, backend, micro, accum):
    return write_config(tmp, model, data, name, devices, micro, accum, precision="bf16", max_norm=1.0,
                        backend=backend)


def lora_b(job_dir) -> dict:
    saved = load_file(str(job_dir / "checkpoints" / "step_5" / "trainable.safetensors"))
    return {k: v.float() for k, v in saved.items() if "lora_B" in k}


@pytest.fixture(scope="module")
def gpu_setup(tmp_path_factory):
    from conftest import make_tiny_llama
    tmp = tmp_path_factory.mktemp("gpu")
    model, data = make_tiny_llama(tmp / "model"), write_dataset(tmp / "data.jsonl")
    result = train(gpu_config(tmp, model, data, "one", [0], "auto", micro=4, accum=3))
    assert result.returncode == 0, result.stderr[-2000:]
    return tmp, model, data, tmp / "one"


@pytest.mark.parametrize("backend", ["nccl", "shm"])
def test_two_gpus_equal_one_gpu_on_the_union(gpu_setup, backend):
    tmp, model, data, one = gpu_setup
    name = f"two-{backend}"
    result = train(gpu_config(tmp, model, data, name, [0, 1], backend, micro=3, accum=2))
    assert result.returncode == 0, result.stderr[-2000:]
    ours, ref = lora_b(tmp / name), lora_b(one)
    assert ours.keys() == ref.keys() and ref
    diff = torch.sqrt(sum(((ours[k] - ref[k]) ** 2).sum() for k in ref))
    size = torch.sqrt(sum((ref[k] ** 2).sum() for k in ref))
    assert size > 0
    assert diff / size <= WEIGHT_REL_TOL, f"relative difference {float(diff / size):.4f}"
    for a, b in zip(read_events(tmp / name, "train"), read_events(one, "train")):
        assert a["loss"] == pytest.approx(b["loss"], rel=LOSS_REL_TOL)
