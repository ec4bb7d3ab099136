"""The shm backend across real processes: sums, scalars, identical start, liveness, cleanup."""
from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import torch

from trainer_backend.config import SyncConfig
from trainer_backend.train.sync import SyncError, make_sync
from trainer_backend.train.sync.shm_files import claim, job_folder, release

SHAPES = [(7,), (13, 5), (1,), (1001,), (3, 3, 3), (64,)]
ROUNDS = 3


def _grads(rank: int, step: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(1000 * step + rank)
    return [torch.randn(s, generator=g) * (rank + 1) for s in SHAPES]


def _sum_rank(job_id: str, rank: int, world: int, wire: str, out_dir: str, backend: str = "shm") -> None:
    sync = make_sync(SyncConfig(backend=backend, devices=["cpu"] * world, bucket_mb=0.001, wire_dtype=wire),
                     rank, world, "cpu", job_id)
    torch.manual_seed(rank)  # different starting weights on purpose: prepare() must unify them
    params = [torch.nn.Parameter(torch.randn(s)) for s in SHAPES]
    sync.prepare(params)
    start = [p.detach().clone() for p in params]
    results = []
    for step in range(ROUNDS):
        for p in params:
            p.grad = None
        sync.before_last_backward()
        # The backward fires the hooks, so buckets move while later gradients are still computed.
        sum((p * g).sum() for p, g in zip(params, _grads(rank, step))).backward()
        stats = sync.finish()
        results.append([p.grad.clone() for p in params])
    scalars = sync.all_reduce_scalars(torch.tensor([rank + 1.0, 0.1 * rank, 1e15], dtype=torch.float64))
    sync.close()
    torch.save({"start": start, "grads": results, "scalars": scalars, "stats": stats}, f"{out_dir}/{rank}.pt")


@contextlib.contextmanager
def _started_ranks(target, world: int, *args):
    """One spawned process per rank on a freshly claimed job folder; whatever is still alive at the
    end is killed and the folder released."""
    job_id = f"test-sync-{uuid.uuid4().hex[:8]}"
    claim(job_id)
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=target, args=(job_id, r, world, *args)) for r in range(world)]
    try:
        for p in procs:
            p.start()
        yield job_id, procs
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
                p.join()
        release(job_folder(job_id))


def _run_ranks(target, world: int, *args, timeout: float = 90) -> tuple[str, list]:
    with _started_ranks(target, world, *args) as (job_id, procs):
        deadline = time.monotonic() + timeout
        for p in procs:
            p.join(max(0.1, deadline - time.monotonic()))
        return job_id, procs


def _plant_stale_folder() -> Path:
    """What a killed run leaves: a folder with garbage counters whose owner process is gone."""
    gone = subprocess.Popen(["true"])
    gone.wait()
    stale = job_folder(f"test-sync-stale-{uuid.uuid4().hex[:8]}")
    stale.mkdir(parents=True)
    (stale / ".owner-pid").write_text(str(gone.pid))
    (stale / "control").write_bytes(b"\xff" * 65536)
    return stale


@pytest.mark.parametrize("world,wire", [(2, "bf16"), (3, "fp32")])
def test_all_reduce_equals_sum(tmp_path, world, wire):
    stale = _plant_stale_folder()
    job_id, procs = _run_ranks(_sum_rank, world, wire, str(tmp_path))
    assert [p.exitcode for p in procs] == [0] * world
    assert not job_folder(job_id).exists(), "ranks remove their folder when they close"
    assert not stale.exists(), "starting a run removes the folders of dead runs"
    check_sums(tmp_path, world, wire)


def check_sums(tmp_path: Path, world: int, wire: str) -> None:
    got = [torch.load(tmp_path / f"{r}.pt") for r in range(world)]
    for r in range(world):
        for a, b in zip(got[r]["start"], got[0]["start"]):
            assert torch.equal(a, b), "prepare() must give every rank rank 0's weights"
    for step in range(ROUNDS):
        parts = [_grads(r, step) for r in range(world)]
        for i in range(len(SHAPES)):
            exact = sum(p[i].double() for p in parts)
            for r in range(world):
                err = (got[r]["grads"][step][i].double() - exact).abs()
                if wire == "fp32":
                    assert err.max() <= 1e-6
                else:  # each input and the output are rounded to bf16: 2^-8 relative each
                    bound = 2 ** -8 * (sum(p[i].double().abs() for p in parts) + exact.abs())
                    assert (err <= bound).all()
                assert torch.equal(got[r]["grads"][step][i], got[0]["grads"][step][i]), "ranks must agree bit for bit"
    expected = torch.tensor([world * (world + 1) / 2, 0.1 * sum(range(world)), world * 1e15], dtype=torch.float64)
    for r in range(world):
        assert got[r]["scalars"].dtype == torch.float64
        assert torch.allclose(got[r]["scalars"], expected, rtol=0, atol=1e-12)
    element = 4 if wire == "fp32" else 2
    assert got[0]["stats"]["bytes"] == sum(torch.Size(s).numel() for s in SHAPES) * element


def _liveness_rank(job_id: str, rank: int, world: int, fate: str, out_dir: str) -> None:
    sync = make_sync(SyncConfig(backend="shm", devices=["cpu"] * world, timeout_s=1.0), rank, world, "cpu", job_id)
    params = [torch.nn.Parameter(torch.ones(10))]
    sync.prepare(params)
    Path(out_dir, f"ready{rank}").touch()
    if rank == 1 and fate == "dies":
        os._exit(17)
    if rank == 1 and fate == "hangs":
        time.sleep(3600)
    time.sleep(0.2)
    params[0].grad = torch.ones(10)
    start = time.monotonic()
    try:
        sync.finish()
    except SyncError as err:
        Path(out_dir, "message").write_text(f"{time.monotonic() - start:.2f} {err}")
        raise SystemExit(4)
    finally:
        sync.close()


@pytest.mark.parametrize("fate,words", [("dies", "exited unexpectedly"), ("hangs", "stopped responding for 1 s")])
def test_dead_or_hung_rank_is_named(tmp_path, fate, words):
    with _started_ranks(_liveness_rank, 2, fate, str(tmp_path)) as (_, procs):
        if fate == "hangs":  # a stopped process keeps its pid but its heartbeat goes silent
            while not (tmp_path / "ready1").exists():
                time.sleep(0.05)
            os.kill(procs[1].pid, signal.SIGSTOP)
        procs[0].join(30)
        assert procs[0].exitcode == 4
        seconds, message = (tmp_path / "message").read_text().split(" ", 1)
        assert message == f"rank 1 (device cpu) {words}; stopping all ranks"
        assert float(seconds) < 3.0


def test_claim_refuses_a_running_job():
    job_id = f"test-sync-{uuid.uuid4().hex[:8]}"
    folder = claim(job_id)
    try:
        (folder / ".owner-pid").write_text(str(os.getppid()))  # someone else, alive
        with pytest.raises(RuntimeError, match="already running"):
            claim(job_id)
    finally:
        release(folder)
