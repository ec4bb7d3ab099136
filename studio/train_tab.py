"""Train tab: presets that fill every field, the config form, GPU picker, VRAM estimate, the
resolved YAML (shown and downloadable), and Launch, which checks the run against its devices,
queues a job and returns at once.

The tab owns the run being prepared (`run_state`, a RunConfig): a preset replaces it, the Data tab's
dataset and the form's fields edit it, and the Template tab previews with it."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from studio.common import DEMO_PRESET, DatasetChoice, preset_text
from studio.config_form import FieldSpec, FormError, build_form, field_specs, from_form, to_form
from studio.context import JOB_ERRORS, StudioContext, user_of
from studio.gpus import Gpu, list_gpus
from studio.i18n import say, t
from studio.quota import NoRoom, check_room
from studio.space import PathRefused, refusal_text, relative_paths, user_space
from studio.uploads import sanitize_name, user_dir
from trainer_backend.config import ConfigError, RunConfig
from trainer_backend.device_rules import check_devices, cpu_problems
from trainer_backend.messages import joined
from trainer_backend.presets import list_presets, load_preset

JOB_DIR_SHOWN = "jobs/<the job id, given at launch>"


@dataclass
class TrainTab:
    preset: gr.Dropdown
    form: dict[str, gr.components.Component]
    status: gr.Markdown
    yaml: gr.Code
    launched: gr.Textbox       # the id of the job just queued (hidden; other tabs follow it)


def initial_run() -> RunConfig:
    """The run a fresh page prepares: the offline demo preset, so Launch works without typing."""
    names = {p.name for p in list_presets()}
    return load_preset(DEMO_PRESET) if DEMO_PRESET in names else RunConfig()


def on_devices(cfg: RunConfig, picked: list[int]) -> RunConfig:
    """The run on the picked GPUs; none picked is a CPU job."""
    return cfg.with_overrides({"sync.devices": list(picked) if picked else ["cpu"]})


def estimate_text(run: RunConfig, cfg: RunConfig, gpus: list[Gpu], lang: str) -> str:
    """What the run needs of the picked devices. `run` is the run as prepared (its devices say what
    it was planned for), `cfg` the same run on the picked devices."""
    from trainer_backend.planner import estimate  # torch-free; reads only the model's config.json
    picked = [d for d in cfg.sync.devices if d != "cpu"]
    if not picked:
        problems = cpu_problems(cfg)
        lines = ["✖ " + t(lang, "train.cpu_blocked", problems=say(lang, joined(problems)))] if problems else \
            [t(lang, "train.est_cpu")]
        budget = cfg.planner.gpu_mem_gib
        if budget is not None:
            # Planning on a laptop for a GPU server: the estimate for the GPU the preset is sized for.
            try:
                est = estimate(cfg.with_overrides({"sync.devices": [0]}), budget)
            except (ValueError, OSError, KeyError) as err:
                return "\n\n".join([*lines, t(lang, "train.est_failed", error=str(err))])
            key = "train.est_planned_fits" if est.peak_gib <= budget else "train.est_planned_too_big"
            lines.append(t(lang, key, peak=est.peak_gib, budget=budget))
        elif "cpu" not in run.sync.devices:
            lines.append(t(lang, "train.est_no_budget"))
        return "\n\n".join(lines)
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


def shown_yaml(cfg: RunConfig) -> str:
    """The run as the job will get it: the runner gives each job its own folder."""
    return cfg.with_overrides({"output.dir": JOB_DIR_SHOWN}).to_yaml()


def dataset_line(run: RunConfig, dataset: DatasetChoice | None, lang: str) -> str:
    if dataset is not None and dataset.path == run.data.path:
        return t(lang, "train.dataset", name=dataset.name, format=dataset.format, rows=dataset.valid_rows)
    return t(lang, "train.dataset_preset", name=Path(run.data.path).name)


def write_yaml(ctx: StudioContext, user: str, name: str, text: str) -> Path:
    path = user_dir(ctx.settings.workdir, user, "configs") / f"{sanitize_name(name)}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def build(ctx: StudioContext, lang: gr.Dropdown, dataset_state: gr.State, run_state: gr.State) -> TrainTab:
    L = ctx.labels
    specs: list[FieldSpec] = field_specs()
    # The offline demo first and preselected: the form below starts on it, so a newcomer can
    # launch without typing anything (and sees which preset the form holds).
    presets = sorted(list_presets(), key=lambda p: p.name != DEMO_PRESET)
    start = initial_run()
    gpus = list_gpus(ctx.settings.gpus)
    with gr.Row():
        preset = L.add(gr.Dropdown([p.name for p in presets],
                                   value=DEMO_PRESET if presets and presets[0].name == DEMO_PRESET else None,
                                   interactive=True, elem_id="train-preset", scale=3),
                       label="train.preset", info="train.preset_info")
        gpu_pick = L.add(gr.CheckboxGroup([(g.label(), g.index) for g in gpus], elem_id="train-gpus", scale=2),
                         label="train.gpus", info="train.gpus_info" if gpus else "train.cpu_only")
    preset_about = gr.Markdown(start.description, elem_id="train-preset-about")
    about = lambda cfg, lang_v: preset_text(cfg.name, cfg.description, cfg.method, cfg.planner.gpu_mem_gib, lang_v)  # noqa: E731
    data_md = gr.Markdown(dataset_line(start, None, "en"), elem_id="train-dataset")
    form = build_form(L, start)
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

    def resolved(run: RunConfig, dataset: DatasetChoice | None, values: list[Any], picked: list[int],
                 lang_v: str) -> tuple[RunConfig | None, str]:
        # The dataset just loaded wins over the run's data keys (which follow it a moment later).
        run = run.with_overrides(dataset.overrides()) if dataset else run
        try:
            return on_devices(from_form(run, specs, values), picked), ""
        except (FormError, ConfigError) as err:
            said = say(lang_v, err.notice) if isinstance(err, ConfigError) else err.text(lang_v)
            return None, t(lang_v, "train.bad_config", error=said)

    def on_preset(evt: gr.SelectData, dataset: DatasetChoice | None, lang_v: str):
        # On select, not change: picking the preselected demo again re-applies it (resets the form).
        name = presets[evt.index].name if isinstance(evt.index, int) and evt.index < len(presets) else None
        if not name:
            return [gr.skip()] * (len(specs) + 2)
        cfg = load_preset(name)
        if dataset:  # keep the user's dataset; the preset brings everything else
            cfg = cfg.with_overrides(dataset.overrides())
        return cfg, about(cfg, lang_v), *to_form(cfg, specs)

    def on_dataset(dataset: DatasetChoice | None, run: RunConfig, lang_v: str):
        if dataset is None:
            return gr.skip(), gr.skip()
        run = run.with_overrides(dataset.overrides())
        return run, dataset_line(run, dataset, lang_v)

    def show_yaml(request: gr.Request, *args):  # request first: gradio injects only positional ones
        *values, picked, lang_v, run, dataset = args
        cfg, err = resolved(run, dataset, list(values), picked, lang_v)
        if cfg is None:
            return err, gr.skip(), gr.skip(), gr.skip()
        text = shown_yaml(cfg)
        user = user_of(request)
        allowed, refused = allowed_run(ctx, user, cfg, lang_v)
        # Free memory is read now: other jobs come and go while the user edits.
        gpus_now = list_gpus(ctx.settings.gpus) if picked else []
        status = refused or estimate_text(run, allowed, gpus_now, lang_v)
        return (status, text, write_yaml(ctx, user, cfg.name, text),
                from_form(run, specs, list(values)) if not dataset else
                from_form(run.with_overrides(dataset.overrides()), specs, list(values)))

    def on_launch(request: gr.Request, *args):
        *values, picked, lang_v, run, dataset = args
        cfg, err = resolved(run, dataset, list(values), picked, lang_v)
        if cfg is None:
            return err, gr.skip(), gr.skip(), gr.skip()
        user = user_of(request)
        cfg, refused = allowed_run(ctx, user, cfg, lang_v)
        if cfg is None:
            return refused, gr.skip(), gr.skip(), gr.skip()
        try:
            check_devices(cfg)       # the trainer's own message, before anything is queued
            check_room(ctx, user, 0)
            job_id = ctx.runner.submit(cfg, user, gpus=list(picked) or None)
        except NoRoom as err:
            return t(lang_v, err.key, **err.params), gr.skip(), gr.skip(), gr.skip()
        except (ConfigError, *JOB_ERRORS) as err:
            said = say(lang_v, err.notice) if isinstance(err, ConfigError) else str(err)
            error = relative_paths(said, ctx.settings.workdir, user)
            return t(lang_v, "train.launch_failed", error=error), gr.skip(), gr.skip(), gr.skip()
        text = ctx.runner.config_text(job_id, user)
        return t(lang_v, "train.launched", job=job_id), text, write_yaml(ctx, user, cfg.name, text), job_id

    inputs = [*comps, gpu_pick, lang, run_state, dataset_state]
    preset.select(on_preset, [dataset_state, lang], [run_state, preset_about, *comps]).then(
        show_yaml, inputs, [status, code, download, run_state])
    dataset_state.change(on_dataset, [dataset_state, run_state, lang], [run_state, data_md])
    # always_last: a burst of edits ends on the last one (the default would drop edits made while
    # an earlier one was being answered).
    gr.on([estimate_btn.click, gpu_pick.input, *(c.input for c in comps)], show_yaml, inputs,
          [status, code, download, run_state], show_progress="hidden", trigger_mode="always_last", api_name="resolve")
    launch.click(on_launch, inputs, [status, code, download, launched], api_name="launch")
    lang.change(lambda run, dataset, lang_v: (dataset_line(run, dataset, lang_v), about(run, lang_v)),
                [run_state, dataset_state, lang], [data_md, preset_about])
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
