"""Every format in every file type normalizes to the same Conversations; detection says why."""
from __future__ import annotations

import csv
import json
import unicodedata
from pathlib import Path

import pytest

from trainer_backend.data import Conversation, DataError, Message, load_dataset

SYSTEM = "Bạn là trợ lý hữu ích."
CHAT = [("user", "Xin chào, bạn khỏe không?"), ("assistant", "Tôi khỏe, cảm ơn bạn!"),
        ("user", "Thủ đô của Việt Nam là gì?"), ("assistant", "Thủ đô của Việt Nam là Hà Nội.")]
EXPECTED = [
    Conversation(row=0, messages=(Message("system", SYSTEM),) + tuple(Message(r, c) for r, c in CHAT)),
    Conversation(row=1, messages=(Message("user", "Translate to French.\n\nGood morning"),
                                  Message("assistant", "Bonjour"))),
]
SHAREGPT_ROLE = {"system": "system", "user": "human", "assistant": "gpt"}

ALPACA = [
    {"instruction": CHAT[2][1], "input": "", "output": CHAT[3][1], "system": SYSTEM,
     "history": [[CHAT[0][1], CHAT[1][1]]]},
    {"instruction": "Translate to French.", "input": "Good morning", "output": "Bonjour", "system": "",
     "history": []},
]
SHAREGPT = [
    {"conversations": [{"from": "system", "value": SYSTEM}] + [{"from": SHAREGPT_ROLE[r], "value": c} for r, c in CHAT]},
    {"conversations": [{"from": "human", "value": "Translate to French.\n\nGood morning"},
                       {"from": "gpt", "value": "Bonjour"}]},
]
MESSAGES = [
    {"messages": [{"role": m.role, "content": m.content} for m in conv.messages]} for conv in EXPECTED
]
TEXTS = ["Hà Nội là thủ đô của Việt Nam.", "Plain text for continued pre-training,\nwith two lines."]
TEXT = [{"text": t} for t in TEXTS]

FORMATS = {"alpaca": ALPACA, "sharegpt": SHAREGPT, "messages": MESSAGES, "text": TEXT}
REASONS = {"alpaca": "columns instruction/output found → alpaca",
           "sharegpt": "column conversations found → sharegpt",
           "messages": "column messages found → messages",
           "text": "column text found → text"}


def write_records(records: list[dict], folder: Path, kind: str) -> Path:
    """Write rows as the given file type; nested fields go into CSV cells as JSON."""
    if kind == "json":
        path = folder / "data.json"
        path.write_text(json.dumps(records, ensure_ascii=False), encoding="utf-8")
    elif kind == "jsonl":
        path = folder / "data.jsonl"
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    elif kind == "csv":
        path = folder / "data.csv"
        with path.open("w", encoding="utf-8", newline="") as file:
            writer = csv.DictWriter(file, fieldnames=list(records[0]))
            writer.writeheader()
            writer.writerows({k: v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)
                              for k, v in r.items()} for r in records)
    elif kind == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq
        path = folder / "data.parquet"
        pq.write_table(pa.Table.from_pylist(records), path)
    else:
        import datasets
        path = folder / "saved"
        datasets.Dataset.from_list(records).save_to_disk(str(path))
    return path


def expected_for(name: str) -> list[Conversation]:
    if name == "text":
        return [Conversation(row=i, text=t) for i, t in enumerate(TEXTS)]
    return EXPECTED


@pytest.mark.parametrize("kind", ["json", "jsonl", "csv", "parquet", "saved"])
@pytest.mark.parametrize("name", list(FORMATS))
def test_every_format_in_every_file_type_gives_the_same_conversations(tmp_path, name, kind):
    loaded = load_dataset(write_records(FORMATS[name], tmp_path, kind))
    assert loaded.format == name
    assert str(loaded.reason) == REASONS[name]
    assert loaded.errors == []
    assert (loaded.rows, loaded.valid_rows) == (2, 2)
    assert loaded.conversations == expected_for(name)


def test_explicit_format_is_used_and_reported(tmp_path):
    # rows carrying both `text` and `messages` would be detected as messages
    rows = [{"text": "raw", "messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}]
    path = write_records(rows, tmp_path, "jsonl")
    assert load_dataset(path).format == "messages"
    loaded = load_dataset(path, format="text")
    assert (loaded.format, str(loaded.reason)) == ("text", "format text given")
    assert loaded.conversations == [Conversation(row=0, text="raw")]


def test_unknown_format_name_is_refused(tmp_path):
    path = write_records(TEXT, tmp_path, "jsonl")
    with pytest.raises(DataError, match=r"data.jsonl: unknown format 'chatml'; use auto, alpaca, sharegpt, messages, text"):
        load_dataset(path, format="chatml")


def test_undetectable_columns_name_the_file_and_columns(tmp_path):
    path = write_records([{"question": "q", "answer": "a"}], tmp_path, "jsonl")
    with pytest.raises(DataError) as caught:
        load_dataset(path)
    assert str(caught.value).startswith(f"{path}: cannot detect the format from the columns (question, answer)")
    assert "prompt=instruction,response=output" in str(caught.value)


def test_column_mapping_turns_prompt_response_into_alpaca(tmp_path):
    rows = [{"prompt": "What is 2 + 2?", "response": "4"}, {"prompt": "Say hi", "response": "hi"}]
    path = write_records(rows, tmp_path, "csv")
    loaded = load_dataset(path, columns={"prompt": "instruction", "response": "output"})
    assert loaded.format == "alpaca"
    assert str(loaded.reason) == "columns instruction/output found (after mapping prompt→instruction, response→output) → alpaca"
    assert loaded.conversations == [
        Conversation(0, (Message("user", "What is 2 + 2?"), Message("assistant", "4"))),
        Conversation(1, (Message("user", "Say hi"), Message("assistant", "hi"))),
    ]


def test_column_mapping_to_a_chat_column(tmp_path):
    rows = [{"dialog": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}]
    loaded = load_dataset(write_records(rows, tmp_path, "parquet"), columns={"dialog": "messages"})
    assert str(loaded.reason) == "column messages found (after mapping dialog→messages) → messages"
    assert loaded.conversations == [Conversation(0, (Message("user", "q"), Message("assistant", "a")))]


def test_column_mapping_errors_name_the_mapping(tmp_path):
    path = write_records([{"prompt": "q", "response": "a", "output": "x"}], tmp_path, "jsonl")
    with pytest.raises(DataError, match=r"column mapping question=instruction: the file has no column 'question' "
                                        r"\(columns: output, prompt, response\)"):
        load_dataset(path, columns={"question": "instruction"})
    with pytest.raises(DataError, match=r"column mapping prompt=query: 'query' is not a field of any format"):
        load_dataset(path, columns={"prompt": "query"})
    with pytest.raises(DataError, match=r"column mapping response=output: the file already has a column 'output'"):
        load_dataset(path, columns={"prompt": "instruction", "response": "output"})


def test_sharegpt_accepts_user_assistant_and_a_system_column(tmp_path):
    rows = [{"system": SYSTEM, "conversations": [{"from": "user", "value": "q"}, {"from": "assistant", "value": "a"}]}]
    loaded = load_dataset(write_records(rows, tmp_path, "jsonl"))
    assert loaded.conversations == [Conversation(0, (Message("system", SYSTEM), Message("user", "q"),
                                                     Message("assistant", "a")))]


def test_json_file_holding_json_lines_and_a_bom_csv_and_tsv(tmp_path):
    (tmp_path / "lines.json").write_text('{"text": "a"}\n{"text": "b"}\n', encoding="utf-8")
    assert [c.text for c in load_dataset(tmp_path / "lines.json").conversations] == ["a", "b"]
    (tmp_path / "bom.csv").write_bytes("\ufefftext\nxin chào\n".encode("utf-8"))
    assert load_dataset(tmp_path / "bom.csv").conversations == [Conversation(0, text="xin chào")]
    (tmp_path / "data.tsv").write_text("instruction\toutput\nq\ta\n", encoding="utf-8")
    assert load_dataset(tmp_path / "data.tsv").conversations == [
        Conversation(0, (Message("user", "q"), Message("assistant", "a")))]


def test_text_keeps_line_separators_inside_a_jsonl_string(tmp_path):
    (tmp_path / "d.jsonl").write_text(json.dumps({"text": "a\u2028b\rc"}) + "\n", encoding="utf-8")
    assert load_dataset(tmp_path / "d.jsonl").conversations == [Conversation(0, text="a\u2028b\rc")]


VIETNAMESE = ["Tiếng Việt có sáu thanh điệu: ngang, huyền, sắc, hỏi, ngã, nặng.",
              "Người Việt thường ăn phở vào buổi sáng ở Hà Nội.",
              "Chúng tôi đã luyện tập mô hình ngôn ngữ trên dữ liệu tiếng Việt."]


def test_vietnamese_nfc_round_trips_byte_exact(tmp_path):
    rows = [{"instruction": q, "output": a} for q, a in zip(VIETNAMESE, VIETNAMESE[1:])]
    path = tmp_path / "vi.jsonl"
    path.write_bytes(b"".join(json.dumps(r, ensure_ascii=False).encode("utf-8") + b"\n" for r in rows))
    loaded = load_dataset(path)
    for row, conv in zip(rows, loaded.conversations):
        assert conv.messages[0].content.encode("utf-8") == row["instruction"].encode("utf-8")
        assert conv.messages[1].content.encode("utf-8") == row["output"].encode("utf-8")


def test_vietnamese_nfd_input_becomes_nfc(tmp_path):
    decomposed = [unicodedata.normalize("NFD", s) for s in VIETNAMESE]
    assert all(d != s for d, s in zip(decomposed, VIETNAMESE))
    path = write_records([{"text": d} for d in decomposed], tmp_path, "csv")
    loaded = load_dataset(path)
    assert [c.text for c in loaded.conversations] == VIETNAMESE
    assert [c.text.encode("utf-8") for c in loaded.conversations] == [s.encode("utf-8") for s in VIETNAMESE]


@pytest.mark.parametrize("content", ["", "{}", "not a dataset"])
def test_unreadable_files_raise_data_error_naming_the_file(tmp_path, content):
    path = tmp_path / "broken.json"
    path.write_text("[" + content, encoding="utf-8")
    with pytest.raises(DataError, match=rf"^{path}: not valid JSON at line 1, column \d+: "):
        load_dataset(path)


def test_missing_empty_and_unsupported_files(tmp_path):
    with pytest.raises(DataError, match=rf"^{tmp_path / 'nope.jsonl'}: no such file or folder$"):
        load_dataset(tmp_path / "nope.jsonl")
    (tmp_path / "empty.jsonl").write_text("\n\n", encoding="utf-8")
    with pytest.raises(DataError, match=rf"^{tmp_path / 'empty.jsonl'}: no rows found$"):
        load_dataset(tmp_path / "empty.jsonl")
    (tmp_path / "notes.txt").write_text("hello", encoding="utf-8")
    with pytest.raises(DataError, match=r"notes.txt: unsupported file type '.txt'"):
        load_dataset(tmp_path / "notes.txt")
    (tmp_path / "folder").mkdir()
    with pytest.raises(DataError, match=r"folder: a folder must be a datasets save_to_disk folder"):
        load_dataset(tmp_path / "folder")
    (tmp_path / "bad.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(DataError, match=r"bad.parquet: not a readable Parquet file"):
        load_dataset(tmp_path / "bad.parquet")
