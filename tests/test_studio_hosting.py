"""A shared studio attacked by a logged-in user: no user code runs, no path field reaches another
user's files, the raw upload route takes only dataset files within size, quota and disk, logins
are throttled and say nothing about which names exist, the page before login describes no API,
and removing a user from the users file takes effect without a restart.

One studio with four users serves the whole module (starting one costs ~20 s on a small machine)."""
from __future__ import annotations

import http.cookiejar
import json
import statistics
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError

from studio.auth import add_user
from studio.config_form import field_specs, to_form
from studio_server import ROOT, running_studio, wait_until
from trainer_backend.config import RunConfig
from trainer_backend.jobs import COMPLETED, registry
from trainer_backend.safe_yaml import dump_yaml, load_yaml_file

PASSWORDS = {"alice": "horse-battery-1x", "bob": "staple-correct-2y", "carol": "lantern-moss-3xq",
             "dave": "orchard-94kz-rq"}
BOB_JOB = "20250101-120000-b0b0b0"


class Session:
    """A browser-like client: a cookie jar, form login, multipart upload, plain GETs."""

    def __init__(self, url: str):
        self.url = url
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))

    def request(self, path: str, data: bytes | None = None, headers: dict | None = None) -> tuple[int, bytes]:
        req = urllib.request.Request(self.url + path.lstrip("/"), data=data, headers=headers or {})
        try:
            with self.opener.open(req, timeout=60) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as err:
            return err.code, err.read()

    def login(self, name: str, password: str) -> int:
        return self.request("login", urllib.parse.urlencode({"username": name, "password": password}).encode())[0]

    def upload(self, name: str, content: bytes, lang: str = "en") -> tuple[int, bytes]:
        boundary = uuid.uuid4().hex
        body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"{name}\"\r\n"
                f"Content-Type: application/octet-stream\r\n\r\n").encode() + content + f"\r\n--{boundary}--\r\n".encode()
        return self.request("gradio_api/upload", body, {"Content-Type": f"multipart/form-data; boundary={boundary}",
                                                        "Accept-Language": lang})


@pytest.fixture(scope="module")
def studio(tmp_path_factory):
    base = tmp_path_factory.mktemp("hosted")
    users = base / "users.yaml"
    for name, password in PASSWORDS.items():
        add_user(users, name, password)
    data = load_yaml_file(users)
    data["users"]["bob"] = {"password": data["users"]["bob"], "quota_gib": 0.001}   # about 1 MiB
    users.write_text(dump_yaml(data))
    work = base / "work"
    _bobs_finished_job(work)
    with running_studio(work, "--auth", str(users), "--max-upload-mb", "1") as url:
        yield {"url": url, "work": work, "users": users}


def _bobs_finished_job(work: Path) -> None:
    """What another user owns: an upload and a completed job with a model in its output."""
    uploads = work / "users" / "bob" / "uploads"
    uploads.mkdir(parents=True)
    (uploads / "private.jsonl").write_text('{"instruction": "secret", "output": "of bob"}\n')
    output = work / "jobs" / BOB_JOB / "output"
    output.mkdir(parents=True)
    (output / "config.json").write_text('{"model_type": "llama"}')
    (output.parent / "config.yaml").write_text(RunConfig().to_yaml())
    db = registry.Registry(work / "jobs.db")
    with db.write() as conn:
        registry.insert(conn, id=BOB_JOB, owner="bob", name="bobs-run", state=COMPLETED, gpus=[], command=["true"],
                        cwd=str(ROOT), grace_s=1.0, max_retries=0, created_at=time.time(), ended_at=time.time())


def launch_args(cfg: RunConfig) -> list:
    return [*to_form(cfg, field_specs()), [], "en"]


def test_the_page_before_login_describes_no_api_and_names_no_folder(studio):
    anonymous = Session(studio["url"])
    status, page = anonymous.request("")
    assert status == 200 and b"window.gradio_api_info = null;" in page
    assert b"named_endpoints" not in page and str(ROOT).encode() not in page and str(studio["work"]).encode() not in page
    alice = Session(studio["url"])
    assert alice.login("alice", PASSWORDS["alice"]) == 200
    assert b"named_endpoints" in alice.request("")[1]      # logged in: the page is gradio's own again


def test_the_raw_upload_route_takes_only_dataset_files_within_size_and_quota(studio):
    alice, bob = Session(studio["url"]), Session(studio["url"])
    alice.login("alice", PASSWORDS["alice"])
    bob.login("bob", PASSWORDS["bob"])
    status, text = alice.upload("evil.py", b"open('/tmp/pwned', 'w')\n")
    assert (status, text.decode()) == (415, "✖ Upload refused: evil.py is not a dataset file; upload .json, .jsonl, "
                                             ".csv, .parquet.")
    status, text = alice.upload("evil.py", b"x", lang="vi")
    assert status == 415 and "không phải tệp dữ liệu" in text.decode()
    assert not list((studio["work"] / ".gradio").rglob("evil.py"))
    status, text = alice.upload("big.jsonl", b"x" * (2 * 2**20))
    assert status == 413 and "over the 1 MB upload limit" in text.decode()
    # bob's quota is about 1 MiB: a first 600 KB upload fits, a second one does not.
    assert bob.upload("a.jsonl", b"{}\n" * 200_000)[0] == 200
    status, text = bob.upload("b.jsonl", b"{}\n" * 200_000)
    assert status == 413 and "Not enough room in your space" in text.decode() and "quota" in text.decode()


def test_a_cached_upload_is_readable_and_usable_by_its_sender_only(studio):
    alice, bob = Session(studio["url"]), Session(studio["url"])
    alice.login("alice", PASSWORDS["alice"])
    bob.login("bob", PASSWORDS["bob"])
    status, body = alice.upload("notes.jsonl", b'{"instruction": "alice only", "output": "x"}\n')
    cached = json.loads(body)[0]
    assert bob.request(f"gradio_api/file={cached}")[0] == 403
    assert alice.request(f"gradio_api/file={cached}") == (200, b'{"instruction": "alice only", "output": "x"}\n')
    # bob hands alice's cached file to the Data tab's upload handler
    payload = json.dumps({"data": [{"path": cached, "meta": {"_type": "gradio.FileData"}}, "auto", "", "en"]})
    status, body = bob.request("gradio_api/call/upload", payload.encode(), {"Content-Type": "application/json"})
    assert status == 200, body
    _status, stream = bob.request(f"gradio_api/call/upload/{json.loads(body)['event_id']}")
    assert "not sent from your session" in stream.decode()
    assert not (studio["work"] / "users" / "bob" / "uploads" / "notes.jsonl").exists()
    # alice's own session may: the file moves to her uploads and leaves the shared cache
    status, body = alice.request("gradio_api/call/upload", payload.encode(), {"Content-Type": "application/json"})
    _status, stream = alice.request(f"gradio_api/call/upload/{json.loads(body)['event_id']}")
    assert "**notes.jsonl**: format **alpaca**" in stream.decode()
    assert (studio["work"] / "users" / "alice" / "uploads" / "notes.jsonl").exists() and not Path(cached).exists()


def test_every_path_field_refuses_the_other_users_job_and_upload(studio):
    work = studio["work"]
    bob_upload = str(work / "users" / "bob" / "uploads" / "private.jsonl")
    bob_config = str(work / "jobs" / BOB_JOB / "config.yaml")
    bob_output = str(work / "jobs" / BOB_JOB / "output")
    alice = Client(studio["url"], auth=("alice", PASSWORDS["alice"]), verbose=False)
    base = RunConfig().with_overrides({"name": "alices-run"})
    refused_model = "is not a hub id (org/name), a bundled model"
    refused_data = "is neither one of your uploads nor a bundled sample"
    # the Train form's path fields
    for key, value, words in [
            ("model.name_or_path", bob_output, refused_model),
            ("model.name_or_path", str(work / "users" / "bob" / "uploads"), refused_model),
            ("model.name_or_path", f"{work}/users/alice/../bob/uploads", refused_model),
            ("model.offline_tokenizer", bob_output, refused_model),
            ("data.eval_path", bob_upload, refused_data),
            ("data.eval_path", bob_config, refused_data),
            ("data.eval_path", "/etc/passwd", refused_data)]:
        status, *_ = alice.predict(*launch_args(base.with_overrides({key: value})), api_name="/launch")
        assert status.startswith(f"✖ {key} '{value}' {words}"), (key, value, status)
    # data.path is the Data tab's: a server path handed to its upload, sample or hub-id field is refused
    raw = Session(studio["url"])
    raw.login("alice", PASSWORDS["alice"])
    for value in (bob_upload, bob_config, "/etc/passwd"):
        payload = json.dumps({"data": [{"path": value, "meta": {"_type": "gradio.FileData"}}, "auto", True, "en"]})
        status, body = raw.request("gradio_api/call/upload", payload.encode(), {"Content-Type": "application/json"})
        _status, stream = raw.request(f"gradio_api/call/upload/{json.loads(body)['event_id']}")
        # gradio refuses a file it did not receive as an upload before the handler runs
        assert stream == b'event: error\ndata: {"error": null}\n\n', (value, stream)
        with pytest.raises(AppError, match="is not in the list of choices"):
            alice.predict(value, "auto", True, "en", api_name="/load_sample")
        shown, *_ = alice.predict(value, "auto", True, "en", api_name="/load_hub")
        assert shown.startswith(f"✖ '{value}' is not a hub dataset id"), shown
    assert not list((work / "users" / "alice").rglob("private.jsonl"))
    # output.dir is never the user's to choose: the job writes in its own folder
    status, _yaml, _file, job_id = alice.predict(
        *launch_args(base.with_overrides({"output.dir": str(work / "jobs" / BOB_JOB)})), api_name="/launch")
    assert job_id, status
    alice.predict(job_id, "en", api_name="/stop")
    written = load_yaml_file(work / "jobs" / job_id / "config.yaml")
    assert written["output"]["dir"] == str(work / "jobs" / job_id)
    assert sorted(p.name for p in (work / "jobs" / BOB_JOB).iterdir()) == ["config.yaml", "output"]
    # the Chat tab's base model and the Template tab's tokenizer follow the same rule
    *_, chat_status = alice.predict("hello", [], [], None, bob_output, 16, "en", api_name="/chat")
    assert chat_status.startswith(f"✖ chat.base_model '{bob_output}' {refused_model}")
    alice.predict("demo_alpaca.jsonl", "auto", True, "en", api_name="/load_sample")
    for key in ("model.name_or_path", "model.offline_tokenizer"):
        alice.predict(*launch_args(base.with_overrides({key: bob_output})), api_name="/resolve")   # the run previewed
        preview_status, *_ = alice.predict("en", api_name="/preview")
        assert preview_status.startswith(f"✖ {key} '{bob_output}' {refused_model}"), preview_status
    status, _file = alice.predict(BOB_JOB, "auto", "q8_0", "en", api_name="/export_adapter")
    assert status == f"✖ Export failed: you have no job {BOB_JOB}"


def test_a_model_with_remote_code_never_runs(studio, tmp_path):
    """The attack of the report: a config.json whose auto_map names a module of the user's own."""
    marker = tmp_path / "payload-ran"
    folder = studio["work"] / "users" / "alice" / "uploads" / "evil-model"   # as if an upload got through
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"model_type": "evil", "auto_map": {
        "AutoConfig": "evil.EvilConfig", "AutoModelForCausalLM": "evil.EvilModel"}}))
    (folder / "evil.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
    alice = Client(studio["url"], auth=("alice", PASSWORDS["alice"]), verbose=False)
    cfg = RunConfig().with_overrides({"name": "evil", "data.path": "samples/demo_alpaca.jsonl",
                                      "model.name_or_path": str(folder)})
    status, *_ = alice.predict(*launch_args(cfg.with_overrides({"model.trust_remote_code": True})), api_name="/launch")
    assert "is not a hub id (org/name), a bundled model" in status
    bundled = cfg.with_overrides({"model.name_or_path": RunConfig().model.name_or_path, "model.trust_remote_code": True})
    status, *_ = alice.predict(*launch_args(bundled), api_name="/launch")
    assert status.startswith("✖ model.trust_remote_code: running code shipped with a model is off for your account")
    table, _ = alice.predict(None, "en", api_name="/jobs")
    assert "evil" not in json.dumps(table)
    assert not marker.exists()


def test_logins_are_throttled_and_unknown_names_cost_a_scrypt_too(studio):
    def attempt(name: str, password: str) -> tuple[int, float]:
        began = time.perf_counter()
        status = Session(studio["url"]).login(name, password)
        return status, time.perf_counter() - began

    known, unknown = [], []
    for _ in range(5):
        known.append(attempt("carol", "wrong-password")[1])
        unknown.append(attempt("nobody-here", "wrong-password")[1])
    # Both pay one scrypt; before the fix an unknown name answered ~80 ms sooner than a known one.
    assert statistics.median(unknown) > 0.5 * statistics.median(known)
    assert attempt("carol", PASSWORDS["carol"])[0] == 400            # locked after 5 failures
    assert attempt("nobody-here", "anything")[0] == 400


def test_a_user_removed_from_the_users_file_is_logged_out_without_restart(studio):
    dave = Session(studio["url"])
    assert dave.login("dave", PASSWORDS["dave"]) == 200
    assert dave.request("config")[0] == 200
    data = load_yaml_file(studio["users"])
    del data["users"]["dave"]
    studio["users"].write_text(dump_yaml(data))
    wait_until(lambda: dave.request("config")[0] == 401, 10, what="dave's session to end")
    assert dave.login("dave", PASSWORDS["dave"]) == 400
