"""`python -m trainer_backend inspect`: one JSON object, exit codes, one-line stderr messages."""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

from trainer_backend.commands import inspect

ROOT = Path(__file__).resolve().parent.parent
BROKEN = ROOT / "samples" / "broken_rows.jsonl"


def cli(*argv: str) -> subprocess.CompletedProcess:
    """The real entry point, for what only a process shows: exit status, stdout and stderr."""
    return subprocess.run([sys.executable, "-m", "trainer_backend", "inspect", *argv], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def run_inspect(capsys, *argv: str) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser()
    inspect.add_arguments(parser)
    code = inspect.run(parser.parse_args(list(argv)))
    out, err = capsys.readouterr()
    return code, out, err


def test_json_report_of_the_broken_rows_sample_and_exit_0():
    result = cli(str(BROKEN), "--json")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    report = json.loads(result.stdout)
    assert report == {
        "format": "alpaca", "rows": 10, "valid_rows": 2, "errors_total": 8, "trailing_user_dropped": 0,
        "reason": "columns instruction/output found → alpaca",
        "errors": [
            {"row": 1, "field": "output", "message": "is missing"},
            {"row": 2, "field": "output", "message": "must be a string, got number"},
            {"row": 3, "field": "output", "message": "empty assistant turn"},
            {"row": 4, "field": "line", "message": "line 5 is not valid JSON: Expecting ',' delimiter (column 73)"},
            {"row": 6, "field": "history[0]", "message": "must be a [user, assistant] pair, got list of length 1"},
            {"row": 7, "field": "instruction", "message": "empty user turn"},
            {"row": 8, "field": "system", "message": "must be a string, got list"},
            {"row": 9, "field": "instruction",
             "message": "contains bytes that are not valid UTF-8; re-save the file as UTF-8"},
        ],
    }


def test_unreadable_file_exits_2_with_one_line_and_no_traceback(tmp_path):
    result = cli(str(tmp_path / "missing.jsonl"), "--json")
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == f"error: {tmp_path / 'missing.jsonl'}: no such file or folder\n"


def test_no_valid_rows_exits_2_after_printing_the_report(tmp_path, capsys):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"instruction": "q"}\n{"instruction": "q", "output": ""}\n', encoding="utf-8")
    code, out, err = run_inspect(capsys, str(path), "--json")
    assert code == 2
    assert json.loads(out)["valid_rows"] == 0
    assert err == f"error: {path}: no valid rows (2 errors); first: row 0, field 'output': is missing\n"


def test_strict_mode_exits_2_naming_the_row(capsys):
    code, out, err = run_inspect(capsys, str(BROKEN), "--strict", "--json")
    assert (code, out) == (2, "")
    assert err == (f"error: {BROKEN}: row 1, field 'output': is missing; "
                   "strict mode stops at the first invalid row\n")


def test_columns_option_maps_prompt_and_response(tmp_path, capsys):
    path = tmp_path / "pairs.csv"
    path.write_text("prompt,response\nHi,Hello\n", encoding="utf-8")
    code, out, err = run_inspect(capsys, str(path), "--columns", "prompt=instruction, response=output", "--json")
    assert (code, err) == (0, "")
    report = json.loads(out)
    assert (report["format"], report["valid_rows"]) == ("alpaca", 1)
    assert report["reason"] == ("columns instruction/output found "
                                "(after mapping prompt→instruction, response→output) → alpaca")


@pytest.mark.parametrize("value", ["prompt", "prompt=", "=output"])
def test_malformed_columns_option(tmp_path, capsys, value):
    code, out, err = run_inspect(capsys, str(BROKEN), "--columns", value)
    assert (code, out) == (2, "")
    assert err == f"error: --columns: '{value}' is not COLUMN=FIELD (e.g. prompt=instruction)\n"


def test_explicit_format_option(tmp_path, capsys):
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "t", "instruction": "q", "output": "a"}\n', encoding="utf-8")
    code, out, _ = run_inspect(capsys, str(path), "--format", "text", "--json")
    assert code == 0
    assert json.loads(out)["format"] == "text"
    assert json.loads(out)["reason"] == "format text given"


def test_errors_are_capped_at_100_with_the_total(tmp_path, capsys):
    path = tmp_path / "many.jsonl"
    path.write_text('{"text": ""}\n' * 150 + '{"text": "ok"}\n', encoding="utf-8")
    code, out, _ = run_inspect(capsys, str(path), "--json")
    report = json.loads(out)
    assert code == 0
    assert (report["rows"], report["valid_rows"], report["errors_total"]) == (151, 1, 150)
    assert len(report["errors"]) == 100
    assert report["errors"][99] == {"row": 99, "field": "text", "message": "empty text"}


def test_human_summary(capsys):
    code, out, err = run_inspect(capsys, str(BROKEN))
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        f"{BROKEN}: alpaca (columns instruction/output found → alpaca)",
        "2 of 10 rows valid, 8 errors",
        "  row 1, field 'output': is missing",
        "  row 2, field 'output': must be a string, got number",
        "  row 3, field 'output': empty assistant turn",
        "  row 4, field 'line': line 5 is not valid JSON: Expecting ',' delimiter (column 73)",
        "  row 6, field 'history[0]': must be a [user, assistant] pair, got list of length 1",
        "  ... 3 more (use --json to see up to 100)",
    ]
