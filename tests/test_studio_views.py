"""The studio's views of job and dataset facts, without a server: loss charts split at a resume,
the length histogram's axis, and the QLoRA fields reaching bitsandbytes."""
from __future__ import annotations

from dataclasses import replace

import pytest

from studio.charts import absorb, loss_figure, new_series
from studio.data_tab import histogram
from studio.preview import BuildCounts, PreviewReport


def lengths_report(lengths: list[int], max_seq_len: int) -> PreviewReport:
    counts = BuildCounts(len(lengths), len(lengths), 0, 0, 0, (), ())
    return PreviewReport("m", "auto", "alpaca", None, len(lengths), len(lengths), max_seq_len, counts, tuple(lengths),
                         sum(lengths), len(lengths), 0, ())


def train(step: int, loss: float) -> dict:
    return {"kind": "train", "step": step, "loss": loss, "lr": 1e-3, "tokens_per_s": 10.0, "gpu_mem_gib": []}


def test_a_resumed_job_draws_each_attempt_as_its_own_line():
    series = new_series("job")
    absorb(series, [train(1, 5.0), train(2, 4.0), train(3, 3.5), train(4, 3.0)])
    absorb(series, [train(3, 3.4), train(4, 3.1), train(5, 2.9)])      # resumed from the step-2 checkpoint
    traces = loss_figure(series, "en").data
    assert [(t.name, list(t.x), list(t.y)) for t in traces] == [
        ("train, attempt 1", [1, 2, 3, 4], [5.0, 4.0, 3.5, 3.0]),
        ("train, attempt 2", [3, 4, 5], [3.4, 3.1, 2.9])]
    one = new_series("other")
    absorb(one, [train(1, 5.0), train(2, 4.0)])
    assert [(t.name, list(t.x)) for t in loss_figure(one, "vi").data] == [("huấn luyện", [1, 2])]


def test_the_histogram_axis_fits_short_rows_and_names_a_far_limit():
    short = lengths_report([30, 42, 55, 61], 2048)
    fig = histogram(short, "en")
    assert fig.layout.xaxis.range == (0, 61 * 1.05) and not fig.layout.shapes
    assert "max_seq_len 2048 is far right of the longest row" in fig.layout.title.text
    near = histogram(lengths_report([100, 240, 256], 256), "en")
    assert near.layout.xaxis.range == (0, 256 * 1.05) and near.layout.shapes[0].x0 == 256


@pytest.mark.parametrize("settings, expected", [
    ({}, ("nf4", True, "float32")),
    ({"qlora.quant_type": "fp4", "qlora.double_quant": False, "qlora.compute_dtype": "bf16"}, ("fp4", False, "bfloat16")),
])
def test_qlora_fields_reach_the_bitsandbytes_config(monkeypatch, tiny_llama_dir, settings, expected):
    import torch

    from trainer_backend.config import RunConfig
    from trainer_backend.models import loading

    captured = {}

    class Loaded(Exception):
        pass

    def fake_from_pretrained(cls, path, **kwargs):
        captured.update(kwargs)
        raise Loaded

    monkeypatch.setattr(loading, "_from_pretrained", fake_from_pretrained)
    cfg = RunConfig().with_overrides({"method": "qlora", "model.name_or_path": str(tiny_llama_dir), **settings})
    with pytest.raises(Loaded):
        loading._load_hf(cfg, torch.device("cuda", 0), torch.float32)
    q = captured["quantization_config"]
    assert (q.bnb_4bit_quant_type, q.bnb_4bit_use_double_quant, str(q.bnb_4bit_compute_dtype).removeprefix("torch.")) \
        == expected and q.load_in_4bit


def test_unsloth_refuses_qlora_settings_it_cannot_honour():
    import torch

    from trainer_backend.config import ConfigError, RunConfig
    from trainer_backend.device_rules import UNSLOTH_QLORA_FIXED
    from trainer_backend.models.engine import check_method

    cfg = RunConfig().with_overrides({"method": "qlora", "model.engine": "unsloth", "train.precision": "bf16"})
    check_method(cfg, torch.device("cuda", 0))                     # the defaults are unsloth's own
    with pytest.raises(ConfigError) as caught:
        check_method(cfg.with_overrides({"qlora.quant_type": "fp4"}), torch.device("cuda", 0))
    assert str(caught.value) == str(UNSLOTH_QLORA_FIXED)


def test_the_template_tab_says_which_run_it_previews_and_when_the_preview_is_stale():
    from studio.template_tab import basis_text
    from trainer_backend.presets import load_preset

    run = load_preset("smollm2-135m-demo")
    made = replace(lengths_report([10], run.template.max_seq_len), model=run.model.name_or_path,
                   template=run.template.name)
    assert basis_text(run, made, "en").startswith("Previewing the run prepared in the Train tab: model "
                                                  "**SmolLM2-135M-Instruct**, template **auto**")
    assert "⚠" not in basis_text(run, made, "en") and "max_seq_len **256**" in basis_text(run, made, "en")
    longer = run.with_overrides({"template.max_seq_len": 2048})
    assert basis_text(longer, made, "en").endswith("⚠ The run changed since this preview was made: press Preview "
                                                   "masks to see what it trains now.")
