"""Reading job files while they are written, GPU detection output, and exit-code classification."""
from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from trainer_backend.jobs.eventfile import progress_of, read_events_since, tail_lines
from trainer_backend.jobs.gpus import detect_gpus, parse_gpu_indices
from trainer_backend.contracts import OOM_LEVERS, oom_message
from trainer_backend.jobs.outcome import classify


def test_events_are_read_by_line_and_a_half_written_line_waits(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_text(json.dumps({"kind": "train", "step": 1, "loss": 2.0}) + "\nnot json\n" + '{"kind": "tra')
    events, next_line = read_events_since(path, 0)
    assert events == [{"kind": "train", "step": 1, "loss": 2.0}] and next_line == 2
    with path.open("a") as f:
        f.write('in", "step": 2, "loss": 1.5}\n')
    assert read_events_since(path, next_line) == ([{"kind": "train", "step": 2, "loss": 1.5}], 3)
    assert read_events_since(tmp_path / "missing.jsonl", 4) == ([], 4)


def test_progress_reads_the_latest_step_loss_and_total(tmp_path):
    path = tmp_path / "events.jsonl"
    lines = [{"kind": "status", "step": 0, "status": "started", "total_steps": 500}]
    lines += [{"kind": "train", "step": s, "loss": 10.0 / s} for s in range(1, 2001)]  # several read blocks
    path.write_text("".join(json.dumps(e) + "\n" for e in lines))
    progress, loss = progress_of(path)
    assert (progress.step, progress.total, loss) == (2000, 500, 10.0 / 2000)
    assert progress.fraction == 1.0


def test_tail_lines_reads_the_end(tmp_path):
    path = tmp_path / "train.log"
    path.write_text("".join(f"line {i}\n" for i in range(20000)))
    assert tail_lines(path, 3) == ["line 19997", "line 19998", "line 19999"]
    assert tail_lines(tmp_path / "none.log", 3) == []


def test_nvidia_smi_csv_is_parsed():
    assert parse_gpu_indices("0, 81559, 3\n1, 81559, 70000\n") == [0, 1]
    assert parse_gpu_indices("No devices were found\n") == []


@pytest.mark.gpu
def test_detected_gpus_match_nvidia_smi():
    listed = subprocess.run([shutil.which("nvidia-smi"), "-L"], capture_output=True, text=True).stdout
    assert len(detect_gpus()) == listed.count("GPU ") > 0


@pytest.mark.parametrize("code, stop, errors, stderr, state, reason", [
    (0, False, [], None, "completed", None),
    (10, True, [], "stopped at step 4", "stopped",
     "stopped on request; no checkpoint was written: a resume starts from step 0"),
    (-9, True, [], None, "stopped", "stopped on request; killed after the 30 s grace period "
                                    "(the current step was not checkpointed); "
                                    "no checkpoint was written: a resume starts from step 0"),
    (-15, True, [], None, "stopped", "stopped on request before the first step; "
                                     "no checkpoint was written: a resume starts from step 0"),
    (2, False, [{"reason": "data", "message": "data.path: no such file"}], "x", "failed",
     "bad input: data.path: no such file"),
    (1, False, [], "ValueError: boom", "failed", "ValueError: boom"),
    (-9, False, [], None, "failed",
     "killed by SIGKILL from outside the job (often the system running out of memory)"),
])
def test_exit_codes_become_states_and_one_line_reasons(code, stop, errors, stderr, state, reason):
    outcome = classify(code, stop, errors, stderr, grace_s=30.0)
    assert (outcome.state, outcome.reason, outcome.exit_code) == (state, reason, code)


def test_oom_names_the_levers():
    notice = oom_message(2, 8, 1024, "lora")
    message = str(notice)
    outcome = classify(3, False, [{"reason": "oom", "message": message, "notice": notice.to_json()}], None, 30.0)
    assert outcome.oom and outcome.state == "failed"
    assert outcome.reason == message and outcome.notice == notice      # the event's notice, to translate
    assert message.endswith(OOM_LEVERS) and "train.micro_batch_size 8" in message
    stderr_only = classify(3, False, [], "CUDA out of memory", 30.0)
    assert stderr_only.oom and stderr_only.reason == f"out of memory (CUDA out of memory): {OOM_LEVERS}"
