"""The studio in a real browser (Playwright driving Debian's chromium, headless): upload, see the
trained/masked tokens, launch a short training job, watch the loss chart gain points, switch tabs
while it trains (each switch must show its tab; the timings are recorded in
test-artifacts/tab-switch-ms.json, speed is not asserted on a shared machine), stop it. Screenshots
go to test-artifacts/."""
from __future__ import annotations

import json

import pytest

from studio_server import ROOT, running_studio, update_screenshot, wait_until
from test_studio_api import SAMPLE, expected_runs

pytestmark = pytest.mark.slow
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
SWITCH_GIVE_UP_MS = 60000   # a tab that has not painted by then is broken, not slow


@pytest.fixture()
def page():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        yield page
        browser.close()


# Measured inside the page: from the click to the first painted frame showing the tab's content.
SWITCH_JS = """async ([name, selector, limit]) => {
  const tab = [...document.querySelectorAll('button[role=tab]')].find(b => b.textContent.trim() === name);
  const frame = () => new Promise(r => requestAnimationFrame(r));
  const began = performance.now();
  tab.click();
  for (;;) {
    const el = document.querySelector(selector);
    if (el && el.getClientRects().length && el.getBoundingClientRect().height > 0) break;
    if (performance.now() - began > limit) return null;
    await frame();
  }
  await frame();
  return performance.now() - began;
}"""


def open_tab(page, name: str, inside: str) -> float:
    """Milliseconds from the click on a tab until its content is painted; fails when it never is."""
    ms = page.evaluate(SWITCH_JS, [name, inside, SWITCH_GIVE_UP_MS])
    assert ms is not None, f"the {name} tab did not show {inside} within {SWITCH_GIVE_UP_MS} ms"
    return ms


def loss_points(page) -> int:
    return page.evaluate("() => { const p = document.querySelector('#mon-loss .js-plotly-plot');"
                         " return p && p.data && p.data.length ? p.data[0].x.length : 0; }")


def fill(page, elem_id: str, value: str) -> None:
    box = page.locator(f"#{elem_id} input, #{elem_id} textarea").first
    box.fill(value)
    box.press("Tab")


def test_click_path_upload_preview_train_monitor_stop(page, tmp_path, tiny_llama_dir, smollm2_dir):
    ARTIFACTS.mkdir(exist_ok=True)
    with running_studio(tmp_path / "work") as url:
        page.goto(url)
        page.locator("#data-upload input[type=file]").set_input_files(str(SAMPLE))
        page.locator("#data-status", has_text="200 rows read").wait_for(timeout=120000)

        # The upload chains the mask preview with the default (demo) model.
        open_tab(page, "Template", "#tpl-run")
        page.locator("#tpl-tokens .tok-trained").first.wait_for(timeout=120000)
        spans = page.locator("#tpl-tokens span").evaluate_all(
            "els => els.map(e => [e.textContent, e.classList.contains('tok-trained')])")
        assert [tuple(s) for s in spans] == expected_runs(0, smollm2_dir)
        page.screenshot(path=str(ARTIFACTS / "template-tab.png"), full_page=True)

        open_tab(page, "Train", "#train-launch")
        fill(page, "cfg-model-name-or-path", str(tiny_llama_dir))
        fill(page, "cfg-template-max-seq-len", "64")
        fill(page, "cfg-train-max-steps", "400")
        fill(page, "cfg-train-lr", "0.005")
        page.locator("#train-status", has_text="CPU training").wait_for(timeout=60000)
        page.locator("#train-launch").click()
        page.locator("#mon-summary", has_text="running").wait_for(timeout=120000)   # Launch opens Monitor
        wait_until(lambda: loss_points(page) >= 2, 900, what="the loss chart's first points")
        first = loss_points(page)
        wait_until(lambda: loss_points(page) >= first + 2, 600, what="the loss chart to gain points")

        tabs = [("Data", "#data-load-sample"), ("Jobs", "#jobs-table"), ("Template", "#tpl-run"),
                ("Train", "#train-launch"), ("Chat", "#chat-send"), ("Monitor", "#mon-stop")]
        timings = [(tab, round(open_tab(page, tab, sel), 1)) for _ in range(3) for tab, sel in tabs]
        ms = sorted(v for _, v in timings)
        report = {"median_ms": ms[len(ms) // 2], "max_ms": ms[-1], "switches": timings,
                  "training_steps_during": loss_points(page) - first}
        (ARTIFACTS / "tab-switch-ms.json").write_text(json.dumps(report, indent=1))
        assert loss_points(page) > first   # the job kept training meanwhile
        page.screenshot(path=str(ARTIFACTS / "monitor-tab.png"), full_page=True)

        page.locator("#mon-stop").click()
        page.locator("#mon-summary", has_text="stopped").wait_for(timeout=60000)
        page.locator("#lang input").click()
        page.get_by_role("option", name="Tiếng Việt").click()
        page.get_by_role("tab", name="Dữ liệu").wait_for(timeout=60000)
        page.screenshot(path=str(ARTIFACTS / "monitor-stopped-vi.png"), full_page=True)
    # The documentation's Monitor and Chat screenshots come from the finished demo (test_browser_demo.py).
    update_screenshot(ARTIFACTS / "template-tab.png", "template-tab.png")
