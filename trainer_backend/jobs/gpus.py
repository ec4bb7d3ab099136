"""Which GPUs this machine has, asked of nvidia-smi so the studio process never initializes CUDA."""
from __future__ import annotations

import shutil
import subprocess


def detect_gpus(timeout_s: float = 10.0) -> list[int]:
    """Indices of the NVIDIA GPUs, [] when there is no driver or no GPU."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return []
    try:
        out = subprocess.run([exe, "--query-gpu=index,memory.total,memory.used", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=timeout_s, check=True).stdout
    except (subprocess.SubprocessError, OSError):
        return []
    return parse_gpu_indices(out)


def parse_gpu_indices(csv_text: str) -> list[int]:
    indices = []
    for line in csv_text.splitlines():
        first = line.split(",")[0].strip()
        if first.isdigit():
            indices.append(int(first))
    return indices
