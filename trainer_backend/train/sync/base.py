"""The gradient-sync interface every backend implements (see docs/architecture.md)."""
from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch


class SyncError(BaseException):
    """A peer rank died, hung or left: one line naming the rank, for the user.

    Like SystemExit it derives from BaseException: it aborts this rank because of another rank,
    so the loop's `except Exception` (which reports this rank's own crash) must not claim it."""


@runtime_checkable
class GradSync(Protocol):
    rank: int
    world_size: int

    sharded: bool  # True when each rank holds only a shard of the model (fsdp)

    def prepare_model(self, model: torch.nn.Module) -> None: ...

    def prepare(self, params: list[torch.nn.Parameter]) -> None: ...

    def passes_needed(self, n: int) -> int: ...

    def all_reduce_scalars(self, values: torch.Tensor) -> torch.Tensor: ...

    def before_last_backward(self) -> None: ...

    def finish(self) -> dict: ...

    def close(self) -> None: ...


class Unsharded:
    """What the data-parallel backends share: every rank holds the whole model, so the model is
    used as loaded and a rank may run fewer forward passes than another."""
    sharded = False

    def prepare_model(self, model: torch.nn.Module) -> None:
        pass

    def passes_needed(self, n: int) -> int:
        return n
