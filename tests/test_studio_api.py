"""The studio through its HTTP API (gradio_client against `python app.py` in a subprocess):
upload -> inspect -> preview -> launch -> events -> stop, and the errors a user can cause."""
from __future__ import annotations

import html
import json
import re
import subprocess
import sys

import httpx
import pytest
from gradio_client import Client, handle_file

from studio.config_form import field_specs, to_form
from studio_server import ROOT, running_studio, wait_until
from trainer_backend.config import RunConfig

SAMPLE = ROOT / "samples" / "demo_alpaca.jsonl"
BROKEN = ROOT / "samples" / "broken_rows.jsonl"


def expected_runs(conv_row: int, model_dir) -> list[tuple[str, bool]]:
    """The trained/masked runs straight from the backend's render_and_mask, decoded id by id."""
    from trainer_backend.config import TemplateConfig
    from trainer_backend.data import load_dataset
    from trainer_backend.templates import load_tokenizer, render_and_mask

    tok = load_tokenizer(str(model_dir))
    conv = load_dataset(SAMPLE).conversations[conv_row]
    ex = render_and_mask(conv, tok, TemplateConfig())
    runs: list[list] = []
    for token_id, trained in zip(ex.input_ids, ex.trained):
        piece = tok.decode([token_id])
        if runs and runs[-1][1] == trained:
            runs[-1][0] += piece
        else:
            runs.append([piece, trained])
    return [(text, flag) for text, flag in runs]


def shown_runs(tokens_html: str) -> list[tuple[str, bool]]:
    spans = re.findall(r'<span class="tok-(trained|masked)">(.*?)</span>', tokens_html, re.S)
    return [(html.unescape(text), kind == "trained") for kind, text in spans]


def tiny_config(model_dir, data_path: str, max_steps: int) -> RunConfig:
    return RunConfig.model_validate({
        "name": "tiny-api", "method": "lora", "model": {"name_or_path": str(model_dir), "engine": "hf"},
        "data": {"path": data_path}, "template": {"max_seq_len": 64, "packing": False},
        "lora": {"r": 8, "alpha": 16},
        "train": {"max_steps": max_steps, "micro_batch_size": 2, "lr": 5e-3, "scheduler": "constant",
                  "precision": "fp32", "gradient_checkpointing": "off", "save_every": 0}})


def launch_args(cfg: RunConfig) -> list:
    return [*to_form(cfg, field_specs()), [], "en"]


def plot_points(plot_value) -> int:
    figure = json.loads(plot_value["plot"]) if isinstance(plot_value.get("plot"), str) else plot_value["plot"]
    return len(figure["data"][0]["x"])


@pytest.mark.slow
def test_upload_preview_launch_events_stop(tmp_path, tiny_llama_dir, smollm2_dir):
    with running_studio(tmp_path / "work") as url:
        client = Client(url, verbose=False)
        status, table, errors = client.predict(handle_file(str(SAMPLE)), "auto", "", "en", api_name="/upload")
        assert "format **alpaca**" in status and "200 rows read, 200 valid" in status
        assert table["data"][0][3] == "What is the capital of France?" and errors["data"] == []
        uploaded = tmp_path / "work" / "users" / "local" / "uploads" / "demo_alpaca.jsonl"
        assert uploaded.read_bytes() == SAMPLE.read_bytes()

        status, checks, _row = client.predict(str(smollm2_dir), "auto", "response_only", 2048, "en",
                                              api_name="/preview")
        assert "200 rows checked" in status and "end-of-turn token is trained in 200 of 200" in checks
        for row in (0, 3):
            info, tokens = client.predict(row, "en", api_name="/show_row")
            assert shown_runs(tokens) == expected_runs(row, smollm2_dir)
            assert f"(row {row})" in info

        status, yaml_text, _file, job_id = client.predict(*launch_args(tiny_config(tiny_llama_dir, str(uploaded), 400)),
                                                          api_name="/launch")
        assert job_id and job_id in status and "tiny-api" in yaml_text

        # The monitor skips outputs that did not change since this session's previous call.
        seen: list[int] = []
        summaries: list[str] = []

        def monitor_until(done) -> None:
            summary, loss_plot, _sys, _preference, _log = client.predict(job_id, "en", api_name="/monitor")
            if isinstance(summary, str):
                summaries.append(summary)
            if "plot" in loss_plot:
                seen.append(plot_points(loss_plot))
            return done()
        wait_until(lambda: monitor_until(lambda: seen and seen[-1] >= 3), 150, every_s=1,
                   what="three train events in the loss chart")
        assert seen == sorted(seen) and "running" in summaries[-1]
        assert job_id in client.predict(job_id, "en", api_name="/stop")
        wait_until(lambda: monitor_until(lambda: "stopped" in summaries[-1]), 60, what="the job to stop")
        table, _pick = client.predict(None, "en", api_name="/jobs")
        assert [r[0] for r in table["data"]] == [job_id] and table["data"][0][2] == "stopped"


def test_bad_uploads_name_the_row_and_the_file(tmp_path):
    bad = tmp_path / "notes.txt"
    bad.write_text("hello")
    with running_studio(tmp_path / "work") as url:
        client = Client(url, verbose=False)
        status, _table, errors = client.predict(handle_file(str(BROKEN)), "auto", "", "en", api_name="/upload")
        assert "8 with errors" in status
        assert [1, "output", "is missing"] in errors["data"]
        with pytest.raises(httpx.HTTPStatusError) as refused:   # by the upload route, before any handler runs
            client.predict(handle_file(str(bad)), "auto", "", "en", api_name="/upload")
        assert refused.value.response.status_code == 415
        assert refused.value.response.text == ("✖ Upload refused: notes.txt is not a dataset file; upload .json, "
                                               ".jsonl, .csv, .parquet.")
        status, *_ = client.predict(handle_file(str(SAMPLE)), "auto", "prompt", "en", api_name="/upload")
        assert "Column mapping 'prompt' is not field=column" in status
        status, *_ = client.predict(handle_file(str(SAMPLE)), "auto", "", "vi", api_name="/upload")
        assert "định dạng **alpaca**" in status


def test_studio_process_never_imports_torch():
    code = ("import sys; from pathlib import Path; import app; "
            "from studio.app_factory import build_ui, make_context; from studio.context import StudioSettings; "
            "import tempfile; ctx = make_context(StudioSettings(workdir=Path(tempfile.mkdtemp()))); "
            "build_ui(ctx); ctx.runner.close(); "
            "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
