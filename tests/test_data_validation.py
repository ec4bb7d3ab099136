"""Every row-level validation error names its row and field; strict mode stops at the first one."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from trainer_backend.data import Conversation, DataError, Message, RowError, load_dataset

GOOD_CHAT = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]


def jsonl(tmp_path: Path, rows: list, name: str = "data.jsonl") -> Path:
    path = tmp_path / name
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n" for r in rows),
                    encoding="utf-8")
    return path


def english(errors: list[RowError]) -> list[tuple[int, str, str]]:
    """Row errors as (row, field, English text): what the command line prints."""
    return [(e.row, e.field, str(e.message)) for e in errors]


def only_error(tmp_path: Path, bad_row: dict, fmt: str = "auto") -> RowError:
    """Load a file whose row 1 is `bad_row` between two valid rows; return its single error."""
    good = {"messages": GOOD_CHAT} if "messages" in bad_row else \
        {"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]} if "conversations" in bad_row else \
        {"text": "t"} if "text" in bad_row else {"instruction": "q", "output": "a"}
    loaded = load_dataset(jsonl(tmp_path, [good, bad_row, good]), format=fmt)
    assert [c.row for c in loaded.conversations] == [0, 2]
    assert len(loaded.errors) == 1, loaded.errors
    return loaded.errors[0]


CASES = [
    # (bad row, field, message)
    ({"instruction": "q"}, "output", "is missing"),
    ({"output": "a", "instruction": None}, "instruction", "must be a string, got null"),
    ({"instruction": "q", "output": 42}, "output", "must be a string, got number"),
    ({"instruction": "q", "input": ["x"], "output": "a"}, "input", "must be a string, got list"),
    ({"instruction": "q", "output": "a", "system": {"x": 1}}, "system", "must be a string, got object"),
    ({"instruction": "q", "output": " \n"}, "output", "empty assistant turn"),
    ({"instruction": "", "output": "a"}, "instruction", "empty user turn"),
    ({"instruction": "q", "output": "a", "history": [["hi", "hello"], ["only one"]]}, "history[1]",
     "must be a [user, assistant] pair, got list of length 1"),
    ({"instruction": "q", "output": "a", "history": ["hi"]}, "history[0]",
     "must be a [user, assistant] pair, got string"),
    ({"instruction": "q", "output": "a", "history": [["hi", 3]]}, "history[0][1]", "must be a string, got number"),
    ({"instruction": "q", "output": "a", "history": "not json"}, "history",
     "must be a list (or a JSON array in a text cell), got a string that is not JSON"),
    ({"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}, {"from": "bot", "value": "x"}]},
     "conversations[2].from", "unknown role 'bot'; use system, human, user, gpt, assistant"),
    ({"conversations": [{"from": "human", "value": "q"}, {"from": "gpt"}]}, "conversations[1].value", "is missing"),
    ({"conversations": [{"from": "human", "value": "q"}, "gpt: a"]}, "conversations[1]",
     "must be an object with 'from' and 'value', got string"),
    ({"conversations": {"from": "human"}}, "conversations", "must be a list, got object"),
    ({"conversations": []}, "conversations", "has no user or assistant turn"),
    ({"messages": [{"role": "user", "content": "q"}, {"role": "tool", "content": "x"}]}, "messages[1].role",
     "unknown role 'tool'; use system, user, assistant"),
    ({"messages": [{"content": "q"}, {"role": "assistant", "content": "a"}]}, "messages[0].role", "is missing"),
    ({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": ["a"]}]},
     "messages[1].content", "must be a string, got list"),
    ({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": ""}]},
     "messages[1].content", "empty assistant turn"),
    ({"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "q"}]}, "messages[1].role",
     "conversation must end with an assistant turn, not a user turn"),
    ({"messages": [{"role": "user", "content": "q"}, {"role": "user", "content": "q2"},
                   {"role": "assistant", "content": "a"}]}, "messages[1].role",
     "two user turns in a row; merge them or put an assistant turn between"),
    ({"messages": GOOD_CHAT + [{"role": "assistant", "content": "a2"}]}, "messages[2].role",
     "two assistant turns in a row; merge them or put a user turn between"),
    ({"messages": [{"role": "assistant", "content": "hi"}, {"role": "user", "content": "q"},
                   {"role": "assistant", "content": "a"}]}, "messages[0].role",
     "conversation must start with a user turn (after an optional system message)"),
    ({"messages": [GOOD_CHAT[0], {"role": "system", "content": "s"}, GOOD_CHAT[1]]}, "messages[1].role",
     "system message must come first"),
    ({"conversations": [{"from": "system", "value": "s"}]}, "conversations", "has no user or assistant turn"),
    ({"text": "   "}, "text", "empty text"),
    ({"text": 7}, "text", "must be a string, got number"),
]


@pytest.mark.parametrize("bad_row,field,message", CASES, ids=[f"{c[1]}: {c[2][:30]}" for c in CASES])
def test_each_validation_error_names_row_and_field(tmp_path, bad_row, field, message):
    error = only_error(tmp_path, bad_row)
    assert english([error]) == [(1, field, message)]
    assert str(error) == f"row 1, field '{field}': {message}"


def test_a_trailing_user_turn_is_dropped_and_counted_unless_kept(tmp_path):
    sharegpt = [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}, {"from": "human", "value": "more?"}]
    path = jsonl(tmp_path, [{"conversations": sharegpt}, {"conversations": sharegpt[:2]},
                            {"conversations": sharegpt[:1]}])
    loaded = load_dataset(path)
    assert loaded.trimmed_rows == [0]
    assert loaded.conversations == [Conversation(r, (Message("user", "q"), Message("assistant", "a"))) for r in (0, 1)]
    # Nothing answered at all: there is no exchange left to keep, so the row stays an error.
    assert english(loaded.errors) == [(2, "conversations[0].from",
                                      "conversation must end with an assistant turn, not a user turn")]
    kept = load_dataset(path, drop_trailing_user=False)
    assert kept.trimmed_rows == [] and [c.row for c in kept.conversations] == [1]
    assert english(kept.errors[:1]) == [(0, "conversations[2].from",
                                      "conversation must end with an assistant turn, not a user turn")]
    assert kept.invalid_rows == 2


def test_all_field_errors_of_a_row_are_reported(tmp_path):
    path = jsonl(tmp_path, [{"messages": [{"role": "human", "content": 1}, {"role": "assistant"}]}])
    assert english(load_dataset(path).errors) == [
        (0, "messages[0].role", "unknown role 'human'; use system, user, assistant"),
        (0, "messages[0].content", "must be a string, got number"),
        (0, "messages[1].content", "is missing"),
    ]


def test_broken_jsonl_line_names_its_line_and_other_rows_still_load(tmp_path):
    path = jsonl(tmp_path, ['{"text": "a"}', "", '{"text": "b"', "[1, 2]", '{"text": "c"}'])
    loaded = load_dataset(path)
    assert loaded.rows == 4  # blank lines are not rows
    assert english(loaded.errors) == [
        (1, "line", "line 3 is not valid JSON: Expecting ',' delimiter (column 13)"),
        (2, "line", "line 4 is a list, expected a JSON object"),
    ]
    assert loaded.conversations == [Conversation(0, text="a"), Conversation(3, text="c")]


def test_invalid_utf8_in_a_value_names_row_and_field(tmp_path):
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(b'{"instruction": "q", "output": "a"}\n'
                     + '{"instruction": "Café?", "output": "oui"}\n'.encode("latin-1")
                     + '{"instruction": "Phở?", "output": "Có"}\n'.encode("utf-8"))
    loaded = load_dataset(path)
    assert english(loaded.errors) == [(1, "instruction",
                                      "contains bytes that are not valid UTF-8; re-save the file as UTF-8")]
    assert [c.messages[0].content for c in loaded.conversations] == ["q", "Phở?"]


def test_invalid_utf8_outside_strings_names_the_line(tmp_path):
    path = tmp_path / "binary.jsonl"
    path.write_bytes(b'{"text": "a"}\n\xff\xfe{"text": "b"}\n')
    assert english(load_dataset(path).errors) == [(1, "line", "line 2 is not valid UTF-8; re-save the file as UTF-8")]


def test_invalid_utf8_in_a_csv_cell(tmp_path):
    path = tmp_path / "d.csv"
    path.write_bytes(b"instruction,output\nq,a\n" + "r\u00e9sum\u00e9,x\n".encode("latin-1"))
    assert english(load_dataset(path).errors) == [
        (1, "instruction", "contains bytes that are not valid UTF-8; re-save the file as UTF-8")]


def test_csv_row_with_wrong_number_of_values_names_its_line(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text('instruction,output\nq,a\n"multi\nline",b\nx,y,z\n', encoding="utf-8")
    loaded = load_dataset(path)
    assert english(loaded.errors) == [(2, "line", "line 5 has 3 values but the header has 2 columns")]
    assert loaded.conversations[1] == Conversation(1, (Message("user", "multi\nline"), Message("assistant", "b")))


def test_json_array_item_that_is_not_an_object(tmp_path):
    path = tmp_path / "d.json"
    path.write_text('[{"text": "a"}, "b"]', encoding="utf-8")
    assert english(load_dataset(path).errors) == [(1, "row", "row 1 is a string, expected a JSON object")]


def test_strict_mode_raises_on_the_first_invalid_row(tmp_path):
    path = jsonl(tmp_path, [{"instruction": "q", "output": "a"}, {"instruction": "q"},
                            {"instruction": "q", "output": ""}])
    with pytest.raises(DataError) as caught:
        load_dataset(path, strict=True)
    assert str(caught.value) == f"{path}: row 1, field 'output': is missing; strict mode stops at the first invalid row"


def test_strict_mode_stops_at_a_broken_line_before_later_errors(tmp_path):
    path = jsonl(tmp_path, [{"text": "a"}, '{"text": ', {"text": ""}])
    with pytest.raises(DataError, match=r"row 1, field 'line': line 2 is not valid JSON"):
        load_dataset(path, strict=True)


def test_strict_mode_counts_more_errors_in_the_row(tmp_path):
    path = jsonl(tmp_path, [{"messages": [{"role": "x", "content": 1}]}])
    with pytest.raises(DataError, match=r"row 0, field 'messages\[0\].role': unknown role 'x'; use system, user, "
                                        r"assistant \(and 1 more in this row\); strict mode"):
        load_dataset(path, strict=True)


def test_strict_mode_passes_a_clean_file(tmp_path):
    path = jsonl(tmp_path, [{"text": "a"}, {"text": "b"}])
    assert load_dataset(path, strict=True).valid_rows == 2


def test_a_file_of_unreadable_lines_names_the_first_one(tmp_path):
    path = jsonl(tmp_path, ["not json", "[]"])
    with pytest.raises(DataError) as caught:
        load_dataset(path)
    assert str(caught.value) == (f"{path}: no row could be read (2 errors); first: row 0, field 'line': "
                                 "line 1 is not valid JSON: Expecting value (column 1)")
