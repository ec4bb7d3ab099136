"""Train tab: presets that fill every field, the config form, GPU picker, VRAM estimate, the
resolved YAML (shown and downloadable), and Launch, which queues a job and returns at once."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from studio.config_form import FieldSpec, FormError, build_form, field_specs, from_form, to_form
from studio.context import JOB_ERRORS, StudioContext, user_of
from studio.gpus import Gpu, list_gpus
from studio.i18n import t
from studio.quota import NoRoom, check_room
from studio.space import PathRefused, refusal_text, relative_paths, user_space
from studio.uploads import sanitize_name, user_dir
from trainer_backend.config import ConfigError, RunConfig
from trainer_backend.presets import list_presets, load_preset

DEMO_PRESET = "smollm2-135m-demo"


@dataclass
class TrainTab:
    preset: gr.Dropdown
    form: dict[str, gr.components.Component]
    status: gr.Markdown
    yaml: gr.Code
    launched: gr.Textbox       # the id of the job just queued (hidden; other tabs follow it)


def estimate_text(cfg: RunConfig, gpus: list[Gpu], picked: list[int], lang: str) -> str:
    """One line: the predicted peak against the smallest picked GPU's free memory."""
    if not picked:
        return t(lang, "train.est_cpu")
    from trainer_backend.planner import estimate  # torch-free; reads only the model's config.json
    free = min(g.free_gib for g in gpus if g.index in picked)
    try:
        est = estimate(cfg, free)
    except (ValueError, OSError, KeyError) as err:
        return t(lang, "train.est_failed", error=str(err))
    key = "train.est_fits" if est.peak_gib <= free else "train.est_too_big"
    text = ("✔ " if est.peak_gib <= free else "⚠ ") + t(lang, key, peak=est.peak_gib, free=free)
    if est.shape.sharded:
        text += " " + t(lang, "train.est_sharded", gpus=est.shape.shards)
    return text


def write_yaml(ctx: StudioContext, user: str, cfg: RunConfig) -> Path:
    path = user_dir(ctx.settings.workdir, user, "configs") / f"{sanitize_name(cfg.name)}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    cfg.save(path)
    return path


def build(ctx: StudioContext, lang: gr.Dropdown, dataset_state: gr.State) -> TrainTab:
    L = ctx.labels
    specs: list[FieldSpec] = field_specs()
    # The offline demo first and preselected: the form below starts on it, so a newcomer can
    # launch without typing anything (and sees which preset the form holds).
    presets = sorted(list_presets(), key=lambda p: p.name != DEMO_PRESET)
    demo = next((p.name for p in presets if p.name == DEMO_PRESET), None)
    gpus = list_gpus(ctx.settings.gpus)
    with gr.Row():
        preset = L.add(gr.Dropdown([(f"{p.name} — {p.description}", p.name) for p in presets], value=demo,
                                   interactive=True, elem_id="train-preset", scale=3), label="train.preset", info="train.preset_info")
        gpu_pick = L.add(gr.CheckboxGroup([(g.label(), g.index) for g in gpus], elem_id="train-gpus", scale=2),
                         label="train.gpus", info="train.gpus_info" if gpus else "train.cpu_only")
    form = build_form(L, load_preset(demo) if demo else RunConfig())
    comps = [form[s.key] for s in specs]
    with gr.Row():
        estimate_btn = L.add(gr.Button(elem_id="train-estimate"), value="train.estimate")
        launch = L.add(gr.Button(variant="primary", elem_id="train-launch"), value="train.launch")
    status = gr.Markdown(elem_id="train-status")
    with L.add(gr.Accordion(open=False), label="train.yaml"):
        L.add(gr.Markdown(), value="train.yaml_hint")
        code = gr.Code(language="yaml", interactive=False, elem_id="train-yaml")
        download = L.add(gr.DownloadButton(elem_id="train-download"), value="train.download")
    launched = gr.Textbox(visible=False)

    def resolved(values: list[Any], lang_v: str) -> tuple[RunConfig | None, str]:
        try:
            return from_form(specs, values), ""
        except (FormError, ConfigError) as err:
            return None, t(lang_v, "train.bad_config", error=str(err))

    def on_preset(evt: gr.SelectData, state: dict | None):
        # On select, not change: picking the preselected demo again re-applies it (resets the form).
        name = presets[evt.index].name if isinstance(evt.index, int) and evt.index < len(presets) else None
        if not name:
            return [gr.skip()] * len(specs)
        cfg = load_preset(name)
        if state:  # keep the user's dataset; the preset brings everything else
            cfg = cfg.with_overrides({"data.path": state["path"], "data.format": state["format"],
                                      "data.columns": state["columns"]})
        return to_form(cfg, specs)

    def on_dataset(state: dict | None):
        if not state:
            return gr.skip(), gr.skip(), gr.skip()
        cols = ", ".join(f"{k}: {v}" for k, v in state["columns"].items())
        return state["path"], state["format"], "{" + cols + "}" if cols else ""

    def show_yaml(request: gr.Request, *args):  # request first: gradio injects only positional ones
        *values, picked, lang_v = args
        cfg, err = resolved(list(values), lang_v)
        if cfg is None:
            return err, gr.skip(), gr.skip()
        cfg = _with_devices(cfg, picked)
        user = user_of(request)
        allowed, refused = allowed_run(ctx, user, cfg, lang_v)
        status = refused or estimate_text(allowed, gpus, picked, lang_v)
        return status, cfg.to_yaml(), write_yaml(ctx, user, cfg)

    def on_launch(request: gr.Request, *args):
        *values, picked, lang_v = args
        cfg, err = resolved(list(values), lang_v)
        if cfg is None:
            return err, gr.skip(), gr.skip(), gr.skip()
        cfg = _with_devices(cfg, picked)
        user = user_of(request)
        cfg, refused = allowed_run(ctx, user, cfg, lang_v)
        if cfg is None:
            return refused, gr.skip(), gr.skip(), gr.skip()
        try:
            check_room(ctx, user, 0)
            job_id = ctx.runner.submit(cfg, user, gpus=list(picked) or None)
        except NoRoom as err:
            return t(lang_v, err.key, **err.params), gr.skip(), gr.skip(), gr.skip()
        except JOB_ERRORS as err:
            error = relative_paths(str(err), ctx.settings.workdir, user)
            return t(lang_v, "train.launch_failed", error=error), gr.skip(), gr.skip(), gr.skip()
        return t(lang_v, "train.launched", job=job_id), cfg.to_yaml(), write_yaml(ctx, user, cfg), job_id

    preset.select(on_preset, dataset_state, comps).then(
        show_yaml, [*comps, gpu_pick, lang], [status, code, download])
    dataset_state.change(on_dataset, dataset_state, [form["data.path"], form["data.format"], form["data.columns"]])
    gr.on([estimate_btn.click, gpu_pick.input, *(c.input for c in comps)], show_yaml, [*comps, gpu_pick, lang],
          [status, code, download], show_progress="hidden")
    launch.click(on_launch, [*comps, gpu_pick, lang], [status, code, download, launched], api_name="launch")
    return TrainTab(preset, form, status, code, launched)


def allowed_run(ctx: StudioContext, user: str, cfg: RunConfig, lang: str) -> tuple[RunConfig | None, str]:
    """The run with its paths confined to the user's space, or None and why not. Remote model
    code runs only where the admin allowed it."""
    try:
        cfg = user_space(ctx, user).confine_config(cfg)
    except PathRefused as err:
        return None, refusal_text(err, lang)
    if cfg.model.trust_remote_code and not ctx.may_run_remote_code(user):
        return None, t(lang, "train.remote_code_off")
    return cfg, ""


def _with_devices(cfg: RunConfig, picked: list[int]) -> RunConfig:
    return cfg.with_overrides({"sync.devices": list(picked)}) if picked else cfg

