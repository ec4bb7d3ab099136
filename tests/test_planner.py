"""The estimator's arithmetic on hand-computed configurations, and the planner's budget guarantee."""
from __future__ import annotations

import json

import pytest
import yaml

from trainer_backend.config import ConfigError, RunConfig, load_config
from trainer_backend.planner import PlanError, estimate, load_calibration, plan, resolve_auto
from trainer_backend.planner.architecture import Architecture

GIB = 1024 ** 3
QWEN7B = {"num_hidden_layers": 28, "hidden_size": 3584, "num_attention_heads": 28, "num_key_value_heads": 4,
          "intermediate_size": 18944, "vocab_size": 152064, "tie_word_embeddings": False}


def config(**over) -> RunConfig:
    data = {"model": {"name_or_path": "Qwen/Qwen2.5-7B-Instruct", "architecture": QWEN7B, "engine": "unsloth"},
            "template": {"max_seq_len": 2048}, "sync": {"devices": [0]},
            "train": {"micro_batch_size": 4, "gradient_checkpointing": "on"}}
    return RunConfig.model_validate(data).with_overrides(over)


def test_parameter_counts_of_qwen7b_by_hand():
    arch = Architecture.from_fields(QWEN7B, "test")
    per_layer = 3584 * 3584 * 2 + 3584 * 512 * 2 + 3584 * 18944 * 3   # q,o + k,v + gate,up,down
    assert arch.linear_params() == 28 * per_layer == 6_525_288_448
    assert arch.embedding_params() == 2 * 152064 * 3584
    # LoRA r=16: r x (in + out) per adapted projection.
    lora_per_layer = 16 * (2 * 7168 + 2 * (3584 + 512) + 3 * (3584 + 18944))
    assert arch.lora_params(16, ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]) \
        == 28 * lora_per_layer == 40_370_176


def test_breakdown_matches_hand_computed_bytes():
    est = estimate(config())
    arch = Architecture.from_fields(QWEN7B, "test")
    cal = load_calibration()
    u = cal.engines["unsloth"]
    tokens = 4 * 2048
    assert est.breakdown["weights"] == pytest.approx(arch.total_params() * 2 / GIB)
    # fp32 adapter + fp32 grad + two fp32 AdamW moments = 16 bytes per LoRA parameter
    assert est.breakdown["trainable params + grads + optimizer"] == pytest.approx(40_370_176 * 16 / GIB)
    per_layer = 2 * (u.hidden_coef * 3584 + u.intermediate_coef * 18944) * tokens
    assert est.breakdown["activations"] == pytest.approx(u.recompute_layers * per_layer / GIB)
    assert est.peak_gib == pytest.approx(sum(est.breakdown.values()))


def test_checkpointing_off_keeps_every_layer_and_qlora_shrinks_weights():
    on, off = estimate(config()), estimate(config(**{"train.gradient_checkpointing": "off"}))
    u = load_calibration().engines["unsloth"]
    assert off.breakdown["activations"] == pytest.approx(on.breakdown["activations"] * 28 / u.recompute_layers)
    q = estimate(config(method="qlora"))
    arch = Architecture.from_fields(QWEN7B, "test")
    expected = (arch.linear_params() * load_calibration().qlora_bytes_per_param
                + (arch.embedding_params() + arch.norm_params()) * 2) / GIB
    assert q.breakdown["weights"] == pytest.approx(expected)


def test_hf_checkpointing_keeps_layer_inputs_and_logits():
    est = estimate(config(**{"model.engine": "hf"}))
    h = load_calibration().engines["hf"]
    tokens = 4 * 2048
    live = h.recompute_layers * 2 * (h.hidden_coef * 3584 + h.intermediate_coef * 18944) * tokens
    assert est.breakdown["activations"] == pytest.approx((live + 28 * 3584 * 2 * tokens) / GIB)
    assert est.breakdown["logits / cross-entropy"] == pytest.approx(h.logits_bytes_per_vocab * 152064 * tokens / GIB)


@pytest.mark.parametrize("engine", ["unsloth", "hf"])
def test_log_prob_objectives_hold_one_lm_head_chunk_whatever_the_batch(engine):
    """DPO scores its sequences through the LM head 512 positions at a time (one chunk's fp32
    logits, turned in place into their exponentials and gradient, and their bf16 copy), so the
    term does not grow with the tokens of a pass, while SFT's cross-entropy buffers do on the hf
    engine."""
    dpo = [estimate(config(**{"model.engine": engine, "train.objective": "dpo", "train.micro_batch_size": m}))
           for m in (1, 8)]
    assert [e.breakdown["logits / cross-entropy"] for e in dpo] == [(4 + 2) * 512 * 152064 / GIB] * 2
    if engine == "hf":   # Unsloth's fused cross-entropy holds no logits buffers for SFT
        sft = [estimate(config(**{"model.engine": engine, "train.micro_batch_size": m})).breakdown["logits / cross-entropy"]
               for m in (1, 8)]
        assert sft[1] == 8 * sft[0] > 0



def test_the_flat_8bit_step_counts_its_copies_beyond_what_the_backward_freed():
    """adamw_8bit copies the fp32 adapters and their grads into one flat buffer each during the
    step (train/flat_optim.py): 8 bytes a LoRA parameter, minus the activations and logits the
    backward has freed by then. A short pass leaves that visible; at r=64 (161 M parameters, over
    FLAT_8BIT_MAX_ENTRIES) the step goes tensor by tensor and copies nothing."""
    row = "flat 8-bit step's copies"
    short = {"train.optimizer": "adamw_8bit", "train.micro_batch_size": 1, "template.max_seq_len": 64,
             "lora.r": 32}
    est = estimate(config(**short))
    live = (est.breakdown["activations"] + est.breakdown["logits / cross-entropy"]) * GIB
    lora = Architecture.from_fields(QWEN7B, "test").lora_params(32, ["q_proj", "k_proj", "v_proj", "o_proj",
                                                                     "gate_proj", "up_proj", "down_proj"])
    assert est.breakdown[row] == pytest.approx((8 * lora - live) / GIB) and est.breakdown[row] > 0
    assert row not in estimate(config(**{**short, "train.optimizer": "adamw"})).breakdown
    assert row not in estimate(config(**{**short, "lora.r": 64})).breakdown
    assert row not in estimate(config(**{"train.optimizer": "adamw_8bit"})).breakdown   # 4 x 2048 tokens free more

def test_calibration_reproduces_every_measurement_within_ten_percent():
    cal = load_calibration()
    assert len(cal.measurements) >= 12
    for m in cal.measurements:
        cfg = config(method=m["method"], **{"model.engine": m["engine"], "model.architecture": cal.architectures[m["arch"]],
                                            "template.max_seq_len": m["seq"], "train.micro_batch_size": m["micro_batch_size"],
                                            "train.gradient_checkpointing": m["checkpointing"],
                                            "train.optimizer": m.get("optimizer", "adamw")})
        assert estimate(cfg).allocated_gib == pytest.approx(m["allocated_gib"], rel=0.10), m


@pytest.mark.parametrize("budget", [12, 16, 20, 24, 32, 40, 48, 64, 80, 141])
@pytest.mark.parametrize("method", ["auto", "lora"])
def test_plan_never_exceeds_budget(budget, method):
    cfg = config(method=method, **{"train.micro_batch_size": "auto", "train.gradient_checkpointing": "auto",
                                   "train.effective_batch_size": 16})
    try:
        p = plan(cfg, budget, headroom_gib=1.5)
    except PlanError as err:
        assert "nothing fits" in str(err)
        assert all(not c.fits for c in plan_candidates(cfg, budget))
        return
    assert p.peak_gib <= budget - 1.5
    assert estimate(p.config).peak_gib == pytest.approx(p.peak_gib)
    t = p.config.train
    assert t.micro_batch_size * t.grad_accum == 16
    assert p.config.method in ("lora", "qlora")
    fitting = [c for c in p.table if c.fits]
    if method == "auto" and any(c.shape.method == "lora" for c in fitting):
        assert p.config.method == "lora"  # QLoRA only when no LoRA shape fits
    chosen_speed = next(c.speed for c in p.table if c.estimate is p.estimate)
    assert chosen_speed == max(c.speed for c in fitting if c.shape.method == p.config.method)


def plan_candidates(cfg, budget):
    from trainer_backend.planner.plan import score
    return score(cfg, budget - 1.5, load_calibration())


def test_plan_prefers_no_checkpointing_when_it_fits():
    cfg = config(**{"train.gradient_checkpointing": "auto", "train.micro_batch_size": "auto",
                    "train.effective_batch_size": 16})
    assert plan(cfg, 80).config.train.gradient_checkpointing == "off"
    assert plan(cfg, 20).config.train.gradient_checkpointing == "on"


def test_nothing_fits_names_the_way_out():
    with pytest.raises(PlanError, match="template.max_seq_len"):
        plan(config(**{"train.gradient_checkpointing": "auto"}), 10)


def test_resolve_auto_leaves_no_auto_and_round_trips_yaml(tmp_path):
    cfg = config(method="auto", **{"train.micro_batch_size": "auto", "train.gradient_checkpointing": "auto",
                                   "train.effective_batch_size": 32})
    for budget in (24, 80):
        resolved = resolve_auto(cfg, budget)
        data = yaml.safe_load(resolved.to_yaml())
        planned = (data["method"], data["train"]["micro_batch_size"], data["train"]["gradient_checkpointing"])
        assert "auto" not in planned
        assert data["train"]["micro_batch_size"] * data["train"]["grad_accum"] == 32
        path = tmp_path / f"r{budget}.yaml"
        resolved.save(path)
        assert load_config(path) == resolved
    cpu = resolve_auto(cfg.with_overrides({"sync.devices": ["cpu"]}), None)
    assert (cpu.method, cpu.train.gradient_checkpointing, cpu.train.micro_batch_size, cpu.train.grad_accum) \
        == ("lora", "off", 4, 8)


def test_uneven_effective_batch_is_a_config_error():
    cfg = config(**{"train.micro_batch_size": 3, "train.effective_batch_size": 16})
    with pytest.raises(ConfigError, match="train.effective_batch_size"):
        plan(cfg, 80)


def test_architecture_from_a_folder_with_only_config_json(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(QWEN7B))
    from_folder = config(**{"model.name_or_path": str(tmp_path), "model.architecture": {}})
    assert estimate(from_folder).peak_gib == pytest.approx(estimate(config()).peak_gib)
    missing = config(**{"model.name_or_path": str(tmp_path / "nowhere"), "model.architecture": {}})
    with pytest.raises(ConfigError, match="model.name_or_path"):
        estimate(missing)


def test_cpu_resolution_keeps_a_users_micro_batch_above_the_default():
    from trainer_backend.config import RunConfig
    from trainer_backend.planner import resolve_auto

    cfg = RunConfig.model_validate({"train": {"micro_batch_size": 8, "grad_accum": 3}, "sync": {"devices": ["cpu"]}})
    resolved = resolve_auto(cfg, None)
    assert (resolved.train.micro_batch_size, resolved.train.grad_accum) == (8, 3)
