"""Held-out evaluation by generation: the prompts are the training render's (the tokenizer's own
chat template with the generation prompt is the reference), a run records base -> fine-tuned
metrics and sample answers as events, and `evaluate` on the finished job agrees with them."""
from __future__ import annotations

import json
import math

import pytest

from trainer_backend.__main__ import main
from trainer_backend.config import ConfigError, RunConfig, TemplateConfig, load_config
from trainer_backend.data import Conversation, Message
from trainer_backend.evaluation.heldout import HeldOut, eval_row, typed_prompt_rows
from trainer_backend.templates import build_examples
from trainer_backend.train.events import read_events

from test_train_cli import cli

QA = [("What is the capital of France?", "ANSWER: Paris"), ("Give the opposite of: small", "ANSWER: big")]


def conversations(pairs=QA, system=None) -> list[Conversation]:
    head = (Message("system", system),) if system else ()
    return [Conversation(i, head + (Message("user", q), Message("assistant", a))) for i, (q, a) in enumerate(pairs)]


@pytest.mark.parametrize("name", ["smollm2", "qwen3", "llama3"])
def test_prompt_is_the_chat_template_generation_prompt(tokenizers, name):
    tokenizer = tokenizers(name)
    examples, _ = build_examples(conversations(system="Answer briefly."), tokenizer, TemplateConfig())
    for conv, example in zip(conversations(system="Answer briefly."), examples):
        messages = [{"role": m.role, "content": m.content} for m in conv.messages]
        expected = tokenizer.apply_chat_template(messages[:-1], add_generation_prompt=True, tokenize=True,
                                                 return_dict=True)["input_ids"]
        row = eval_row(example, tokenizer)
        assert row.prompt_ids == expected
        assert row.reference == messages[-1]["content"]
        assert messages[-2]["content"] in row.prompt


def test_typed_prompts_render_like_a_one_turn_row(tokenizers):
    tokenizer = tokenizers("smollm2")
    cfg = RunConfig(data={"eval_ratio": 0.1}, template={"system_prompt": "Be short."})
    (row,) = typed_prompt_rows(["Say hi"], tokenizer, cfg)
    expected = tokenizer.apply_chat_template([{"role": "system", "content": "Be short."}, {"role": "user", "content": "Say hi"}],
                                             add_generation_prompt=True, tokenize=True, return_dict=True)["input_ids"]
    assert (row.row, row.prompt_ids, row.prompt, row.reference) == (-1, expected, "Say hi", None)


def test_metrics_need_held_out_rows_and_a_prompt():
    with pytest.raises(ConfigError, match="data.eval_ratio"):
        load_config("smollm2-135m-demo", ["eval.metrics=[exact_match]"])
    cfg = RunConfig(data={"eval_ratio": 0.1}, template={"loss": "full"}, eval={"metrics": ["token_f1"]})
    with pytest.raises(ConfigError, match="template.loss full"):
        HeldOut(cfg, None, [], 0, "hf")


def test_a_run_records_base_then_fine_tuned_and_evaluate_agrees(tiny_llama_dir, tmp_path):
    job = tmp_path / "job"
    metrics = "[exact_match,token_f1,rouge_l,bleu,chrf,numeric,perplexity]"
    assert main(cli(tiny_llama_dir, job, "data.eval_ratio=0.05", "train.eval_every=2", f"eval.metrics={metrics}",
                    "eval.samples=2", "eval.sample_prompts=[Hello there]", "eval.max_new_tokens=6")) == 0
    measured = read_events(job, "eval_metrics")
    assert [(e["step"], e["model"]) for e in measured] == [(0, "base"), (2, "fine-tuned"), (4, "fine-tuned")]
    assert set(measured[0]["metrics"]) == {"exact_match", "token_f1", "rouge_l", "bleu", "chrf", "mae", "unparsable",
                                           "perplexity"}
    losses = {e["step"]: e["loss"] for e in read_events(job, "eval")}
    assert measured[2]["metrics"]["perplexity"] == pytest.approx(math.exp(losses[4]))
    assert measured[0]["rows"] == 10   # ceil(0.05 x 200) held-out rows
    samples = read_events(job, "samples")
    assert [e["step"] for e in samples] == [0, 2, 4]
    assert [s["row"] for s in samples[0]["samples"]][2:] == [-1] and samples[0]["samples"][2]["prompt"] == "Hello there"
    base_answers = [json.loads(x) for x in (job / "eval" / "step_000000_base.jsonl").read_text().splitlines()]

    # The same evaluation on the finished job: the adapter disabled gives the base of step 0,
    # enabled the model of the last step.
    assert main(["evaluate", str(job)]) == 0
    report = json.loads((job / "eval" / "report.json").read_text())
    assert report["rows"] == 10 and len(report["predictions"]) == 10
    assert [p["base"] for p in report["predictions"]] == [a["answer"] for a in base_answers]
    assert report["metrics"]["base"]["perplexity"] == pytest.approx(measured[0]["metrics"]["perplexity"], rel=1e-4)
    assert report["metrics"]["fine-tuned"]["perplexity"] == pytest.approx(math.exp(losses[4]), rel=1e-4)
    last = [json.loads(x) for x in (job / "eval" / "step_000004_fine-tuned.jsonl").read_text().splitlines()]
    assert [p["fine-tuned"] for p in report["predictions"]] == [a["answer"] for a in last]
    md = (job / "eval" / "report.md").read_text()
    assert "| metric | base | fine-tuned | change |" in md and "| perplexity (lower is better) |" in md


def test_evaluate_on_another_file_and_bad_input(tiny_llama_dir, tmp_path, capsys):
    job = tmp_path / "job"
    assert main(cli(tiny_llama_dir, job, "train.max_steps=1")) == 0
    assert main(["evaluate", str(job)]) == 2
    assert "no held-out rows" in capsys.readouterr().err
    data = tmp_path / "qa.jsonl"
    data.write_text("".join(json.dumps({"instruction": q, "output": "It costs $12"}) + "\n" for q, _ in QA))
    assert main(["evaluate", str(job), "--data", str(data), "--metrics", "numeric", "--out", str(tmp_path / "r")]) == 0
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    assert report["rows"] == 2 and set(report["metrics"]["base"]) == {"mae", "unparsable"}
    assert [p["reference"] for p in report["predictions"]] == ["It costs $12"] * 2
    assert main(["evaluate", str(job), "--data", str(data), "--metrics", "bogus"]) == 2
    assert "unknown ['bogus']" in capsys.readouterr().err
    assert main(["evaluate", str(tmp_path)]) == 2
    assert "not a job directory" in capsys.readouterr().err


def train_losses(job) -> list[float]:
    return [e["loss"] for e in read_events(job, "train")]


@pytest.mark.parametrize("engine, devices", [("hf", "[cpu]"), pytest.param("unsloth", "[0]", marks=pytest.mark.gpu)])
def test_evaluating_does_not_change_the_training_trajectory(tiny_llama_dir, tmp_path, engine, devices):
    """Sampled answers (temperature > 0) and LoRA dropout both draw random numbers, and generation
    switches the model to eval (and, on unsloth, to its inference path): none of it may leak into
    the steps that follow."""
    common = ["data.eval_ratio=0.05", "train.eval_every=1", "lora.dropout=0.1", "train.max_steps=3",
              f"model.engine={engine}", f"sync.devices={devices}", "train.precision=" + ("fp32" if engine == "hf" else "bf16")]
    plain, evaluated = tmp_path / "plain", tmp_path / "evaluated"
    assert main(cli(tiny_llama_dir, plain, *common)) == 0
    assert main(cli(tiny_llama_dir, evaluated, *common, "eval.metrics=[chrf]", "eval.temperature=0.8",
                    "eval.max_new_tokens=4", "eval.max_rows=4")) == 0
    assert train_losses(evaluated) == train_losses(plain)
    assert [(e["step"], e["model"]) for e in read_events(evaluated, "eval_metrics")] == [
        (0, "base"), (1, "fine-tuned"), (2, "fine-tuned"), (3, "fine-tuned")]


def test_out_of_memory_while_answering_skips_the_measurement_and_says_why(tmp_path):
    import torch

    from trainer_backend.evaluation.heldout import TrainingEval
    from trainer_backend.train.events import EventLog

    class Exhausted:
        def measure(self, model, which, loss):
            raise torch.OutOfMemoryError("CUDA out of memory")

    events = EventLog(tmp_path)
    TrainingEval(Exhausted(), tmp_path, events, primary=True)(None, 5, 1.0)
    assert read_events(tmp_path) == []
    assert ("step 5: fine-tuned metrics skipped: out of GPU memory while generating answers; lower eval.batch_size"
            in (tmp_path / "train.log").read_text())
