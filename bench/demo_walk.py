"""How long the bundled demo takes a newcomer: the README's start command, then the clicks of the
demo path in a headless browser (load the sample, pick the demo preset, Launch) until the Monitor
says completed. The same run through the CLI is the baseline (no studio, no browser).

    python bench/demo_walk.py --out bench/results/demo_walk.md [--no-baseline]

Each phase is wall-clock time with the machine's load average, since a shared machine is slower.
The install (scripts/setup.sh) is not timed: it runs once and depends on the network.
"""
from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from studio_server import _up, wait_until  # noqa: E402  (the UI tests' own way to wait for the studio)

DEMO = "smollm2-135m-demo"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]


def walk(workdir: Path, port: int) -> dict[str, float]:
    """Seconds from the start command to each milestone of the demo path."""
    from playwright.sync_api import sync_playwright

    began = time.monotonic()
    marks: dict[str, float] = {}
    log = open(workdir.parent / "studio.log", "w")
    proc = subprocess.Popen([sys.executable, "app.py", "--port", str(port), "--workdir", str(workdir)], cwd=ROOT,
                            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_until(lambda: _up(url), 300, what="the studio to answer")
        marks["studio answers"] = time.monotonic() - began
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(url)
            page.locator("#data-load-sample").click()
            page.locator("#data-status", has_text="rows read").wait_for(timeout=300000)
            marks["sample loaded"] = time.monotonic() - began
            page.locator("button[role=tab]", has_text="Train").click()
            page.locator("#train-preset input").click()
            page.get_by_role("option", name=DEMO, exact=True).click()
            page.locator("#train-status", has_text="CPU training").wait_for(timeout=300000)
            page.locator("#train-launch").click()
            marks["launched"] = time.monotonic() - began
            page.locator("#mon-summary", has_text="running").wait_for(timeout=600000)
            marks["running"] = time.monotonic() - began
            page.locator("#mon-summary", has_text="completed").wait_for(timeout=3600000)
            marks["completed"] = time.monotonic() - began
            browser.close()
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()
    return marks


def baseline(workdir: Path) -> float:
    began = time.monotonic()
    subprocess.run([sys.executable, "-m", "trainer_backend", "train", DEMO, "--set", f"output.dir={workdir}/cli"],
                   cwd=ROOT, check=True, capture_output=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    return time.monotonic() - began


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path)
    parser.add_argument("--port", type=int, default=7871)
    parser.add_argument("--no-baseline", action="store_true")
    args = parser.parse_args()
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    with tempfile.TemporaryDirectory() as tmp:
        load_before = os.getloadavg()
        marks = walk(Path(tmp) / "work", args.port)
        load_after = os.getloadavg()
        cli = None if args.no_baseline else baseline(Path(tmp))
    rows = [f"| {name} | {s:.0f} s ({s / 60:.1f} min) |" for name, s in marks.items()]
    if cli is not None:
        rows.append(f"| baseline: `python -m trainer_backend train {DEMO}` alone | {cli:.0f} s ({cli / 60:.1f} min) |")
    table = "\n".join(["| from `python app.py` to | wall clock |", "|---|---|", *rows])
    text = (f"# The demo path, start command to a completed job\n\nstarted {started}"
            f", {os.cpu_count()} CPU cores ({platform.processor() or platform.machine()}), no GPU; load average "
            f"{load_before[0]:.1f} before, {load_after[0]:.1f} after (1 min; a shared machine).\n"
            f"Command: `python bench/demo_walk.py`\n\n{table}\n")
    print(text)
    if args.out:
        args.out.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
