"""A shared studio in a real browser: alice logs in and sees her own job everywhere a job is listed,
and nothing of bob's (his job, its name, his upload) on any tab."""
from __future__ import annotations

import time
from pathlib import Path

import pytest

from studio.auth import add_user
from studio_server import ROOT, running_studio
from test_browser_studio import CHROMIUM_ARGS, open_tab
from trainer_backend.jobs import COMPLETED, registry

pytestmark = pytest.mark.slow
ARTIFACTS = ROOT / "test-artifacts"
ALICE_JOB, BOB_JOB = "20250101-100000-a11ce0", "20250101-110000-b0b000"


def finished(work: Path, owner: str, job_id: str, name: str) -> None:
    (work / "jobs" / job_id / "output").mkdir(parents=True)
    with registry.Registry(work / "jobs.db").write() as conn:
        registry.insert(conn, id=job_id, owner=owner, name=name, state=COMPLETED, gpus=[], command=["true"],
                        cwd=str(ROOT), grace_s=1.0, max_retries=0, created_at=time.time(), ended_at=time.time())


def dropdown_options(page, elem_id: str) -> list[str]:
    page.locator(f"#{elem_id} input").click()
    options = page.get_by_role("option").all_inner_texts()
    page.keyboard.press("Escape")
    return options


def test_alice_sees_nothing_of_bob(tmp_path):
    from playwright.sync_api import sync_playwright

    users, work = tmp_path / "users.yaml", tmp_path / "work"
    add_user(users, "alice", "tulip-window-71")
    add_user(users, "bob", "kettle-summit-83")
    finished(work, "alice", ALICE_JOB, "alices-run")
    finished(work, "bob", BOB_JOB, "bobs-secret-run")
    (work / "users" / "bob" / "uploads").mkdir(parents=True)
    (work / "users" / "bob" / "uploads" / "bobs-private.jsonl").write_text("{}\n")
    bobs = (BOB_JOB, "bobs-secret-run", "bobs-private")
    ARTIFACTS.mkdir(exist_ok=True)
    with running_studio(work, "--auth", str(users)) as url, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(url)
        page.locator("input[type=password]").wait_for(timeout=30000)
        assert not any(b in page.content() for b in bobs)
        page.locator("input[type=text]").first.fill("alice")
        page.locator("input[type=password]").fill("tulip-window-71")
        page.locator("button", has_text="Login").click()
        page.locator("#who", has_text="Signed in as alice").wait_for(timeout=30000)

        open_tab(page, "Monitor", "#mon-stop")
        seen = {"monitor": dropdown_options(page, "mon-job")}
        open_tab(page, "Jobs", "#jobs-table")
        page.locator("#jobs-table", has_text=ALICE_JOB).wait_for(timeout=15000)
        seen["jobs"] = [page.locator("#jobs-table").inner_text(), *dropdown_options(page, "jobs-pick")]
        open_tab(page, "Chat", "#chat-send")
        page.locator("#chat-job input").wait_for(timeout=15000)
        seen["chat"] = dropdown_options(page, "chat-job")
        open_tab(page, "Export", "#export-merge")
        seen["export"] = dropdown_options(page, "export-job")
        page.screenshot(path=str(ARTIFACTS / "hosting-alice.png"), full_page=True)
        for tab, texts in seen.items():
            assert any(ALICE_JOB in text for text in texts), (tab, texts)    # the lists do list jobs
            assert not any(b in text for b in bobs for text in texts), (tab, texts)
        assert not any(b in page.content() for b in bobs)
        browser.close()
