"""Generation-based evaluation of held-out rows: the prompts the model answers, the answers, the
metrics. The trainer runs it at each eval (base once, then the model being trained); the
`evaluate` command runs the same functions on a finished job.

A held-out row's prompt is the tokens of its rendered example before its last trained run, i.e.
the context of the last assistant turn exactly as the trainer renders it (same template, same
system prompt, same tokenization); its reference is that turn as trained, decoded without special
tokens. What a run is measured on is therefore what it was trained to produce.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Sequence

from ..config import GENERATION_METRICS, SHARDED_GENERATION, ConfigError, RunConfig
from ..data import Conversation, Message
from ..templates import LEADING_REASONING, Example, render_and_mask_many
from . import metrics as M

BASE, FINE_TUNED = "base", "fine-tuned"
PROMPT_SHOWN_CHARS = 400


@dataclass(frozen=True)
class EvalRow:
    row: int               # the data row; typed sample prompts are -1, -2, ...
    prompt_ids: list[int]
    prompt: str            # the last turn of the prompt as text, for tables
    reference: str | None  # None for a typed prompt


@dataclass(frozen=True)
class Answer:
    row: int
    prompt: str
    reference: str | None
    answer: str


def _last_trained_run(trained: Sequence[bool]) -> tuple[int, int]:
    end = max(i for i, t in enumerate(trained) if t) + 1
    start = end
    while start > 0 and trained[start - 1]:
        start -= 1
    return start, end


def final_answer(text: str) -> str:
    """The answer without the leading reasoning block of thinking templates (Qwen3 renders an
    empty one even with thinking off): metrics score what the user reads last."""
    return LEADING_REASONING.sub("", text.strip()).strip()


def eval_row(example: Example, tokenizer) -> EvalRow:
    start, end = _last_trained_run(example.trained)
    previous = max((i + 1 for i, t in enumerate(example.trained[:start]) if t), default=0)
    prompt = tokenizer.decode(example.input_ids[previous:start], skip_special_tokens=True).strip()
    reference = final_answer(tokenizer.decode(example.input_ids[start:end], skip_special_tokens=True))
    return EvalRow(example.row, example.input_ids[:start], prompt[-PROMPT_SHOWN_CHARS:], reference)


def check_evaluable(cfg: RunConfig) -> None:
    if cfg.eval.generates and cfg.sync.sharding == "fsdp":   # sharding: auto may resolve to fsdp at start
        raise ConfigError(SHARDED_GENERATION)
    if cfg.eval.generates and cfg.template.loss == "full":
        raise ConfigError("'eval.metrics': answers are measured against the last assistant turn, and "
                          "template.loss full trains the prompt too, so no row has a prompt to answer; "
                          "use template.loss response_only or last_turn, or only the perplexity metric")


def typed_prompt_rows(prompts: Sequence[str], tokenizer, cfg: RunConfig) -> list[EvalRow]:
    """Prompts a user typed, rendered as one user turn by the trainer's render function (the
    assistant turn is a placeholder that only marks where the answer starts)."""
    convs = [Conversation(row=-1 - i, messages=(Message("user", p), Message("assistant", "…")))
             for i, p in enumerate(prompts)]
    tcfg = cfg.template.model_copy(update={"loss": "last_turn"})   # token ids never depend on the loss mode
    examples, errors = render_and_mask_many(convs, tokenizer, tcfg)
    if errors:
        raise ConfigError(f"'eval.sample_prompts': prompt {-errors[0].row}: {errors[0].message}")
    return [EvalRow(e.row, eval_row(e, tokenizer).prompt_ids, prompts[-1 - e.row][-PROMPT_SHOWN_CHARS:], None)
            for e in examples]


@dataclass
class Measurement:
    model: str                              # base | fine-tuned
    metrics: dict[str, float | None]
    answers: list[Answer]                   # the metric rows, in order
    samples: list[Answer]                   # the rows the Monitor shows


class HeldOut:
    """The rows one run is measured on, and how to answer them."""

    def __init__(self, cfg: RunConfig, tokenizer, evals: Sequence[Example], pad_id: int, engine: str):
        check_evaluable(cfg)
        self.cfg, self.tokenizer, self.pad_id, self.engine = cfg, tokenizer, pad_id, engine
        e = cfg.eval
        rows = [eval_row(x, tokenizer) for x in evals[:max(e.max_rows, e.samples)]] if e.generates else []
        scored = bool(set(e.metrics) & set(GENERATION_METRICS))
        self.metric_rows = rows[:e.max_rows] if scored else []
        self.sample_rows = rows[:e.samples] + typed_prompt_rows(e.sample_prompts, tokenizer, cfg)

    def answer(self, model, rows: Sequence[EvalRow]) -> list[str]:
        from ..models.generate import Sampling, generate
        from ..serve.preview import end_of_turn_ids

        if not rows:
            return []
        e = self.cfg.eval
        sampling = Sampling(e.max_new_tokens, e.temperature, e.top_p, self.cfg.train.seed)
        ids = generate(model, [r.prompt_ids for r in rows], pad_id=self.pad_id,
                       stop_ids=sorted(end_of_turn_ids(self.tokenizer)), sampling=sampling,
                       batch_size=e.batch_size, engine=self.engine)
        return [final_answer(self.tokenizer.decode(a, skip_special_tokens=True)) for a in ids]

    def measure(self, model, which: str, loss: float | None) -> Measurement:
        """Answer the metric rows and the sample rows (each once) and score the answers."""
        todo = {r.row: r for r in [*self.metric_rows, *self.sample_rows]}
        rows = list(todo.values())
        by_row = {r.row: Answer(r.row, r.prompt, r.reference, a) for r, a in zip(rows, self.answer(model, rows))}
        answers = [by_row[r.row] for r in self.metric_rows]
        scores = M.score(self.cfg.eval.metrics, [a.answer for a in answers], [a.reference for a in answers])
        if "perplexity" in self.cfg.eval.metrics:
            scores["perplexity"] = M.perplexity(loss)
        return Measurement(which, scores, answers, [by_row[r.row] for r in self.sample_rows])


def write_answers(path: Path, measurement: Measurement) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for a in measurement.answers:
            f.write(json.dumps(asdict(a), ensure_ascii=False) + "\n")


class TrainingEval:
    """The held-out evaluation of a training run: `start` measures the base model (before the
    first step, so the weights are the base's whatever the method; a resumed run keeps the base
    measured by its first attempt), each call measures the model at that step. Every rank calls
    both, because the perplexity's eval loss is summed over ranks; rank 0 alone generates."""

    def __init__(self, held_out: HeldOut, job_dir: Path, events, primary: bool):
        self.held_out, self.job_dir, self.events, self.primary = held_out, Path(job_dir), events, primary

    @classmethod
    def start(cls, model, cfg: RunConfig, tokenizer, evals: Sequence[Example], pad_id: int, job_dir: Path, events,
              primary: bool, eval_loss: Callable[[], float]) -> "TrainingEval | None":
        if not evals or not cfg.eval.metrics and not cfg.eval.generates:
            return None
        run = cls(HeldOut(cfg, tokenizer, evals, pad_id, cfg.model.engine), job_dir, events, primary)
        from ..train.events import read_events

        if not any(e.get("model") == BASE for e in read_events(job_dir, "eval_metrics")):
            run.record(model, 0, BASE, eval_loss() if "perplexity" in cfg.eval.metrics else None)
        return run

    def __call__(self, model, step: int, loss: float) -> None:
        self.record(model, step, FINE_TUNED, loss)

    def record(self, model, step: int, which: str, loss: float | None) -> None:
        import torch

        if not self.primary:
            return
        try:
            m = self.held_out.measure(model, which, loss)
        except torch.OutOfMemoryError:
            # The steps trained so far matter more than this measurement: skip it and train on.
            torch.cuda.empty_cache()
            self.events.log(f"step {step}: {which} metrics skipped: out of GPU memory while generating answers; "
                            "lower eval.batch_size or eval.max_new_tokens")
            return
        write_answers(self.job_dir / "eval" / f"step_{step:06d}_{which}.jsonl", m)
        self.events.eval_metrics(step, which, m.metrics, rows=len(m.answers))
        if m.samples:
            self.events.samples(step, which, [asdict(a) for a in m.samples])
