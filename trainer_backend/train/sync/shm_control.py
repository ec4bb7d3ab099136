"""The control block that ranks share: who is alive, how far each rank got, and small scalars.

Each rank writes only its own row (pid, heartbeat, state, counters), so no lock is needed: a
barrier is "every row's counter has reached N". Waiting spins with short sleeps and, every few
tens of milliseconds, checks the lagging ranks: exited, closed, or a heartbeat older than the
timeout (a rank that is stopped or wedged) ends the wait with a message naming that rank.
"""
from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import numpy as np
import torch

from .base import SyncError
from .shm_files import SharedFile, pid_alive

PID, HEARTBEAT, STATE, DEVICE, FINGERPRINT = range(5)
HEADER = 8
SCALARS, BARRIER = 0, 1          # counters; bucket b uses counter FIRST_BUCKET + b
FIRST_BUCKET = 2
MAX_BUCKETS = 1024
ROW = HEADER + FIRST_BUCKET + MAX_BUCKETS + 6  # int64 words, a multiple of 8 (64-byte rows)
MAX_SCALARS = 32
RUNNING, CLOSED = 1, 2
CHECK_EVERY_S = 0.05
MAX_SLEEP_S = 0.0005
STARTUP_TIMEOUT_S = 300.0  # ranks load the model before their first exchange


def _device_code(device: torch.device) -> int:
    return -1 if device.type == "cpu" else (device.index or 0)


def _device_name(code: int) -> str:
    return "cpu" if code < 0 else f"cuda:{code}"


class Control:
    def __init__(self, folder: Path, rank: int, world_size: int, device: torch.device, timeout_s: float):
        self.rank, self.world_size, self.timeout_s = rank, world_size, timeout_s
        words = world_size * ROW
        self._file = SharedFile(folder / "control", words * 8 + 2 * world_size * MAX_SCALARS * 8)
        self.rows = np.frombuffer(self._file.buffer, dtype=np.int64, count=words).reshape(world_size, ROW)
        self.scalars = np.frombuffer(self._file.buffer, dtype=np.float64, count=2 * world_size * MAX_SCALARS,
                                     offset=words * 8).reshape(2, world_size, MAX_SCALARS)
        me = self.rows[rank]
        me[DEVICE] = _device_code(device)
        me[HEARTBEAT] = time.monotonic_ns()
        me[STATE] = RUNNING
        me[PID] = os.getpid()
        self._stop = threading.Event()
        self._beat = threading.Thread(target=self._heartbeat, name=f"sync-heartbeat-{rank}", daemon=True)
        self._beat.start()

    def _heartbeat(self) -> None:
        interval = min(0.5, self.timeout_s / 5)
        while not self._stop.wait(interval):
            self.rows[self.rank, HEARTBEAT] = time.monotonic_ns()

    def describe(self, rank: int) -> str:
        return f"rank {rank} (device {_device_name(int(self.rows[rank, DEVICE]))})"

    def wait_started(self) -> None:
        deadline = time.monotonic() + max(STARTUP_TIMEOUT_S, self.timeout_s)
        while (self.rows[:, PID] == 0).any():
            if time.monotonic() > deadline:
                late = ", ".join(str(r) for r in np.nonzero(self.rows[:, PID] == 0)[0])
                raise SyncError(f"rank {late} did not start within {STARTUP_TIMEOUT_S:g} s; stopping all ranks")
            time.sleep(0.01)

    def arrive(self, counter: int, value: int) -> None:
        self.rows[self.rank, HEADER + counter] = value

    def wait_all(self, counter: int, value: int, cancel: threading.Event | None = None) -> None:
        column = self.rows[:, HEADER + counter]
        sleep_s = 0.0
        next_check = time.monotonic() + CHECK_EVERY_S
        while column.min() < value:
            now = time.monotonic()
            if now >= next_check:
                for peer in np.nonzero(column < value)[0]:
                    self._check_alive(int(peer))
                if cancel is not None and cancel.is_set():
                    raise SyncError("gradient exchange cancelled: this rank is shutting down")
                next_check = now + CHECK_EVERY_S
            time.sleep(sleep_s)
            sleep_s = min(MAX_SLEEP_S, sleep_s * 2 or 2e-5)

    def barrier(self, value: int) -> None:
        self.arrive(BARRIER, value)
        self.wait_all(BARRIER, value)

    def _check_alive(self, peer: int) -> None:
        row = self.rows[peer]
        who = self.describe(peer)
        if row[STATE] == CLOSED:
            raise SyncError(f"{who} left the run; stopping all ranks")
        if not pid_alive(int(row[PID])):
            raise SyncError(f"{who} exited unexpectedly; stopping all ranks")
        silent_s = (time.monotonic_ns() - int(row[HEARTBEAT])) / 1e9
        if silent_s > self.timeout_s:
            raise SyncError(f"{who} stopped responding for {self.timeout_s:g} s; stopping all ranks")

    def close(self) -> None:
        self._stop.set()
        self.rows[self.rank, STATE] = CLOSED

