"""One TemplateConfig from the run config to the Template tab's preview, the trainer and the chat
worker: for every preset, the preview the tab requests shows exactly the ids and masks the trainer trains."""
from __future__ import annotations

import json

import pytest

from conftest import ROOT, TOKENIZERS
from studio.preview import PreviewRequest
from trainer_backend.config import PRESETS_DIR, TemplateConfig
from trainer_backend.data import Conversation, Message
from trainer_backend.messages import Notice
from trainer_backend.presets import load_preset
from trainer_backend.serve import preview
from trainer_backend.serve.client import WorkerSpec
from trainer_backend.templates import load_tokenizer, prompt_ids
from trainer_backend.train.events import EventLog
from trainer_backend.train.inputs import load_examples

NAMES = sorted(p.stem for p in PRESETS_DIR.glob("*.yaml"))
DATA = ROOT / "samples" / "demo_sharegpt.json"


def offline_model(cfg) -> str:
    """The preset's offline stand-in (Qwen2.5 names none: its ids are Qwen3's)."""
    if cfg.model.offline_tokenizer:
        return cfg.model.offline_tokenizer
    return str(TOKENIZERS["qwen3"]) if "qwen2.5" in cfg.name else cfg.model.name_or_path


def preset_groups() -> dict[str, list[str]]:
    """Presets that render identically (same stand-in tokenizer, same TemplateConfig), one check each."""
    groups: dict[tuple[str, str], list[str]] = {}
    for name in NAMES:
        cfg = load_preset(name)
        groups.setdefault((offline_model(cfg), cfg.template.model_dump_json()), []).append(name)
    return {"+".join(names): names for names in groups.values()}


GROUPS = preset_groups()


@pytest.mark.parametrize("group", GROUPS)
def test_template_tab_preview_shows_what_the_trainer_trains(group, tmp_path):
    cfg = load_preset(GROUPS[group][0]).with_overrides({"data.path": str(DATA),
                                                        "template.system_prompt": "Trả lời ngắn gọn."})
    cfg = cfg.with_overrides({"model.name_or_path": offline_model(cfg)})
    request = PreviewRequest.for_run(cfg, rows=100)
    assert request.template == cfg.template          # the whole object, not a copy of some fields
    shown = preview.analyze(preview.parse_args(request.argv("python")[3:]))["examples"]
    _, trained, _ = load_examples(cfg, EventLog(tmp_path))
    assert [(r["row"], r["input_ids"], r["trained"]) for r in shown if "input_ids" in r and not r["dropped"]] == \
        [(e.row, e.input_ids, e.trained) for e in trained]
    assert sum(e.n_trained for e in trained) > 0


# Inspects the content of the last message only: rows whose answer holds an 'x' cannot be masked.
LAST_X = ("{% for m in messages %}{% if loop.last and 'x' in m['content'] %}[x]{% endif %}"
          "<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
          "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def test_preview_shows_row_errors_next_to_the_good_rows(tokenizer_dir, tmp_path):
    rows = [("Chào", "Chào bạn"), ("Hỏi", "xin lỗi"), ("thất bại?", "Không  thất bại.")]
    data = tmp_path / "rows.jsonl"
    data.write_text("".join(json.dumps({"instruction": q, "output": a}, ensure_ascii=False) + "\n" for q, a in rows),
                    encoding="utf-8")
    tok = load_tokenizer(str(tokenizer_dir("smollm2")))
    tok.chat_template = LAST_X
    tok.save_pretrained(tmp_path / "tok")
    for model, template in ((tmp_path / "tok", "auto"), (tokenizer_dir("mistral-v1"), "vistral")):
        request = PreviewRequest(str(data), str(model), TemplateConfig(name=template))
        shown = preview.analyze(preview.parse_args(request.argv("python")[3:]))["examples"]
        assert [r["row"] for r in shown] == [0, 1, 2]
        if template == "auto":
            assert "not prefix-stable" in str(Notice.from_json(shown[1]["error"])) and "runs" in shown[0] and "runs" in shown[2]
        text = "".join(piece for piece, _ in shown[2]["runs"])
        # each token's own text: spaces kept (SentencePiece), whole letters (byte-level BPE)
        assert "thất bại?" in text and "Không  thất bại." in text and "\ufffd" not in text
        assert [piece for piece, trained in shown[2]["runs"] if trained][0].startswith("Không  thất bại.")


def test_chat_prompts_use_the_runs_template_settings(tokenizers):
    tok = tokenizers("qwen3", "auto")
    tcfg = TemplateConfig(system_prompt="Trả lời ngắn gọn.", enable_thinking=False)
    conv = Conversation(0, (Message("user", "Thủ đô Việt Nam?"),))
    expected = tok.apply_chat_template([{"role": "system", "content": "Trả lời ngắn gọn."},
                                        {"role": "user", "content": "Thủ đô Việt Nam?"}],
                                       add_generation_prompt=True, enable_thinking=False, return_dict=True)
    assert prompt_ids(conv, tok, tcfg) == list(expected["input_ids"])
    spec = WorkerSpec("m", template=tcfg)
    assert spec != WorkerSpec("m") and spec.template == tcfg     # a different template restarts the worker


def test_a_preview_past_its_time_limit_is_a_message_not_an_exception(tmp_path, monkeypatch):
    import studio.preview as studio_preview

    slow = tmp_path / "slow-python"
    slow.write_text("#!/bin/sh\nexec sleep 30\n")
    slow.chmod(0o755)
    monkeypatch.setattr(studio_preview, "PREVIEW_TIMEOUT_S", 0.5)
    with pytest.raises(studio_preview.PreviewTimeout, match="longer than 0.5 s"):
        studio_preview.run_preview(PreviewRequest(str(DATA), "m"), str(slow))
    assert issubclass(studio_preview.PreviewTimeout, studio_preview.PreviewError)   # the tab's one except
