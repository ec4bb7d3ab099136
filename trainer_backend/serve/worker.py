"""`python -m trainer_backend.serve.worker SPEC.yaml`: a chat inference server on a loopback port,
holding one model (base, or base + a job's adapter), rendering prompts with the run's whole
TemplateConfig (template, system prompt, thinking) as the trainer did. It runs as a job of kind "chat" (see
trainer_backend.jobs), so the scheduler gives it its GPU; SPEC.yaml is that job's config.yaml:

    model: <folder or hub id>   adapter: <folder or null>   device: cpu | cuda
    template: {name: auto, system_prompt: null, enable_thinking: false, ...}   # the run's TemplateConfig
    token: <hex>                # requests must carry it, so other local users cannot drive the worker
    studio_pid: 4242            # with studio_started: the studio this worker serves; it exits
    studio_started: 1700000000.0  # when that process is gone (a killed studio leaves no worker)
    idle_exit_s: 900            # and after this long without a request, giving its GPU back

Once the model is loaded it writes `endpoint.json` (`{"port": N}`) next to SPEC.yaml, then answers
`POST /chat {"messages": [...], "max_new_tokens": N}` with `{"text": ...}`.
"""
from __future__ import annotations

import argparse
import hmac
import json
import os
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from trainer_backend.config import TemplateConfig
from trainer_backend.contracts import write_json

TOKEN_HEADER = "X-Worker-Token"
MAX_NEW_TOKENS_CAP = 1024


class ChatModel:
    """One model and its tokenizer; generation is serialized (one request at a time)."""

    def __init__(self, model: str, adapter: str | None, template: TemplateConfig, device: str):
        import torch
        from transformers import AutoModelForCausalLM

        from trainer_backend.templates import load_tokenizer

        # The adapter folder carries the tokenizer with the chat template the job trained with.
        has_tokenizer = adapter and (Path(adapter) / "tokenizer_config.json").exists()
        self.tokenizer = load_tokenizer(adapter if has_tokenizer else model, template=template.name)
        self.template = template
        self.device = torch.device(device)
        dtype = torch.float32 if self.device.type == "cpu" else "auto"
        base = AutoModelForCausalLM.from_pretrained(model, dtype=dtype)
        if adapter:
            from peft import PeftModel
            base = PeftModel.from_pretrained(base, adapter)
        self.model = base.to(self.device).eval()
        self.lock = threading.Lock()

    def reply(self, messages: list[dict], max_new_tokens: int) -> str:
        import torch

        from trainer_backend.data import Conversation, Message
        from trainer_backend.templates import prompt_ids

        conv = Conversation(0, tuple(Message(m["role"], m["content"]) for m in messages))
        prompt = torch.tensor([prompt_ids(conv, self.tokenizer, self.template)], device=self.device)
        ids = {"input_ids": prompt, "attention_mask": torch.ones_like(prompt)}
        with self.lock, torch.inference_mode():
            out = self.model.generate(**ids, max_new_tokens=max_new_tokens, do_sample=False,
                                      pad_token_id=self.tokenizer.pad_token_id or self.tokenizer.eos_token_id)
        prompt_len = ids["input_ids"].shape[1]
        return self.tokenizer.decode(out[0, prompt_len:], skip_special_tokens=True).strip()


ENDPOINT_FILE = "endpoint.json"
WATCH_EVERY_S = 2.0


def make_handler(chat: ChatModel, token: str, last_request: list[float]):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:  # the studio reads only our own log lines
            pass

        def _send(self, code: int, payload: dict) -> None:
            body = json.dumps(payload).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _authorized(self) -> bool:
            return hmac.compare_digest(self.headers.get(TOKEN_HEADER, ""), token)

        def do_GET(self) -> None:
            self._send(200 if self._authorized() else 403, {"ok": self._authorized()})

        def do_POST(self) -> None:
            if not self._authorized():
                return self._send(403, {"error": "bad token"})
            last_request[0] = time.monotonic()
            try:
                req = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                messages = [{"role": m["role"], "content": str(m["content"])} for m in req["messages"]]
                n = max(1, min(int(req.get("max_new_tokens", 128)), MAX_NEW_TOKENS_CAP))
            except (ValueError, KeyError, TypeError) as err:
                return self._send(400, {"error": f"bad request: {err}"})
            self._send(200, {"text": chat.reply(messages, n)})

    return Handler


def watch(spec: dict, last_request: list[float]) -> None:
    """Exit when the studio that started this worker is gone, or after idle_exit_s without a request."""
    from trainer_backend.jobs.processes import alive

    while True:
        time.sleep(WATCH_EVERY_S)
        if not alive(spec["studio_pid"], spec["studio_started"]):
            print("the studio that started this worker is gone; exiting", file=sys.stderr, flush=True)
            os._exit(0)
        if time.monotonic() - last_request[0] > spec["idle_exit_s"]:
            print(f"no request for {spec['idle_exit_s']} s; exiting", file=sys.stderr, flush=True)
            os._exit(0)


def write_endpoint(folder: Path, port: int) -> None:
    write_json(folder / ENDPOINT_FILE, {"port": port})


def main(argv: list[str] | None = None) -> int:
    from trainer_backend.safe_yaml import YamlError, load_yaml_file

    p = argparse.ArgumentParser(prog="python -m trainer_backend.serve.worker", description=__doc__.splitlines()[0])
    p.add_argument("spec", type=Path)
    args = p.parse_args(argv)
    try:
        spec = load_yaml_file(args.spec)
    except (OSError, YamlError) as err:
        print(f"cannot read the worker spec: {err}", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))   # a stop request: nothing to save
    last_request = [time.monotonic()]
    threading.Thread(target=watch, args=(spec, last_request), daemon=True).start()
    try:
        chat = ChatModel(spec["model"], spec.get("adapter"), TemplateConfig.model_validate(spec.get("template") or {}),
                         spec["device"])
    except (OSError, ValueError) as err:
        print(f"cannot load the model: {str(err).splitlines()[0]}", file=sys.stderr)
        return 2
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(chat, spec["token"], last_request))
    write_endpoint(args.spec.parent, server.server_address[1])
    print(f"READY {server.server_address[1]}", flush=True)
    last_request[0] = time.monotonic()
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
