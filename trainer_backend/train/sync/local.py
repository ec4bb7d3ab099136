"""The single-worker GradSync: nothing to exchange, so every call is the identity."""
from __future__ import annotations

import torch

from .base import Unsharded


class LocalSync(Unsharded):
    def __init__(self) -> None:
        self.rank = 0
        self.world_size = 1

    def prepare(self, params: list[torch.nn.Parameter]) -> None:
        pass

    def all_reduce_scalars(self, values: torch.Tensor) -> torch.Tensor:
        return values

    def before_last_backward(self) -> None:
        pass

    def finish(self) -> dict:
        return {"sync_ms": 0, "bytes": 0}

    def close(self) -> None:
        pass
