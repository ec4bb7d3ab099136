"""The `preview` command: JSON rows equal render_and_mask, a readable marked view, one-line errors."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from trainer_backend.__main__ import main
from trainer_backend.config import TemplateConfig
from trainer_backend.data import load_dataset
from trainer_backend.templates import load_tokenizer, render_and_mask

from conftest import ROOT

DATA = ROOT / "samples" / "demo_sharegpt.json"


def test_json_rows_are_the_render_and_mask_examples(smollm2_dir, capsys):
    assert main(["preview", "--data", str(DATA), "--model", str(smollm2_dir), "--rows", "2", "--json",
                 "--loss", "last_turn"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    tok = load_tokenizer(str(smollm2_dir))
    convs = load_dataset(DATA).conversations[:2]
    assert [line["row"] for line in lines] == [c.row for c in convs]
    for line, conv in zip(lines, convs):
        example = render_and_mask(conv, tok, TemplateConfig(loss="last_turn"))
        assert set(line) == {"row", "input_ids", "trained", "text", "truncated"}
        assert (line["input_ids"], line["trained"], line["text"]) == (example.input_ids, example.trained, example.text)
        assert line["truncated"] is False


def test_readable_view_marks_trained_spans_and_reports_counts(tokenizer_dir, tmp_path, capsys):
    data = tmp_path / "one.jsonl"
    data.write_text(json.dumps({"instruction": "Thủ đô Việt Nam?", "output": "Hà Nội."}, ensure_ascii=False) + "\n",
                    encoding="utf-8")
    assert main(["preview", "--data", str(data), "--model", str(tokenizer_dir("llama3"))]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines()[0].startswith("--- row 0: ")
    assert ("<|start_header_id|>user<|end_header_id|>\n\nThủ đô Việt Nam?<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n[[Hà Nội.<|eot_id|>]]") in out
    assert out.count("[[") == 1
    assert err.strip().endswith("1 of 1 rows kept, 0 truncated (0 tokens cut)")


def test_preset_name_resolves_to_its_model(capsys):
    assert main(["preview", "--data", str(DATA), "--model", "smollm2-135m-demo", "--rows", "1", "--json"]) == 0
    line = json.loads(capsys.readouterr().out)
    assert line["text"].startswith("<|im_start|>system\n")


def test_truncation_is_flagged(smollm2_dir, capsys):
    assert main(["preview", "--data", str(DATA), "--model", str(smollm2_dir), "--rows", "1", "--json",
                 "--max-seq-len", "70"]) == 0
    line = json.loads(capsys.readouterr().out)
    assert line["truncated"] is True and len(line["input_ids"]) == 70 and any(line["trained"])


def test_bad_input_is_one_line_and_exit_2(tokenizer_dir, capsys):
    cases = [
        (["--data", str(DATA), "--model", "no-such-preset"], "'no-such-preset' is neither a config file nor a preset"),
        (["--data", str(DATA), "--model", str(tokenizer_dir("mistral-v1"))], "has no chat template: choose one of"),
        (["--data", "missing.jsonl", "--model", str(tokenizer_dir("llama3"))], "missing.jsonl"),
        (["--data", str(DATA), "--model", str(tokenizer_dir("llama3")), "--max-seq-len", "8"], "at least 16"),
    ]
    for argv, message in cases:
        assert main(["preview", *argv]) == 2
        out, err = capsys.readouterr()
        assert out == "" and len(err.strip().splitlines()) == 1 and message in err


def test_bad_input_from_the_shell_has_no_traceback():
    proc = subprocess.run([sys.executable, "-m", "trainer_backend", "preview", "--data", str(DATA),
                           "--model", "no-such-preset"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("preview: 'no-such-preset' is neither a config file nor a preset")


def test_hub_preset_previews_offline_with_its_stand_in(capsys):
    """No hub here: the README's `preview --model qwen3-8b-nothink` renders with the offline Qwen3
    tokenizer the preset names, says so, and keeps the preset's template settings."""
    assert main(["preview", "--data", str(DATA), "--model", "qwen3-8b-nothink", "--rows", "1", "--json"]) == 0
    out, err = capsys.readouterr()
    assert "the model hub cannot be reached: rendered with the offline tokenizer" in err and "qwen3" in err
    line = json.loads(out.splitlines()[0])
    assert "<|im_start|>assistant\n<think>\n\n</think>\n\n" in line["text"]


def test_hub_check_answers_without_waiting_for_retries(monkeypatch):
    from huggingface_hub import constants

    from trainer_backend.templates import TemplateError, load_tokenizer_for_preview
    from trainer_backend.templates.tokenizer import hub_reachable

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")   # nothing listens: refused at once
    assert hub_reachable() is False
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(TemplateError, match="the model hub cannot be reached.*model.offline_tokenizer"):
        load_tokenizer_for_preview("no-org/no-model")
