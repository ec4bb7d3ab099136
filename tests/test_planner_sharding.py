"""Sharded plans (`sync.sharding`): the per-GPU estimate of an FSDP2 run by hand, when `auto`
shards (only when one GPU cannot hold the run), and what sharding refuses."""
from __future__ import annotations

import pytest

from test_planner import GIB, QWEN7B
from trainer_backend.config import ConfigError, RunConfig
from trainer_backend.planner import (PlanError, estimate, has_auto, load_calibration, plan, resolve_auto,
                                     resolve_sharding)
from trainer_backend.planner.architecture import Architecture

QWEN14B = {"num_hidden_layers": 48, "hidden_size": 5120, "num_attention_heads": 40, "num_key_value_heads": 8,
           "intermediate_size": 13824, "vocab_size": 152064, "tie_word_embeddings": False}


def config(arch=QWEN7B, devices=(0, 1), **over) -> RunConfig:
    data = {"model": {"name_or_path": "Qwen/Qwen2.5-7B-Instruct", "architecture": arch},
            "template": {"max_seq_len": 2048}, "sync": {"devices": list(devices)},
            "train": {"micro_batch_size": 2, "gradient_checkpointing": "on"}}
    return RunConfig.model_validate(data).with_overrides(over)


def test_a_sharded_estimate_splits_weights_and_state_and_adds_the_gathered_layers():
    whole = estimate(config(method="full", **{"sync.sharding": "none", "model.engine": "hf"}))
    half = estimate(config(method="full", **{"sync.sharding": "fsdp"}))
    arch = Architecture.from_fields(QWEN7B, "test")
    assert half.shape.engine == "hf" and half.shape.shards == 2
    assert half.breakdown["weights"] == pytest.approx(whole.breakdown["weights"] / 2)
    key = "trainable params + grads + optimizer"
    assert half.breakdown[key] == pytest.approx(whole.breakdown[key] / 2)
    # bf16: the embeddings + head stay gathered, two layers of weights and two of gradients in flight
    layer = (arch.total_params() - arch.embedding_params() - arch.norm_params()) / 28
    assert half.breakdown["FSDP gathered layers"] == pytest.approx((arch.embedding_params() + 4 * layer) * 2 / GIB)
    assert half.breakdown["activations"] == whole.breakdown["activations"]  # per GPU, its own micro-batch
    assert half.peak_gib == pytest.approx(sum(half.breakdown.values()))


def test_full_fine_tuning_counts_the_weights_once_with_moments_in_their_dtype():
    est = estimate(config(method="full", devices=(0,), **{"model.engine": "hf"}))
    params = Architecture.from_fields(QWEN7B, "test").total_params()
    assert est.breakdown["weights"] == pytest.approx(params * 2 / GIB)
    # AdamW's two bf16 moments (torch keeps them in the parameter's dtype)
    assert est.breakdown["trainable params + grads + optimizer"] == pytest.approx(params * 4 / GIB)
    # bf16 gradients: with accumulation they add to the activations; with one pass a step they are
    # written while the backward frees them, and only their excess over the live buffers counts.
    accum = estimate(config(method="full", devices=(0,), **{"model.engine": "hf", "train.grad_accum": 2}))
    assert accum.breakdown["gradients"] == pytest.approx(params * 2 / GIB)
    live = est.breakdown["activations"] + est.breakdown["logits / cross-entropy"]
    assert est.breakdown["gradients"] == pytest.approx(max(0.0, params * 2 / GIB - live))
    small = estimate(config(method="full", devices=(0,), **{"model.engine": "hf", "train.micro_batch_size": 1,
                                                            "template.max_seq_len": 128}))
    small_live = small.breakdown["activations"] + small.breakdown["logits / cross-entropy"]
    assert small.breakdown["gradients"] == pytest.approx(params * 2 / GIB - small_live) and small_live < params * 2 / GIB


def test_auto_shards_full_fine_tuning_of_a_14b_only_when_one_gpu_cannot_hold_it():
    over = {"train.micro_batch_size": "auto", "train.gradient_checkpointing": "auto"}
    p = plan(config(QWEN14B, method="full", **over), 80)
    assert p.config.sync.sharding == "fsdp" and p.config.model.engine == "hf"
    assert p.why.startswith("sharded over 2 GPUs with FSDP2 (hf engine); unsharded it needs at least")
    assert p.peak_gib * (1 + load_calibration().planning_margin_fraction) <= 80 - 1.5
    with pytest.raises(PlanError, match="nothing fits in 80 GiB"):
        plan(config(QWEN14B, method="full", devices=(0,), **over), 80)  # one GPU: nothing to shard over
    assert plan(config(method="full", **over), 80).config.sync.sharding == "none"  # a 7B fits one 80 GB GPU


def test_auto_keeps_a_run_that_fits_one_gpu_unsharded_on_unsloth():
    p = plan(config(method="lora"), 80)
    assert p.config.sync.sharding == "none"
    assert p.config.model.engine == "auto"  # the trainer takes unsloth on the GPU


def test_auto_prefers_sharded_lora_to_qlora_when_lora_fits_no_single_gpu():
    """A 14B in bf16 (27.5 GiB of weights) on 32 GB GPUs: LoRA fits only sharded over two."""
    over = {"method": "auto", "train.micro_batch_size": 1}
    p = plan(config(QWEN14B, devices=(0, 1), **over), 32)
    assert (p.config.method, p.config.sync.sharding) == ("lora", "fsdp")
    one = plan(config(QWEN14B, devices=(0,), **over), 32)
    assert (one.config.method, one.config.sync.sharding) == ("qlora", "none")


def test_auto_resolves_to_none_on_one_device_or_cpu_without_planning():
    one = config(devices=(0,), method="lora")
    assert not has_auto(one)  # a concrete single-GPU config runs as written
    assert resolve_sharding(one).sync.sharding == "none"
    assert resolve_sharding(config(devices=("cpu", "cpu"))).sync.sharding == "none"
    assert resolve_auto(config(devices=("cpu", "cpu"), method="auto"), None).sync.sharding == "none"


@pytest.mark.parametrize("over,message", [
    ({"method": "qlora"}, "does not shard bitsandbytes' 4-bit"),
    ({"model.engine": "unsloth"}, "runs on the hf engine"),
    ({"sync.backend": "shm"}, "through torch.distributed"),
])
def test_sharding_refuses_what_it_cannot_run_naming_the_key(over, message):
    with pytest.raises(ConfigError, match=message) as err:
        config(**{"sync.sharding": "fsdp", **over})
    assert "sync.sharding" in str(err.value)


def test_the_train_tab_estimate_shows_the_sharded_plan_per_gpu():
    from studio.gpus import Gpu
    from studio.train_tab import estimate_text

    gpus = [Gpu(0, "H100", 80, 79), Gpu(1, "H100", 80, 79)]
    cfg = config(QWEN14B, method="full", **{"train.micro_batch_size": "auto"})
    per_gpu = plan(cfg, 79).peak_gib
    for lang, words in (("en", "sharded over 2 GPUs"), ("vi", "chia trên 2 GPU")):
        text = estimate_text(cfg, cfg, gpus, lang)
        assert text.startswith("✔ ") and f"{per_gpu:.1f} GiB" in text and words in text
    single = config(method="lora", devices=(0,))
    one = estimate_text(single, single, gpus, "en")
    assert "sharded" not in one
