"""Every interface string exists in English and Vietnamese, and the language switch relabels."""
from __future__ import annotations

import re
import string
from pathlib import Path

from studio.config_form import NOT_ON_FORM, field_specs
from studio.data_tab import ERROR_COLUMNS, FIELDS, ROW_COLUMNS
from studio.i18n import STRINGS, LabelBook, field_info_key, field_label_key, t

STUDIO = Path(__file__).resolve().parent.parent / "studio"
KEY = re.compile(r'"((?:app|tab|data|tpl|train|mon|jobs|chat|export|cfg\.section)\.[a-z_]+)"')


def used_keys() -> set[str]:
    """String keys the tabs use (config keys such as "data.path" name form fields, not strings)."""
    config_keys = {s.key for s in field_specs()} | set(NOT_ON_FORM)
    keys = set()
    for path in STUDIO.glob("*.py"):
        if path.name != "i18n.py":
            keys |= set(KEY.findall(path.read_text())) - config_keys
    return keys


def test_every_used_key_is_translated_with_the_same_placeholders():
    assert STRINGS["en"].keys() == STRINGS["vi"].keys()
    missing = used_keys() - STRINGS["en"].keys()
    assert not missing, missing
    fields = lambda s: {f for _, f, _, _ in string.Formatter().parse(s) if f}  # noqa: E731
    for key, en in STRINGS["en"].items():
        vi = STRINGS["vi"][key]
        assert fields(en) == fields(vi), key
        assert vi.strip(), key


def test_config_form_labels_switch_language():
    import gradio as gr

    book = LabelBook()
    with gr.Blocks():
        lr = book.add(gr.Number(), label=field_label_key("train.lr"), info=field_info_key("train.lr"))
        btn = book.add(gr.Button(), value="train.launch")
    # One label each; the dotted key the YAML uses goes with the hint.
    assert lr.label == "Learning rate" and lr.info.startswith("train.lr · Step size") and btn.value == "Launch"
    en, vi = book.updates("en"), book.updates("vi")
    assert vi[0]["label"] == "Tốc độ học" and vi[0]["info"].startswith("train.lr · Bước của bộ tối ưu")
    assert vi[1]["value"] == "Bắt đầu huấn luyện" and en[1]["value"] == "Launch"


def test_keys_built_at_run_time_are_translated():
    built = [f"data.field.{name}" for name in FIELDS] + [f"data.col.{c}" for c in ROW_COLUMNS + ERROR_COLUMNS]
    assert [key for key in built if key not in STRINGS["vi"]] == []


def test_every_form_field_has_a_vietnamese_label_and_hint():
    """No field of the form falls back to the schema's English description in Vietnamese."""
    import gradio as gr

    book, specs = LabelBook(), field_specs()
    with gr.Blocks():
        for spec in specs:
            book.add(gr.Number(), label=field_label_key(spec.key), info=field_info_key(spec.key),
                     fallback_label=spec.key, fallback_info="ENGLISH")
    for spec, texts in zip(specs, book.updates("vi")):
        assert texts["label"] != spec.key and "ENGLISH" not in texts["info"], spec.key


def test_every_config_key_is_on_the_form_or_set_elsewhere():
    keys = {s.key for s in field_specs()}
    assert {"method", "train.lr", "lora.r", "template.max_seq_len", "qlora.quant_type"} <= keys
    assert "sync.devices" not in keys and "output.dir" not in keys
    assert t("vi", "state.running") == "đang chạy"


def test_every_preset_is_described_in_vietnamese():
    from studio.common import preset_text
    from trainer_backend.presets import list_presets

    for p in list_presets():
        vi = preset_text(p.name, p.description, p.method, p.gpu_mem_gib, "vi")
        assert vi != p.description and "the planner" not in vi and " for a " not in vi, p.name
    assert preset_text("qwen2.5-7b-instruct-24gb", "", "qlora", 24.0, "vi") == (
        "Qwen2.5-7B-Instruct: trò chuyện và làm theo chỉ dẫn, mạnh về tiếng Anh và tiếng Trung; qlora cho GPU 24 GB")


def test_every_field_label_and_hint_names_a_field_of_the_form():
    """A key left in the tables after its field left the form (or written twice, the first copy
    silently lost) is dead text nobody maintains."""
    import ast

    from studio.i18n import _FIELD_INFO, _FIELD_LABELS

    keys = {s.key for s in field_specs()}
    assert sorted(set(_FIELD_LABELS) - keys) == [] and sorted(set(_FIELD_INFO) - keys) == []
    tree = ast.parse((STUDIO / "i18n.py").read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            literal = [k.value for k in node.keys if isinstance(k, ast.Constant)]
            assert len(literal) == len(set(literal)), [k for k in literal if literal.count(k) > 1]
