"""The studio off the demo path in a real browser (headless chromium): a CSV whose columns are
mapped with dropdowns after detection fails, ShareGPT chats ending on a user turn, the estimate a
machine without a GPU gives for a preset sized for one, and the Vietnamese UI walked tab by tab
with no English word left. Screenshots go to test-artifacts/ (and, with STUDIO_UPDATE_SCREENSHOTS=1,
the mapping one to the documentation)."""
from __future__ import annotations

import json
import re
import time

import pytest

from studio.config_form import field_specs
from studio.i18n import _FIELD_INFO, _FIELD_LABELS, STRINGS
from studio_server import ROOT, running_studio, update_screenshot
from test_browser_studio import open_tab, page  # noqa: F401  (page: the headless chromium fixture)
from test_studio_offdemo import CHATS
from trainer_backend.device_rules import QLORA_NEEDS_CUDA
from trainer_backend.presets import list_presets

pytestmark = pytest.mark.slow
ARTIFACTS = ROOT / "test-artifacts"
GPU_PRESET = "qwen2.5-7b-instruct-24gb"
WAIT_MS = 120000
# Gradio's own widget texts, which it translates for many languages but not Vietnamese.
GRADIO_ENGLISH = {"drop", "here", "click", "upload"}
# What the user brought or named, shown as it is: the rows, the rendered tokens, file, model and
# preset names, the signed-in user.
DATA_ELEMENTS = ["#who", "#data-rows", "#tpl-tokens", "#data-sample", "#train-preset", "#cfg-model-name-or-path",
                 "#cfg-name"]
VISIBLE_UI_TEXT = """(hidden) => {
  const parked = hidden.flatMap(sel => [...document.querySelectorAll(sel)]);
  const before = parked.map(el => el.style.display);
  parked.forEach(el => { el.style.display = 'none'; });
  const text = document.body.innerText;
  parked.forEach((el, i) => { el.style.display = before[i]; });
  return text;
}"""
# Paths, dotted config keys, snake_case values and the key a field's hint starts with are not prose.
IDENTIFIER = re.compile(r"\S*[./_]\S*|\S+ ·")


def pick(page, elem_id: str, option: str) -> None:
    page.locator(f"#{elem_id} input").click()
    page.locator(f"#{elem_id}").get_by_role("option", name=option, exact=True).click()


def settle(page) -> None:
    """Lets the events the last action started begin, then waits until Gradio's own "Loading..."
    (its status of an event still running, which Gradio does not translate) has left the page: a
    loaded machine runs a tab's refresh for longer than any fixed wait."""
    page.wait_for_timeout(2000)
    page.wait_for_function("() => !document.body.innerText.includes('Loading...')", timeout=WAIT_MS)


def english_words() -> set[str]:
    """Words of the studio's English texts (strings, field labels and hints, schema descriptions,
    preset descriptions, the backend's messages) that no Vietnamese text uses: seeing one in the
    Vietnamese UI is a leak."""
    from studio.backend_texts import VIETNAMESE
    from trainer_backend.messages import ENGLISH

    words = lambda text: {w.lower() for w in re.findall(r"[A-Za-z]{4,}", text or "")}  # noqa: E731
    english = set().union(*(words(s) for s in STRINGS["en"].values()),
                          *(words(pair[0]) for pair in _FIELD_LABELS.values()),
                          *(words(pair[0]) for pair in _FIELD_INFO.values()),
                          *(words(spec.description) for spec in field_specs()),
                          *(words(p.description) for p in list_presets()), *(words(s) for s in ENGLISH.values()),
                          GRADIO_ENGLISH)
    vietnamese = set().union(*(words(s) for s in STRINGS["vi"].values()), *(words(s) for s in VIETNAMESE.values()),
                             *(words(pair[1]) for pair in [*_FIELD_LABELS.values(), *_FIELD_INFO.values()]))
    return english - vietnamese


def test_csv_mapping_sharegpt_and_a_gpu_preset_on_a_cpu_machine(page, tmp_path):  # noqa: F811
    ARTIFACTS.mkdir(exist_ok=True)
    csv = tmp_path / "listings.csv"
    csv.write_text('title,price\n"Red bike, barely used",120\nOld brass lamp,15\n')
    chats = tmp_path / "chitchat.json"
    chats.write_text(json.dumps([{"conversations": c} for c in CHATS]))
    timings = {}
    with running_studio(tmp_path / "work") as url:
        page.goto(url)
        began = time.monotonic()
        page.locator("#data-upload input[type=file]").set_input_files(str(csv))
        page.locator("#data-status", has_text="cannot detect the format").wait_for(timeout=WAIT_MS)
        assert str(tmp_path) not in page.locator("#data-status").inner_text()
        pick(page, "data-map-instruction", "title")
        pick(page, "data-map-output", "price")
        page.locator("#data-apply").click()
        page.locator("#data-status", has_text="format alpaca").wait_for(timeout=WAIT_MS)
        page.locator("#data-rows", has_text="Red bike, barely used").wait_for(timeout=WAIT_MS)
        timings["csv_mapped_s"] = round(time.monotonic() - began, 1)
        page.screenshot(path=str(ARTIFACTS / "data-mapping.png"), full_page=True)

        # A reloaded page shows the dataset it had (and an empty upload box for the next file).
        page.reload()
        page.locator("#data-status", has_text="listings.csv").wait_for(timeout=WAIT_MS)
        page.locator("#data-upload input[type=file]").set_input_files(str(chats))
        page.locator("#data-status", has_text="2 chats ended on a user turn").wait_for(timeout=WAIT_MS)
        assert "3 valid" in page.locator("#data-status").inner_text()

        open_tab(page, "Train", "#train-launch")
        pick(page, "train-preset", GPU_PRESET)
        status = page.locator("#train-status")
        status.filter(has_text="On the 24 GiB GPU this preset is sized for").wait_for(timeout=WAIT_MS)
        assert "cannot train on the CPU" in status.inner_text()
        assert "chitchat.json" in page.locator("#train-dataset").inner_text()    # the preset kept the data
        page.screenshot(path=str(ARTIFACTS / "train-gpu-preset-on-cpu.png"), full_page=True)
        page.locator("#train-launch").click()
        status.filter(has_text="Not launched").wait_for(timeout=WAIT_MS)
        assert str(QLORA_NEEDS_CUDA) in status.inner_text()
    (ARTIFACTS / "offdemo-timings.json").write_text(json.dumps(timings, indent=1))
    update_screenshot(ARTIFACTS / "data-mapping.png", "data-mapping.png")


def test_the_vietnamese_ui_shows_no_english(page, tmp_path):  # noqa: F811
    ARTIFACTS.mkdir(exist_ok=True)
    english = english_words()
    leaks: dict[str, list[str]] = {}
    with running_studio(tmp_path / "work") as url:
        page.goto(url)
        pick(page, "lang", "Tiếng Việt")
        page.get_by_role("tab", name="Dữ liệu").wait_for(timeout=WAIT_MS)
        page.locator("#data-load-sample").click()
        page.locator("#data-status", has_text="định dạng").wait_for(timeout=WAIT_MS)
        page.locator("#data-stats", has_text="giữ lại").wait_for(timeout=WAIT_MS)     # the preview ran
        tabs = [("Dữ liệu", "#data-load-sample"), ("Mẫu hội thoại", "#tpl-run"), ("Huấn luyện", "#train-launch"),
                ("Theo dõi", "#mon-stop"), ("Công việc", "#jobs-table"), ("Trò chuyện", "#chat-send"),
                ("Xuất mô hình", "#export-job")]
        for number, (name, inside) in enumerate(tabs, start=1):
            open_tab(page, name, inside)
            if name == "Huấn luyện":
                page.locator("#cfg-advanced").click()          # the Advanced fields too
            settle(page)                             # the tab's own refresh (e.g. the Jobs table) lands
            text = IDENTIFIER.sub(" ", page.evaluate(VISIBLE_UI_TEXT, DATA_ELEMENTS))
            found = sorted({w for w in re.findall(r"[A-Za-z]{4,}", text) if w.lower() in english})
            if found:
                leaks[name] = found
            page.screenshot(path=str(ARTIFACTS / f"vi-{number}-{inside.strip('#')}.png"), full_page=True)
        # The backend's own words: the detection reason and the row errors of a file with broken rows.
        open_tab(page, "Dữ liệu", "#data-load-sample")
        pick(page, "data-sample", "broken_rows.jsonl")
        page.locator("#data-load-sample").click()
        page.locator("#data-errors", has_text="bị thiếu").wait_for(timeout=WAIT_MS)
        status = page.locator("#data-status").inner_text()
        assert "có các cột instruction/output → alpaca" in status, status
        errors = page.locator("#data-errors").inner_text()
        assert "phải là chuỗi, nhưng là số" in errors and "lượt assistant rỗng" in errors, errors
        settle(page)                  # the preview after the errors lands
        text = IDENTIFIER.sub(" ", page.evaluate(VISIBLE_UI_TEXT, DATA_ELEMENTS))
        found = sorted({w for w in re.findall(r"[A-Za-z]{4,}", text) if w.lower() in english})
        if found:
            leaks["Dữ liệu (broken_rows.jsonl)"] = found
        page.screenshot(path=str(ARTIFACTS / "vi-8-row-errors.png"), full_page=True)
    (ARTIFACTS / "vi-leaks.json").write_text(json.dumps(leaks, indent=1, ensure_ascii=False))
    assert leaks == {}
