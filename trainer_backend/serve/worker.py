"""`python -m trainer_backend.serve.worker --model M [--adapter DIR] [--template T]`: a chat
inference server on a loopback port, holding one model (base, or base + a job's adapter).

It prints `READY <port>` on stdout once the model is loaded, then answers
`POST /chat {"messages": [...], "max_new_tokens": N}` with `{"text": ...}`. Requests must carry the
token the studio passed in STUDIO_WORKER_TOKEN, so other local users cannot drive it.
"""
from __future__ import annotations

import argparse
import hmac
import json
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

TOKEN_HEADER = "X-Worker-Token"
MAX_NEW_TOKENS_CAP = 1024


class ChatModel:
    """One model and its tokenizer; generation is serialized (one request at a time)."""

    def __init__(self, model: str, adapter: str | None, template: str, device: str):
        import torch
        from transformers import AutoModelForCausalLM

        from trainer_backend.templates import load_tokenizer

        # The adapter folder carries the tokenizer with the chat template the job trained with.
        has_tokenizer = adapter and (Path(adapter) / "tokenizer_config.json").exists()
        self.tokenizer = load_tokenizer(adapter if has_tokenizer else model, template=template)
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

        ids = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt",
                                                 return_dict=True)
        ids = {k: v.to(self.device) for k, v in ids.items()}
        with self.lock, torch.inference_mode():
            out = self.model.generate(**ids, max_new_tokens=max_new_tokens, do_sample=False,
                                      pad_token_id=self.tokenizer.pad_token_id or self.tokenizer.eos_token_id)
        prompt_len = ids["input_ids"].shape[1]
        return self.tokenizer.decode(out[0, prompt_len:], skip_special_tokens=True).strip()


def make_handler(chat: ChatModel, token: str):
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
            try:
                req = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                messages = [{"role": m["role"], "content": str(m["content"])} for m in req["messages"]]
                n = max(1, min(int(req.get("max_new_tokens", 128)), MAX_NEW_TOKENS_CAP))
            except (ValueError, KeyError, TypeError) as err:
                return self._send(400, {"error": f"bad request: {err}"})
            self._send(200, {"text": chat.reply(messages, n)})

    return Handler


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m trainer_backend.serve.worker", description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True)
    p.add_argument("--adapter", default=None)
    p.add_argument("--template", default="auto")
    p.add_argument("--device", default="cpu")
    p.add_argument("--port", type=int, default=0)
    args = p.parse_args(argv)
    token = os.environ.get("STUDIO_WORKER_TOKEN", "")
    if not token:
        print("STUDIO_WORKER_TOKEN is not set", file=sys.stderr)
        return 2
    try:
        chat = ChatModel(args.model, args.adapter, args.template, args.device)
    except (OSError, ValueError) as err:
        print(f"cannot load the model: {str(err).splitlines()[0]}", file=sys.stderr)
        return 2
    server = ThreadingHTTPServer(("127.0.0.1", args.port), make_handler(chat, token))
    print(f"READY {server.server_address[1]}", flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
