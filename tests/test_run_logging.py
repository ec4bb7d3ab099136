"""Run logging beside events.jsonl: TensorBoard event files and an offline Weights & Biases run
hold the scalars the run logged; both are optional, and the form hides what is not installed."""
from __future__ import annotations

import sys

import pytest

from trainer_backend.__main__ import main
from trainer_backend.config import ConfigError, RunConfig, unavailable_keys
from trainer_backend.train.events import read_events
from trainer_backend.train.mirrors import open_mirrors

from test_train_cli import cli


def test_tensorboard_event_files_hold_the_logged_scalars(tiny_llama_dir, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    job = tmp_path / "job"
    assert main(cli(tiny_llama_dir, job, "train.tensorboard=true", "train.max_steps=3")) == 0
    logged = read_events(job, "train")
    board = EventAccumulator(str(job / "tensorboard"))
    board.Reload()
    assert {"train/loss", "train/lr", "train/grad_norm", "train/tokens_per_s"} <= set(board.Tags()["scalars"])
    for tag in ("loss", "lr", "grad_norm"):
        scalars = board.Scalars(f"train/{tag}")
        assert [s.step for s in scalars] == [e["step"] for e in logged]
        assert [s.value for s in scalars] == pytest.approx([e[tag] for e in logged], rel=1e-6)


def test_wandb_offline_run_files_hold_the_run(tiny_llama_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    job = tmp_path / "job"
    assert main(cli(tiny_llama_dir, job, "train.wandb=true", "train.max_steps=2")) == 0
    runs = list((job / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(runs) == 1
    data = runs[0].read_bytes()
    assert b"train/loss" in data and b"fine-tuning-studio" in data and job.name.encode() in data


def test_optional_packages_missing_hide_the_field_and_refuse_the_run(monkeypatch, tmp_path):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    assert unavailable_keys() == {"train.wandb", "train.wandb_project"}
    monkeypatch.setitem(sys.modules, "wandb", None)  # import wandb now raises ImportError
    cfg = RunConfig.model_validate({"train": {"wandb": True}})
    with pytest.raises(ConfigError) as err:
        open_mirrors(cfg, tmp_path)
    assert str(err.value) == ("'train.wandb': the wandb package is not installed; pip install wandb, "
                              "or set train.wandb: false")


def test_the_form_hides_options_whose_package_is_missing(monkeypatch):
    import gradio as gr

    from studio import config_form
    from studio.i18n import LabelBook

    monkeypatch.setattr(config_form, "unavailable_keys", lambda: {"train.wandb", "train.wandb_project"})
    with gr.Blocks():
        comps = config_form.build_form(LabelBook(), RunConfig())
    assert not comps["train.wandb"].visible and not comps["train.wandb_project"].visible
    assert comps["train.tensorboard"].visible
