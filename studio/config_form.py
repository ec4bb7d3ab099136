"""The Train tab's form, generated from RunConfig: one component per config key, so the form maps
onto the schema 1:1 and a new key shows up without touching the UI."""
from __future__ import annotations

import types
import typing
from dataclasses import dataclass
from typing import Any, Literal

import gradio as gr
import yaml
from pydantic import BaseModel

from studio.i18n import LabelBook, field_info_key, field_label_key
from trainer_backend.config import RunConfig, unavailable_keys, validate_config
from trainer_backend.safe_yaml import MAX_FIELD_BYTES, YamlError, YamlRefused, load_yaml

OPEN_SECTIONS = ("model", "data", "template", "lora", "train")


@dataclass(frozen=True)
class FieldSpec:
    key: str                  # dotted config key, e.g. "train.lr"
    kind: str                 # choice | bool | int | float | text | optional_text | yaml
    choices: tuple = ()
    description: str | None = None


def _kind(annotation: Any) -> tuple[str, tuple]:
    origin = typing.get_origin(annotation)
    if origin is Literal:
        return "choice", typing.get_args(annotation)
    if annotation in (bool, int, float, str):
        return annotation.__name__.replace("str", "text"), ()
    if origin in (typing.Union, types.UnionType) and set(typing.get_args(annotation)) == {str, type(None)}:
        return "optional_text", ()
    return "yaml", ()


def field_specs(model: type[BaseModel] = RunConfig, prefix: str = "") -> list[FieldSpec]:
    specs = []
    for name, info in model.model_fields.items():
        ann = info.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            specs += field_specs(ann, f"{prefix}{name}.")
            continue
        kind, choices = _kind(ann)
        specs.append(FieldSpec(f"{prefix}{name}", kind, choices, info.description))
    return specs


def _component(spec: FieldSpec, value: Any, visible: bool = True) -> gr.components.Component:
    common = dict(elem_id="cfg-" + spec.key.replace(".", "-").replace("_", "-"), visible=visible)
    if spec.kind == "choice":
        return gr.Dropdown(list(spec.choices), value=value, **common)
    if spec.kind == "bool":
        return gr.Checkbox(value=value, **common)
    if spec.kind in ("int", "float"):
        return gr.Number(value=value, precision=0 if spec.kind == "int" else None, **common)
    lines = 2 if spec.key == "description" else 1
    return gr.Textbox(value=value, lines=lines, **common)


def build_form(labels: LabelBook, initial: RunConfig) -> dict[str, gr.components.Component]:
    """Top-level keys first, then one accordion per section (the everyday ones open)."""
    specs = field_specs()
    values = dict(zip((s.key for s in specs), to_form(initial, specs)))
    hidden = unavailable_keys()  # e.g. W&B without the wandb package
    comps: dict[str, gr.components.Component] = {}
    sections: dict[str, list[FieldSpec]] = {}
    for spec in specs:
        sections.setdefault(spec.key.split(".")[0] if "." in spec.key else "", []).append(spec)
    for section, members in sections.items():
        if not section:
            with gr.Row():
                for spec in members:
                    comps[spec.key] = _labelled(labels, spec, values[spec.key], spec.key not in hidden)
            continue
        with labels.add(gr.Accordion(open=section in OPEN_SECTIONS), label=f"cfg.section.{section}"):
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


def _set(data: dict, key: str, value: Any) -> None:
    *parents, last = key.split(".")
    for part in parents:
        data = data.setdefault(part, {})
    data[last] = value


def to_form(config: RunConfig, specs: list[FieldSpec]) -> list[Any]:
    data = config.model_dump(mode="json")
    return [_show(spec, _get(data, spec.key)) for spec in specs]


def _show(spec: FieldSpec, value: Any) -> Any:
    if spec.kind == "optional_text":
        return value or ""
    if spec.kind != "yaml":
        return value
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return yaml.safe_dump(value, default_flow_style=True, allow_unicode=True).strip().removesuffix("...").strip()


_DEFAULT = object()  # an empty YAML field: the schema's default applies


class FormError(ValueError):
    """A form value that cannot be read; the message names the config key."""


def from_form(specs: list[FieldSpec], values: list[Any]) -> RunConfig:
    """Raises FormError or trainer_backend.config.ConfigError, both naming the key."""
    data: dict[str, Any] = {}
    for spec, value in zip(specs, values):
        read = _read(spec, value)
        if read is not _DEFAULT:
            _set(data, spec.key, read)
    return validate_config(data)


def _read(spec: FieldSpec, value: Any) -> Any:
    if spec.kind == "int" and value is not None:
        return int(value)
    if spec.kind == "optional_text":
        return value or None
    if spec.kind != "yaml":
        return value
    text = (value or "").strip()
    if not text:
        return _DEFAULT
    try:
        return load_yaml(text, f"'{spec.key}'", MAX_FIELD_BYTES)
    except YamlRefused as err:
        raise FormError(str(err)) from None
    except YamlError:
        raise FormError(f"'{spec.key}': '{text}' is not a valid value (YAML)") from None
