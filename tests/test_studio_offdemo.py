"""The studio off the demo path, through its HTTP API: a CSV whose columns need mapping, ShareGPT
chats that end on a user turn, a GPU-only method refused before it is queued, and the estimate a
CPU machine gives for a preset sized for a GPU."""
from __future__ import annotations

import json

import yaml
from gradio_client import Client, handle_file

from studio.config_form import field_specs, to_form
from studio.data_tab import FIELDS
from studio.train_tab import estimate_text, on_devices
from studio_server import running_studio
from trainer_backend.data import load_dataset
from trainer_backend.device_rules import QLORA_NEEDS_CUDA, optimizer_needs_cuda
from trainer_backend.planner import estimate
from trainer_backend.presets import load_preset

CHATS = [
    [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello!"}, {"from": "human", "value": "Bye?"}],
    [{"from": "human", "value": "2+2?"}, {"from": "gpt", "value": "4"}],
    [{"from": "human", "value": "Name a color"}, {"from": "gpt", "value": "Blue"}, {"from": "human", "value": "?"}],
]


def mapping_args(**fields: str) -> list[str]:
    """The Data tab's dropdowns, one per field, holding the column that fills it."""
    return [fields.get(name, "") for name in FIELDS]


def test_csv_mapping_sharegpt_trailing_turns_and_gpu_only_method(tmp_path):
    csv = tmp_path / "listings.csv"
    csv.write_text('title,price,category\n"Red bike, barely used",120,sport\nOld brass lamp,15,home\nSoup pot,,home\n')
    chats = tmp_path / "chitchat.json"
    chats.write_text(json.dumps([{"conversations": c} for c in CHATS]))
    with running_studio(tmp_path / "work") as url:
        client = Client(url, verbose=False)
        status, _rows, _errors, *dropdowns = client.predict(handle_file(str(csv)), "auto", True, "en",
                                                            api_name="/upload")
        # Detection fails, saying why, naming the file as uploaded and not the server's folder.
        assert status.startswith("✖ Cannot use **listings.csv**: cannot detect the format from the columns "
                                 "(title, price, category)")
        assert str(tmp_path) not in status and "/users/" not in status
        shown = {name: d for name, d in zip(FIELDS, dropdowns) if d["visible"]}
        assert list(shown) == ["instruction", "input", "output", "system", "history"]
        assert shown["instruction"]["choices"] == [["—", ""], ["title", "title"], ["price", "price"],
                                                   ["category", "category"]]

        # Apply works on the file shown, although nothing loaded from it.
        status, rows, errors, *_ = client.predict("auto", True, "en", *mapping_args(instruction="title", output="price"),
                                                  api_name="/apply")
        assert "format **alpaca**" in status and "3 rows read, 2 valid, 1 rows with errors" in status
        reference = load_dataset(csv, columns={"title": "instruction", "price": "output"})
        assert [r[3:] for r in rows["data"]] == [[c.messages[0].content, c.messages[1].content]
                                                 for c in reference.conversations]
        assert rows["data"][0][3:] == ["Red bike, barely used", "120"]
        assert errors["data"] == [[2, "output", "empty assistant turn"]]
        resolved = client.predict(*to_form(load_preset("smollm2-135m-demo"), field_specs()), [], "en",
                                  api_name="/resolve")
        data = yaml.safe_load(resolved[1])["data"]
        assert data["columns"] == {"title": "instruction", "price": "output"} and data["format"] == "auto"
        assert data["path"].endswith("listings.csv")

        # ShareGPT chats ending on a question: the question is dropped by default, and counted.
        status, rows, errors, *_ = client.predict(handle_file(str(chats)), "auto", True, "en", api_name="/upload")
        assert "3 rows read, 3 valid, 0 rows with errors" in status
        assert "2 chats ended on a user turn: that turn was dropped." in status
        status, *_ = client.predict("auto", False, "en", *mapping_args(), api_name="/apply")
        assert "3 rows read, 1 valid, 2 rows with errors" in status

        # A GPU-only method on a CPU job: refused with the trainer's own words, nothing queued.
        qlora = load_preset("smollm2-135m-demo").model_copy(update={"method": "qlora"})
        status, *_ = client.predict(*to_form(qlora, field_specs()), [], "en", api_name="/launch")
        assert status == f"✖ Not launched: {QLORA_NEEDS_CUDA}"
        table, _pick = client.predict(None, "en", api_name="/jobs")
        assert table["data"] == []


def test_a_cpu_machine_estimates_a_gpu_preset_for_the_gpu_it_is_sized_for():
    run = load_preset("qwen2.5-7b-instruct-24gb")
    on_cpu = on_devices(run, [])
    peak = estimate(on_cpu.with_overrides({"sync.devices": [0]}), 24.0).peak_gib
    assert round(peak, 2) == run.planner.expected_peak_gib       # the planner's own figure, as the preset says
    text = estimate_text(run, on_cpu, [], "en")
    problems = f"{QLORA_NEEDS_CUDA}; {optimizer_needs_cuda(run.train.optimizer)}"
    assert text == (f"✖ This run cannot train on the CPU: {problems}. Pick a GPU above or change these "
                    f"fields.\n\nOn the 24 GiB GPU this preset is sized for, the predicted peak is {peak:.1f} GiB: "
                    "it fits.")
    assert "Trên GPU 24 GiB" in estimate_text(run, on_cpu, [], "vi")
