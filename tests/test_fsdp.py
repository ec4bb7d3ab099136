"""Sharded training (`sync.sharding: fsdp`, torch FSDP2 over gloo) on CPU workers with a tiny
random llama: N sharded ranks train exactly what one unsharded rank trains on the union of their
batches, for LoRA and full fine-tuning; a sharded checkpoint resumes exactly; the output a sharded
run writes is a plain HF folder equal to the unsharded run's."""
from __future__ import annotations

import subprocess
import sys

import pytest
from safetensors.torch import load_file

from multiworker_runs import MAX_NORM, ROOT, train, write_config
from trainer_backend.train.events import read_events

pytestmark = pytest.mark.slow
WEIGHTS = {"lora": "adapter_model.safetensors", "full": "model.safetensors"}


def output_weights(job_dir, method: str) -> dict:
    return load_file(str(job_dir / "output" / WEIGHTS[method]))


def run(tmp, model, data, name: str, devices: list, micro: int, accum: int, method: str, sharding: str, **kw):
    """Train a config once per module (a later test may reuse the run)."""
    if (tmp / name / "output").exists():
        return tmp / name
    result = train(write_config(tmp, model, data, name, devices, micro, accum, method=method, sharding=sharding, **kw),
                   timeout=900)  # a loaded 2-core machine runs three ranks slowly
    assert result.returncode == 0, result.stderr[-3000:]
    return tmp / name


@pytest.fixture(scope="module")
def references(multiworker, one_worker):
    """One unsharded worker per method, global batch 12 (4 x 3 accumulation); LoRA's is the
    multi-worker tests' reference run."""
    tmp, model, data = multiworker
    return {"lora": one_worker, "full": run(tmp, model, data, "ref-full", ["cpu"], 4, 3, "full", "none")}


def assert_same_run(ours, ref, method: str) -> None:
    a, b = output_weights(ours, method), output_weights(ref, method)
    assert a.keys() == b.keys() and len(b) > 0
    assert max(float((a[k] - b[k]).abs().max()) for k in b) <= 1e-5
    our_events, ref_events = read_events(ours, "train"), read_events(ref, "train")
    assert [e["step"] for e in our_events] == [1, 2, 3, 4, 5]
    for x, y in zip(our_events, ref_events):
        assert x["loss"] == pytest.approx(y["loss"], abs=1e-5)
        assert x["grad_norm"] == pytest.approx(y["grad_norm"], rel=1e-4)
        assert x["grad_norm"] > MAX_NORM  # clipped: the norm is over all shards, before clipping


@pytest.mark.parametrize("method", ["lora", "full"])
@pytest.mark.parametrize("workers,micro,accum", [(2, 3, 2), (3, 2, 2)])  # global batch 12, as the reference
def test_n_sharded_ranks_equal_one_unsharded_rank_on_the_union(multiworker, references, method, workers, micro, accum):
    tmp, model, data = multiworker
    ours = run(tmp, model, data, f"fsdp{workers}-{method}", ["cpu"] * workers, micro, accum, method, "fsdp")
    assert_same_run(ours, references[method], method)
    assert (ours / "checkpoints" / "step_5" / "sharded").is_dir()  # each rank wrote its own shards
    assert not (ours / "checkpoints" / "step_5" / "trainable.safetensors").exists()


def test_a_sharded_checkpoint_resumes_exactly(multiworker, references):
    """3 steps, then --resume to 5 (constant lr): the same weights and losses as 5 straight steps."""
    tmp, model, data = multiworker
    first = run(tmp, model, data, "fsdp-resume", ["cpu", "cpu"], 3, 2, "lora", "fsdp", steps=3)
    assert (first / "checkpoints" / "step_3" / "sharded").is_dir()
    config = write_config(tmp, model, data, "fsdp-resume", ["cpu", "cpu"], 3, 2, method="lora", sharding="fsdp")
    result = subprocess.run([sys.executable, "-m", "trainer_backend", "train", str(config), "--resume"],
                            cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    started = [e for e in read_events(first, "status") if e["status"] == "started"]
    assert started[-1]["message"] == "resumed from step_3"
    assert_same_run(first, references["lora"], "lora")


def test_a_sharded_run_exports_the_same_merged_model(multiworker, references):
    from trainer_backend.models.export import export_job

    tmp, model, data = multiworker
    sharded = run(tmp, model, data, "fsdp2-lora", ["cpu", "cpu"], 3, 2, "lora", "fsdp")
    ours = load_file(str(export_job(sharded, merge=True) / "model.safetensors"))
    ref = load_file(str(export_job(references["lora"], merge=True) / "model.safetensors"))
    assert ours.keys() == ref.keys()
    assert max(float((ours[k] - ref[k]).abs().max()) for k in ref) <= 1e-5
