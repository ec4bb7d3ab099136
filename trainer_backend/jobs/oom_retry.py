"""Automatic out-of-memory retry: half the micro-batch, twice the accumulation, same effective batch."""
from __future__ import annotations

from pathlib import Path

from ..config import load_config
from ..messages import Notice, msg

MAX_OOM_RETRIES = 2


def halve_micro_batch(config_path: Path) -> Notice | None:
    """Rewrite the job's config for a retry and describe the change; None when the micro-batch cannot
    be halved without changing the effective batch (it is 1, odd, or `auto`)."""
    config = load_config(config_path)
    micro, accum = config.train.micro_batch_size, config.train.grad_accum
    if micro == "auto" or micro < 2 or micro % 2:
        return None
    config = config.with_overrides({"train.micro_batch_size": micro // 2, "train.grad_accum": accum * 2})
    config.save(config_path)
    return msg("job.retry_change", micro=micro, half=micro // 2, accum=accum, double=accum * 2, batch=micro * accum)
