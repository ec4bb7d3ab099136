"""The nccl backend's bucketing, overlap hooks, broadcast and scalars, run through gloo on CPU
processes (the same code path; NCCL itself is covered by the gpu tests)."""
from __future__ import annotations

import socket

import pytest

from test_sync_shm import _run_ranks, _sum_rank, check_sums


@pytest.fixture
def free_port(monkeypatch):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(port))  # spawned ranks inherit the environment


@pytest.mark.parametrize("wire", ["fp32", "bf16"])
def test_all_reduce_equals_sum_over_gloo(tmp_path, free_port, wire):
    _, procs = _run_ranks(_sum_rank, 2, wire, str(tmp_path), "nccl")
    assert [p.exitcode for p in procs] == [0, 0]
    check_sums(tmp_path, 2, wire)
