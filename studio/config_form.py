"""The Train tab's form, generated from RunConfig: one widget per config key the user sets here, the
essential ones first and the rest under Advanced. A key the schema gains shows up under Advanced by
itself; making it essential, or keeping it off the form, is one entry in the lists below.

The form edits the run being prepared (a RunConfig): keys that are not on the form (the dataset,
the devices, the architecture a preset records) are carried from it unchanged."""
from __future__ import annotations

import types
import typing
from dataclasses import dataclass
from typing import Any, Literal

import gradio as gr
from pydantic import BaseModel

from studio.i18n import LabelBook, field_info_key, field_label_key, t
from trainer_backend.config import RunConfig, unavailable_keys
from trainer_backend.safe_yaml import MAX_FIELD_BYTES

# Shown first, in this order: what most runs change (preset, data and GPUs sit above the form).
ESSENTIAL = ("method", "model.name_or_path", "lora.r", "lora.alpha", "train.lr", "train.epochs",
             "train.max_steps", "template.max_seq_len", "name")
# Set elsewhere: the Data tab picks the data, the GPU picker the devices, the job runner the output
# folder, presets record the architecture and the peak the planner predicted for them.
NOT_ON_FORM = ("model.architecture", "data.path", "data.format", "data.columns", "data.drop_trailing_user",
               "sync.devices", "output.dir", "planner.expected_peak_gib")
# Suggestions for the keys that take a list of names or a number or `auto`.
TARGET_MODULES = ("all-linear", "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
BATCH_SIZES = ("auto", 1, 2, 4, 8, 16, 32)
TRISTATE = {"default": None, "on": True, "off": False}


@dataclass(frozen=True)
class FieldSpec:
    key: str                  # dotted config key, e.g. "train.lr"
    kind: str                 # choice | bool | int | float | text | optional_text | optional_number | multi | lines |
    #                           tristate | int_or_auto | modules
    choices: tuple = ()
    description: str | None = None

    @property
    def essential(self) -> bool:
        return self.key in ESSENTIAL


def _kind(key: str, annotation: Any) -> tuple[str, tuple]:
    origin, args = typing.get_origin(annotation), set(typing.get_args(annotation))
    if origin is Literal:
        return "choice", typing.get_args(annotation)
    if origin is list and typing.get_origin(typing.get_args(annotation)[0]) is Literal:
        return "multi", typing.get_args(typing.get_args(annotation)[0])
    if origin is list and typing.get_args(annotation) == (str,):
        return "lines", ()
    if annotation in (bool, int, float, str):
        return annotation.__name__.replace("str", "text"), ()
    if origin in (typing.Union, types.UnionType):
        if args == {str, type(None)}:
            return "optional_text", ()
        if args == {bool, type(None)}:
            return "tristate", tuple(TRISTATE)
        if args in ({int, type(None)}, {float, type(None)}):
            return "optional_number", ()
        if key == "lora.target_modules":
            return "modules", TARGET_MODULES
        if int in args:
            return "int_or_auto", BATCH_SIZES
    raise TypeError(f"{key}: no form widget for {annotation}; add it to NOT_ON_FORM or teach config_form")


def field_specs(model: type[BaseModel] = RunConfig, prefix: str = "") -> list[FieldSpec]:
    """Every key on the form, essential ones first in ESSENTIAL's order, then the schema's order."""
    specs = []
    for name, info in model.model_fields.items():
        key, ann = f"{prefix}{name}", info.annotation
        if key in NOT_ON_FORM:
            continue
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            specs += field_specs(ann, f"{key}.")
            continue
        kind, choices = _kind(key, ann)
        specs.append(FieldSpec(key, kind, choices, info.description))
    if prefix:
        return specs
    return sorted(specs, key=lambda s: ESSENTIAL.index(s.key) if s.essential else len(ESSENTIAL))


def _component(spec: FieldSpec, value: Any, visible: bool = True) -> gr.components.Component:
    common = dict(elem_id="cfg-" + spec.key.replace(".", "-").replace("_", "-"), visible=visible)
    if spec.kind in ("choice", "tristate"):
        return gr.Dropdown(list(spec.choices), value=value, **common)
    if spec.kind == "multi":
        return gr.CheckboxGroup(list(spec.choices), value=value, **common)
    if spec.kind == "lines":   # one entry a line
        return gr.Textbox(value=value, lines=3, **common)
    if spec.kind == "int_or_auto":
        return gr.Dropdown(list(spec.choices), value=value, allow_custom_value=True, **common)
    if spec.kind == "modules":
        return gr.Dropdown(list(spec.choices), value=value, multiselect=True, allow_custom_value=True,
                           **common)
    if spec.kind == "bool":
        return gr.Checkbox(value=value, **common)
    if spec.kind in ("int", "float", "optional_number"):
        return gr.Number(value=value, precision=0 if spec.kind == "int" else None, **common)
    lines = 2 if spec.key in ("description", "template.system_prompt") else 1
    return gr.Textbox(value=value, lines=lines, **common)


def build_form(labels: LabelBook, initial: RunConfig) -> dict[str, gr.components.Component]:
    """The essential fields in rows of four, then one closed Advanced accordion with a group per section."""
    specs = field_specs()
    values = dict(zip((s.key for s in specs), to_form(initial, specs)))
    hidden = unavailable_keys()  # e.g. W&B without the wandb package
    comps: dict[str, gr.components.Component] = {}
    with gr.Row(equal_height=False, elem_id="cfg-essential"):
        for spec in (s for s in specs if s.essential):
            with gr.Column(min_width=220):
                comps[spec.key] = _labelled(labels, spec, values[spec.key], spec.key not in hidden)
    sections: dict[str, list[FieldSpec]] = {}
    for spec in (s for s in specs if not s.essential):
        sections.setdefault(spec.key.split(".")[0] if "." in spec.key else "run", []).append(spec)
    with labels.add(gr.Accordion(open=False, elem_id="cfg-advanced"), label="cfg.advanced"):
        for section, members in sections.items():
            labels.add(gr.Markdown(), value=f"cfg.section.{section}")
            with gr.Row(equal_height=False):
                for spec in members:
                    with gr.Column(min_width=220):
                        comps[spec.key] = _labelled(labels, spec, values[spec.key], spec.key not in hidden)
    return comps


def _labelled(labels: LabelBook, spec: FieldSpec, value: Any, visible: bool = True) -> gr.components.Component:
    return labels.add(_component(spec, value, visible), label=field_label_key(spec.key), info=field_info_key(spec.key),
                      fallback_label=spec.key, fallback_info=spec.description)


def _get(data: dict, key: str) -> Any:
    for part in key.split("."):
        data = data[part]
    return data


def to_form(config: RunConfig, specs: list[FieldSpec]) -> list[Any]:
    data = config.model_dump(mode="json")
    return [_show(spec, _get(data, spec.key)) for spec in specs]


def _show(spec: FieldSpec, value: Any) -> Any:
    if spec.kind == "optional_text":
        return value or ""
    if spec.kind == "tristate":
        return next(name for name, v in TRISTATE.items() if v is value)
    if spec.kind == "modules":
        return [value] if isinstance(value, str) else list(value)
    if spec.kind == "lines":
        return "\n".join(value)
    return value


class FormError(ValueError):
    """A form value that cannot be read; the message (a string key and its parameters, English in
    str()) names the config key."""

    def __init__(self, key: str, /, **params: Any):
        super().__init__(t("en", key, **params))
        self.key, self.params = key, params

    def text(self, lang: str) -> str:
        return t(lang, self.key, **self.params)


def from_form(base: RunConfig, specs: list[FieldSpec], values: list[Any]) -> RunConfig:
    """`base` with the form's values; raises FormError or ConfigError, both naming the key. Values
    are taken as typed, never parsed as YAML, and each is bounded like a --set value."""
    for spec, value in zip(specs, values):
        if isinstance(value, str) and len(value.encode()) > MAX_FIELD_BYTES:
            raise FormError("train.form_too_long", field=spec.key, size=f"{len(value.encode()):,}",
                            limit=f"{MAX_FIELD_BYTES:,}")
    return base.with_overrides({spec.key: _read(spec, value) for spec, value in zip(specs, values)})


def _read(spec: FieldSpec, value: Any) -> Any:
    if spec.kind == "int" and value is not None:
        return int(value)
    if spec.kind == "optional_text":
        return value or None
    if spec.kind == "multi":
        return list(value or [])
    if spec.kind == "lines":
        return [line.strip() for line in (value or "").splitlines() if line.strip()]
    if spec.kind == "tristate":
        return TRISTATE.get(value)
    if spec.kind == "modules":
        names = [v for v in (value or []) if v]
        return "all-linear" if not names or "all-linear" in names else names
    if spec.kind == "int_or_auto":
        if value in ("auto", None, ""):
            return "auto"
        try:
            return int(value)
        except (TypeError, ValueError):
            raise FormError("train.form_not_int", field=spec.key, value=value) from None
    return value
