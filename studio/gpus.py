"""The machine's GPUs with their free memory, from nvidia-smi (none on a CPU-only machine)."""
from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass

QUERY = ["nvidia-smi", "--query-gpu=index,name,memory.total,memory.free", "--format=csv,noheader,nounits"]


@dataclass(frozen=True)
class Gpu:
    index: int
    name: str
    total_gib: float
    free_gib: float

    def label(self) -> str:
        return f"{self.index}: {self.name} ({self.free_gib:.1f} / {self.total_gib:.0f} GiB free)"


def parse_nvidia_smi(text: str) -> list[Gpu]:
    gpus = []
    for line in text.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 4 and parts[0].isdigit():
            gpus.append(Gpu(int(parts[0]), parts[1], float(parts[2]) / 1024, float(parts[3]) / 1024))
    return gpus


def list_gpus(allowed: list[int] | None = None) -> list[Gpu]:
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(QUERY, capture_output=True, text=True, timeout=10, check=True).stdout
    except (subprocess.SubprocessError, OSError):
        return []
    gpus = parse_nvidia_smi(out)
    return [g for g in gpus if allowed is None or g.index in allowed]
