"""Presets load through both entry points, fit their GPUs as declared, and render+mask exactly."""
from __future__ import annotations

from pathlib import Path

import pytest

from trainer_backend.config import PRESETS_DIR, load_config
from trainer_backend.data.conversation import Conversation, Message
from trainer_backend.planner import estimate
from trainer_backend.presets import list_presets, load_preset
from trainer_backend.templates import load_tokenizer, render_and_mask

from conftest import ROOT, TOKENIZERS

NAMES = sorted(p.stem for p in PRESETS_DIR.glob("*.yaml"))
MODELS = ["qwen2.5-7b-instruct", "qwen3-8b", "qwen3-8b-nothink", "mistral-7b-instruct-v0.3",
          "vistral-7b-chat", "llama-3.1-8b-instruct"]
SIZED = [f"{m}-{g}gb" for m in MODELS for g in (24, 48, 80)]
# Offline stand-ins: (tokenizer, template to use when the preset says auto and the tokenizer has none).
OFFLINE = {"qwen2.5": ("qwen3", None), "qwen3": ("qwen3", None), "mistral": ("mistral-v3", "mistral-v3"),
           "vistral": ("mistral-v1", None), "llama": ("llama3", None), "smollm2": ("smollm2", None)}


def test_every_required_preset_exists_and_loads_both_ways():
    assert set(MODELS + SIZED + ["smollm2-135m-demo"]) <= set(NAMES)
    infos = {i.name: i for i in list_presets()}
    for name in NAMES:
        assert load_preset(name) == load_config(name)
        assert infos[name].description and len(infos[name].description.splitlines()) == 1


def test_demo_preset_is_offline_and_cpu_sized():
    cfg = load_preset("smollm2-135m-demo")
    assert (ROOT / cfg.model.name_or_path / "config.json").is_file()
    assert (ROOT / cfg.data.path).is_file()
    assert cfg.sync.devices == ["cpu"] and cfg.template.max_seq_len <= 512 and cfg.train.max_steps > 0


@pytest.mark.parametrize("name", SIZED)
def test_declared_peak_is_the_estimate_and_fits(name):
    cfg = load_preset(name)
    gpu = cfg.planner.gpu_mem_gib
    assert gpu == int(name.rsplit("-", 1)[1][:-2])
    est = estimate(cfg, gpu)
    assert cfg.planner.expected_peak_gib == pytest.approx(est.peak_gib, abs=0.01)
    assert est.peak_gib <= gpu - cfg.planner.headroom_gib
    assert cfg.method == ("qlora" if gpu == 24 else "lora")
    assert cfg.train.micro_batch_size * cfg.train.grad_accum == cfg.train.effective_batch_size


@pytest.mark.parametrize("name", MODELS)
def test_auto_presets_plan_for_each_gpu_size(name):
    cfg = load_preset(name)
    assert cfg.method == cfg.train.micro_batch_size == cfg.train.gradient_checkpointing == "auto"
    for gpu in (24, 48, 80):
        assert estimate(cfg, gpu).peak_gib <= gpu - cfg.planner.headroom_gib


def offline_tokenizer(name: str):
    family = name.split("-")[0]
    tok_name, fallback = OFFLINE[family]
    folder = TOKENIZERS[tok_name]
    if not Path(folder).exists():
        pytest.skip(f"{folder} missing: run scripts/fetch_assets.py")
    cfg = load_preset(name)
    template = cfg.template.name if cfg.template.name != "auto" else (fallback or "auto")
    return cfg, load_tokenizer(str(folder), template)


@pytest.mark.parametrize("name", MODELS + ["smollm2-135m-demo"])
def test_template_trains_exactly_the_answers(name):
    cfg, tok = offline_tokenizer(name)
    answers = ["Paris is the capital.", "About two million people."]
    conv = Conversation(row=0, messages=(
        Message("user", "What is the capital of France?"), Message("assistant", answers[0]),
        Message("user", "How many people live there?"), Message("assistant", answers[1])))
    ex = render_and_mask(conv, tok, cfg.template)
    trained = tok.decode([i for i, t in zip(ex.input_ids, ex.trained) if t])
    masked = tok.decode([i for i, t in zip(ex.input_ids, ex.trained) if not t])
    assert answers[1] in trained and "How many people" in masked and "How many people" not in trained
    assert tok.decode([ex.input_ids[max(i for i, t in enumerate(ex.trained) if t)]]) in (
        tok.eos_token, "<|im_end|>", "<|eot_id|>", "</s>")
    if cfg.template.system_prompt:
        assert cfg.template.system_prompt.split(".")[0] in masked
    if cfg.template.enable_thinking is False:
        assert "<think>" in ex.text  # Qwen3 renders an empty think block when thinking is off


@pytest.mark.parametrize("name", SIZED + ["qwen3-8b-nothink"])
def test_a_variant_is_an_overlay_that_states_only_what_it_changes(name):
    import yaml

    overlay = yaml.safe_load((PRESETS_DIR / f"{name}.yaml").read_text())
    base_name = overlay.pop("base")
    base = load_preset(base_name).model_dump(mode="json")
    assert len(overlay) < len(base)        # no section is repeated whole
    for section, value in overlay.items():
        changed = value.items() if isinstance(value, dict) else [(None, value)]
        for key, v in changed:
            was = base[section] if key is None else base[section][key]
            assert v != was, f"{name}: {section}.{key} repeats its base {base_name}"
    variant = load_preset(name).model_dump(mode="json")
    assert variant["model"]["architecture"] == base["model"]["architecture"]


def test_a_bad_base_is_a_config_error_naming_the_file(tmp_path):
    from trainer_backend.config import ConfigError

    path = tmp_path / "mine.yaml"
    path.write_text("base: no-such-preset\nlora: {r: 8}\n")
    with pytest.raises(ConfigError, match=r"mine.yaml: 'base': 'no-such-preset' is not a preset in presets/"):
        load_config(path)
    path.write_text("base: smollm2-135m-demo\nlora: {r: 8}\n")
    cfg = load_config(path)
    assert cfg.lora.r == 8 and cfg.lora.alpha == load_preset("smollm2-135m-demo").lora.alpha
