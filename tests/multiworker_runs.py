"""The real `train` command on CPU workers with a tiny random llama, for the multi-worker and
sharded tests: the data, the config, and a run in a subprocess. The conftest fixtures
`multiworker` (folder, model, data) and `one_worker` (the one-worker LoRA run both compare
against) are made once per pytest run."""
from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import yaml
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parent.parent
MAX_NORM = 0.05  # far below the gradient norms of this run: clipping is active at every step


def write_dataset(path: Path) -> Path:
    rng = random.Random(0)  # uneven rows: 1 to 40 answer words
    rows = [{"instruction": f"Say {i}", "output": " ".join(f"w{rng.randrange(50)}" for _ in range(rng.randint(1, 40)))}
            for i in range(60)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def write_config(tmp: Path, model: Path, data: Path, name: str, devices: list, micro: int, accum: int,
                 steps: int = 5, timeout_s: float = 10.0, precision: str = "fp32", max_norm: float = MAX_NORM,
                 backend: str = "auto", sharding: str = "none", method: str = "lora") -> Path:
    cfg = {
        "method": method,
        "model": {"name_or_path": str(model), "engine": "hf"},
        "data": {"path": str(data)},
        "template": {"max_seq_len": 64, "packing": True},
        "lora": {"r": 8, "alpha": 16},
        "train": {"max_steps": steps, "micro_batch_size": micro, "grad_accum": accum, "lr": 5e-3,
                  "scheduler": "constant", "precision": precision, "gradient_checkpointing": "off", "seed": 0,
                  "max_grad_norm": max_norm},
        "sync": {"devices": devices, "backend": backend, "bucket_mb": 0.05, "timeout_s": timeout_s,
                 "sharding": sharding},
        "output": {"dir": str(tmp / name)},
    }
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def train(config: Path, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "trainer_backend", "train", str(config)], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


def start_train(config: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "trainer_backend", "train", str(config)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def trainable(job_dir: Path) -> dict:
    return load_file(str(job_dir / "checkpoints" / "step_5" / "trainable.safetensors"))
