"""Shared fixtures: the offline assets fetched by scripts/fetch_assets.py, and tiny random models."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("STUDIO_CACHE", ROOT / ".cache"))
SMOLLM2 = CACHE / "models" / "SmolLM2-135M-Instruct"
TOKENIZERS = {
    "smollm2": SMOLLM2,
    "qwen3": CACHE / "tokenizers" / "qwen3",
    "llama3": CACHE / "tokenizers" / "llama3",
    "mistral-v1": CACHE / "tokenizers" / "mistral-v1",
    "mistral-v3": CACHE / "tokenizers" / "mistral-v3",
}
DATA = CACHE / "data"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def pytest_collection_modifyitems(config, items):
    try:
        import torch
        has_cuda = torch.cuda.is_available()
    except ImportError:
        has_cuda = False
    if has_cuda:
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.fail(f"{path} is missing: run `python scripts/fetch_assets.py` first")
    return path


@pytest.fixture(scope="session")
def smollm2_dir() -> Path:
    return _need(SMOLLM2)


@pytest.fixture(scope="session")
def tokenizer_dir():
    return lambda name: _need(TOKENIZERS[name])


@pytest.fixture(scope="session")
def tokenizers(tokenizer_dir):
    """`tokenizers(name, template)`: a real offline tokenizer with a chat template, loaded once."""
    from trainer_backend.templates import load_tokenizer

    cache = {}

    def get(name: str, template: str = "auto"):
        if (name, template) not in cache:
            cache[name, template] = load_tokenizer(str(tokenizer_dir(name)), template)
        return cache[name, template]
    return get


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return _need(DATA)


def make_tiny_llama(folder: Path, seed: int = 0, layers: int = 2, hidden: int = 64) -> Path:
    """A random 2-layer llama with the real SmolLM2 tokenizer and chat template (fast CPU tests)."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tok = AutoTokenizer.from_pretrained(_need(SMOLLM2))
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=hidden, intermediate_size=hidden * 2,
                      num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
                      max_position_embeddings=2048, tie_word_embeddings=True,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                      pad_token_id=tok.pad_token_id)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(cfg).to(torch.float32)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory) -> Path:
    return make_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture
def small_disk(tmp_path):
    """A folder on a 4 MiB tmpfs, for full-disk tests (needs mount rights: skipped elsewhere; the
    full-disk paths also have tests that inject the failure)."""
    import subprocess

    folder = tmp_path / "small"
    folder.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(folder)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    yield folder
    subprocess.run(["umount", "-l", str(folder)], check=True)


@pytest.fixture(scope="session")
def multiworker(tmp_path_factory):
    """(folder, tiny llama, 60 uneven rows) shared by the multi-worker and sharded runs."""
    from multiworker_runs import write_dataset

    tmp = tmp_path_factory.mktemp("multiworker")
    return tmp, make_tiny_llama(tmp / "model"), write_dataset(tmp / "data.jsonl")


@pytest.fixture(scope="session")
def one_worker(multiworker):
    """The job folder of one worker's LoRA run, global batch 12 (4 x 3 accumulation), 5 steps: what N
    workers and N sharded ranks must train exactly."""
    from multiworker_runs import train, write_config

    tmp, model, data = multiworker
    result = train(write_config(tmp, model, data, "one", ["cpu"], micro=4, accum=3))
    assert result.returncode == 0, result.stderr[-2000:]
    return tmp / "one"
