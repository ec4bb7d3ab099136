"""The bundled samples and the datasets converted by scripts/fetch_assets.py load as promised."""
from __future__ import annotations

import importlib.util
import json
import time
import unicodedata
from pathlib import Path

from trainer_backend.data import Message, load_dataset

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_samples_are_what_the_script_writes(tmp_path, monkeypatch):
    monkeypatch.setattr("sys.argv", ["make_samples.py", "--out", str(tmp_path)])
    load_script("make_samples").main()
    for name in ("demo_alpaca.jsonl", "demo_sharegpt.json", "broken_rows.jsonl"):
        assert (tmp_path / name).read_bytes() == (SAMPLES / name).read_bytes(), name


def test_demo_alpaca_teaches_one_fixed_answer_form():
    loaded = load_dataset(SAMPLES / "demo_alpaca.jsonl", strict=True)
    assert (loaded.format, loaded.rows, loaded.valid_rows) == ("alpaca", 200, 200)
    answers = [conv.messages[-1].content for conv in loaded.conversations]
    assert all(a.startswith("ANSWER: ") and "\n" not in a for a in answers)
    assert answers[0] == "ANSWER: Paris"
    vietnamese = [c for c in loaded.conversations if not c.messages[0].content.isascii()]
    assert len(vietnamese) == 20
    assert vietnamese[0].messages == (Message("user", "Thủ đô của Việt Nam là gì?"), Message("assistant", "ANSWER: Hà Nội"))
    with_input = [c for c in loaded.conversations if "\n\n" in c.messages[0].content]
    assert with_input[0].messages[0].content == "Give the opposite of this word.\n\ncold"


def test_demo_sharegpt_has_multi_turn_conversations_with_a_system_prompt():
    loaded = load_dataset(SAMPLES / "demo_sharegpt.json", strict=True)
    assert (loaded.format, loaded.valid_rows) == ("sharegpt", 30)
    assert all(c.messages[0].role == "system" and len(c.messages) >= 5 for c in loaded.conversations)
    vietnamese = [c for c in loaded.conversations if c.messages[0].content.startswith("Bạn là")]
    assert len(vietnamese) == 6
    text = (SAMPLES / "demo_sharegpt.json").read_text(encoding="utf-8")
    assert unicodedata.is_normalized("NFC", text)


def test_chatterbot_conversion_loads_as_alpaca(data_dir):
    loaded = load_dataset(data_dir / "chatterbot_alpaca.jsonl", strict=True)
    assert (loaded.format, loaded.valid_rows) == ("alpaca", 2026)


def test_chitchat_conversion_loads_fast_as_sharegpt(data_dir):
    # 7,168 chitchat conversations: 3,150 have a single speaker (nothing to answer them) and in one
    # the second speaker only sent an empty message, so 4,017 end on a gpt turn.
    path = data_dir / "chitchat_sharegpt.jsonl"
    started = time.perf_counter()
    loaded = load_dataset(path, strict=True)
    elapsed = time.perf_counter() - started
    assert (loaded.format, loaded.rows, loaded.valid_rows) == ("sharegpt", 4017, 4017)
    assert elapsed < 2.0, f"loading took {elapsed:.2f} s"
    first = json.loads(path.read_text(encoding="utf-8").split("\n", 1)[0])
    assert [m.content for m in loaded.conversations[0].messages] == [t["value"] for t in first["conversations"]]
    assert all(c.messages[-1].role == "assistant" for c in loaded.conversations)


def test_chitchat_conversion_rules(tmp_path):
    chitchat = {
        "b": {"messages": [[{"text": "Hi", "sender": "x"}, {"text": "there", "sender": "x"}],
                           [{"text": "Hello", "sender": "y"}, {"text": "", "sender": "y"}],
                           [{"text": "Bye", "sender": "x"}]]},
        "a": {"messages": [[{"text": "Anyone?", "sender": "x"}]]},
        "c": {"messages": [[{"text": "", "sender": "y"}], [{"text": "Hi", "sender": "x"}],
                           [{"text": "Yo", "sender": "y"}], [{"text": "Sup", "sender": "y"}]]},
    }
    (tmp_path / "chitchat.json").write_text(json.dumps(chitchat), encoding="utf-8")
    rows = list(load_script("fetch_assets").chitchat_sharegpt_rows(tmp_path))
    assert rows == [
        {"id": "b", "conversations": [{"from": "human", "value": "Hi\nthere"}, {"from": "gpt", "value": "Hello"}]},
        {"id": "c", "conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Yo\nSup"}]},
    ]
