"""The studio's evaluation views: base -> fine-tuned metrics and sample answers by step in the
Monitor, and the Jobs tab's comparison of several jobs of one user (another user's job is refused
exactly as an unknown one)."""
from __future__ import annotations

import json

import pytest

from fake_worker import FAKE_COMMAND, fake_config
from studio.charts import new_series
from studio.evaluation_view import (absorb_evaluation, compare_figure, compared_jobs, config_differences,
                                    metrics_markdown, samples_frame)
from trainer_backend.jobs import JobRunner

EVENTS = [
    {"kind": "eval_metrics", "step": 0, "model": "base", "metrics": {"mae": 20.0, "exact_match": 0.0}, "rows": 29},
    {"kind": "samples", "step": 0, "model": "base", "samples": [{"row": 3, "prompt": "p", "reference": "45.00", "answer": "I think"}]},
    {"kind": "train", "step": 1, "loss": 2.5}, {"kind": "train", "step": 2, "loss": 1.5},
    {"kind": "eval", "step": 2, "loss": 1.7},
    {"kind": "eval_metrics", "step": 2, "model": "fine-tuned", "metrics": {"mae": 12.5, "exact_match": 10.0}, "rows": 29},
    {"kind": "samples", "step": 2, "model": "fine-tuned", "samples": [{"row": 3, "prompt": "p", "reference": "45.00", "answer": "44.99"}]},
]


def test_monitor_shows_base_to_latest_fine_tuned_and_samples_by_step():
    series = new_series("job")
    assert absorb_evaluation(series, EVENTS) is True
    assert absorb_evaluation(series, [{"kind": "train", "step": 3, "loss": 1.0}]) is False
    md = metrics_markdown(series.metrics, "en")
    assert "| mae (lower is better) | 20 | 12.5 | -7.5 |" in md and "| exact_match | 0 | 10 | +10 |" in md
    assert "fine-tuned (step 2)" in md and "29 rows" in md
    assert "càng thấp càng tốt" in metrics_markdown(series.metrics, "vi")
    frame = samples_frame(series.samples)
    assert frame[["step", "model", "answer"]].values.tolist() == [[2, "fine-tuned", "44.99"], [0, "base", "I think"]]
    assert metrics_markdown([], "en") == ""


def test_config_differences_name_the_keys_that_differ():
    a = fake_config().with_overrides({"train.lr": 1e-4, "output.dir": "/x/a"}).to_yaml()
    b = fake_config().with_overrides({"train.lr": 5e-4, "output.dir": "/x/b", "eval.metrics": ["numeric"],
                                      "data.eval_ratio": 0.1}).to_yaml()
    diff = config_differences([("A", a), ("B", b)])
    assert diff.to_dict("records") == [
        {"key": "data.eval_ratio", "A": "0.0", "B": "0.1"},
        {"key": "train.lr", "A": "0.0001", "B": "0.0005"},
        {"key": "eval.metrics", "A": "[]", "B": "[numeric]"}]
    assert config_differences([("A", a), ("A2", a)]).empty


@pytest.fixture()
def runner(tmp_path) -> JobRunner:
    return JobRunner(tmp_path, gpus=[], min_free_gib=0, train_command=FAKE_COMMAND)


def write_events(runner: JobRunner, job_id: str, events: list[dict]) -> None:
    for info in (j for user in ("ann", "bob") for j in runner.list(user) if j.id == job_id):
        info.job_dir.joinpath("events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))


def test_compare_overlays_a_users_own_jobs_and_refuses_another_users(runner):
    first = runner.submit(fake_config().with_overrides({"name": "lr-low"}), "ann")
    second = runner.submit(fake_config().with_overrides({"name": "lr-high", "train.lr": 5e-4}), "ann")
    bobs = runner.submit(fake_config().with_overrides({"name": "secret"}), "bob")
    for job in (first, second, bobs):
        write_events(runner, job, EVENTS)
    curves, configs = compared_jobs(runner, "ann", [first, second])
    assert [label for label, _ in curves] == [f"lr-low · {first}", f"lr-high · {second}"]
    figure = compare_figure(curves, "en")
    panels = {a.text for a in figure.layout.annotations}
    assert panels == {"train loss", "eval loss", "mae", "exact_match"}
    mae = [tr for tr in figure.data if tr.xaxis == "x3" or tr.yaxis == "y3"]
    assert [(tr.name, list(tr.x), list(tr.y)) for tr in mae] == [
        (f"lr-low · {first}", [0, 2], [20.0, 12.5]), (f"lr-high · {second}", [0, 2], [20.0, 12.5])]
    assert "train.lr" in set(config_differences(configs)["key"])
    with pytest.raises(PermissionError, match=f"you have no job {bobs}"):
        compared_jobs(runner, "ann", [first, bobs])
    assert bobs not in {j.id for j in runner.list("ann")}
