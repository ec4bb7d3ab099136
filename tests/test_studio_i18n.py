"""Every interface string exists in English and Vietnamese, and the language switch relabels."""
from __future__ import annotations

import re
import string
from pathlib import Path

import pytest

from studio.config_form import NOT_ON_FORM, field_specs
from studio.data_tab import ERROR_COLUMNS, FIELDS, ROW_COLUMNS
from studio.i18n import STRINGS, LabelBook, field_info_key, field_label_key, say, t

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


SAME_IN_BOTH = {"type.null", "job.bad_loss"}      # JSON's null; "loss" is the word the Vietnamese UI uses too


def test_every_backend_message_has_a_vietnamese_text_with_the_same_placeholders():
    from studio.backend_texts import VIETNAMESE
    from trainer_backend.messages import ENGLISH

    assert sorted(set(ENGLISH) - set(VIETNAMESE)) == [] and sorted(set(VIETNAMESE) - set(ENGLISH)) == []
    fields = lambda s: {f for _, f, _, _ in string.Formatter().parse(s) if f}  # noqa: E731
    for key, en in ENGLISH.items():
        assert fields(en) == fields(VIETNAMESE[key]), key
        # Only a text that is nothing but its arguments (or a name both languages use) reads the same.
        assert VIETNAMESE[key] != en or not re.sub(r"\{\w+\}|[\W\d_]", "", en) or key in SAME_IN_BOTH, key


BACKEND = Path(__file__).resolve().parent.parent / "trainer_backend"


def test_every_message_key_the_backend_writes_has_a_text():
    """A key typed in a msg(...) call (or built from a prefix) exists, so no notice fails to render."""
    from trainer_backend.messages import ENGLISH

    written = set()
    for path in BACKEND.rglob("*.py"):
        written |= set(re.findall(r'msg\(f?"([a-z0-9_.]+)', path.read_text(encoding="utf-8")))
    prefixes = {k for k in written if k.endswith(".") or k.endswith("_")}
    assert sorted(written - prefixes - set(ENGLISH)) == []
    for prefix in prefixes:
        assert any(k.startswith(prefix) for k in ENGLISH), prefix


def test_a_row_error_a_detection_reason_and_a_load_failure_read_in_vietnamese(tmp_path):
    import json

    from studio.common import DataSource
    from studio.data_tab import inspect as inspect_in
    from studio.space import UserSpace

    def inspect(*args):   # a local studio's space: nothing confined
        return inspect_in(*args, UserSpace("local", tmp_path, None))

    rows = tmp_path / "chats.jsonl"
    rows.write_text("\n".join(json.dumps(r) for r in [
        {"conversations": [{"from": "human", "value": "Chào"}, {"from": "gpt", "value": "Xin chào"}]},
        {"conversations": [{"from": "robot", "value": "?"}, {"from": "gpt", "value": "a"}]},
        {"conversations": [{"from": "human", "value": "q"}]}]) + "\n", encoding="utf-8")
    seen = inspect(DataSource(str(rows), "chats.jsonl"), "auto", {}, True, "vi")
    assert "định dạng **sharegpt** (có cột conversations → sharegpt)" in seen.status
    assert seen.errors.values.tolist() == [
        [1, "conversations[0].from", "vai trò 'robot' không hợp lệ; hãy dùng system, human, user, gpt, assistant"],
        [2, "conversations[0].from", "hội thoại phải kết thúc bằng một lượt assistant, không phải lượt user"]]
    english = inspect(DataSource(str(rows), "chats.jsonl"), "auto", {}, True, "en")
    assert english.errors.values.tolist()[0][2] == "unknown role 'robot'; use system, human, user, gpt, assistant"

    broken = tmp_path / "notes.csv"
    broken.write_text("title,price\nlamp,12\n", encoding="utf-8")
    failed = inspect(DataSource(str(broken), "notes.csv", ("title", "price")), "auto", {}, True, "vi")
    assert failed.status.startswith("✖ Không dùng được **notes.csv**: không nhận ra định dạng từ các cột (title, price)")
    assert str(tmp_path) not in failed.status


def test_a_failure_reason_read_back_from_a_job_file_is_shown_in_vietnamese(tmp_path):
    from studio.charts import absorb, new_series
    from trainer_backend.contracts import Reason, oom_message, read_events, write_error

    events = tmp_path / "events.jsonl"
    write_error(events, 3, Reason.OOM, oom_message(3, 8, 2048, "lora"))
    series = new_series("job")
    absorb(series, read_events(events))
    assert say("vi", series.error).startswith("hết bộ nhớ GPU ở bước 3 (train.micro_batch_size 8, "
                                              "template.max_seq_len 2048, phương pháp lora): hãy giảm")
    assert say("en", series.error) == read_events(events)[0]["message"]


def test_a_config_refusal_of_the_train_tab_reads_in_vietnamese():
    from studio.train_tab import estimate_text, on_devices
    from trainer_backend.presets import load_preset

    run = load_preset("smollm2-135m-demo").with_overrides({"method": "qlora", "train.optimizer": "adamw_8bit"})
    text = estimate_text(run, on_devices(run, []), [], "vi")
    assert ("'method': qlora nạp mô hình 4-bit bằng bitsandbytes, vốn cần GPU CUDA; trên CPU hãy dùng method: lora; "
            "'train.optimizer': adamw_8bit (bitsandbytes) cần GPU CUDA") in text and "needs" not in text


def test_a_preview_that_fails_on_the_data_says_why_in_vietnamese(tmp_path):
    import sys

    from studio.preview import PreviewError, PreviewRequest, run_preview

    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n", encoding="utf-8")
    with pytest.raises(PreviewError) as caught:
        run_preview(PreviewRequest(str(empty), "unused-model"), sys.executable)
    assert str(caught.value) == f"{empty}: no rows found"            # the CLI's English line
    assert say("vi", caught.value.notice) == f"{empty}: không tìm thấy dòng nào"


def test_a_bad_value_of_the_form_is_refused_in_vietnamese():
    from trainer_backend.config import ConfigError, RunConfig

    for overrides, vi in [({"train.lr": 0}, "'train.lr': giá trị phải lớn hơn 0 (nhận được 0)"),
                          ({"train.max_steps": 0}, "'train.max_steps': phải là -1 (chạy theo epoch) hoặc một số bước dương"),
                          ({"sync.devices": ["cpu", 0]}, "'sync.devices': trộn worker cpu và GPU")]:
        with pytest.raises(ConfigError) as caught:
            RunConfig().with_overrides(overrides)
        assert str(caught.value).startswith("invalid run config: '")       # the CLI's English stays
        assert say("vi", caught.value.notice).startswith(f"cấu hình không hợp lệ: {vi}"), overrides


def test_a_form_value_that_cannot_be_read_is_explained_in_vietnamese():
    from studio.config_form import FormError, field_specs, from_form
    from trainer_backend.config import RunConfig

    batch = [s for s in field_specs() if s.key == "train.micro_batch_size"]
    with pytest.raises(FormError) as caught:
        from_form(RunConfig(), batch, ["x"])
    assert str(caught.value) == "'train.micro_batch_size': 'x' is neither a whole number nor auto"
    assert caught.value.text("vi") == "'train.micro_batch_size': 'x' không phải số nguyên cũng không phải auto"
