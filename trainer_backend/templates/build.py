"""From Conversations to training Examples under the run's length policy, with nothing dropped silently."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Sequence

from transformers import PreTrainedTokenizerBase

from ..config import TemplateConfig
from ..data.conversation import Conversation, RowError
from .example import Example
from .render import render_and_mask_many

MAX_ISSUES = 20

TOO_LONG = "longer than max_seq_len"
NO_TRAINED_AFTER_TRUNCATION = "no trained token after truncation"
NO_TRAINED = "no trained token"
BELOW_MIN = "shorter than min_tokens"
ABOVE_MAX = "longer than max_tokens"
TEMPLATE_ERROR = "template error"


@dataclass
class BuildReport:
    rows_in: int
    kept: int = 0
    truncated: int = 0
    dropped: dict[str, int] = field(default_factory=dict)   # reason -> rows
    issues: list[RowError] = field(default_factory=list)    # the first MAX_ISSUES dropped rows

    def summary(self) -> str:
        parts = [f"{self.kept} of {self.rows_in} rows kept", f"{self.truncated} truncated"]
        parts += [f"{n} dropped: {reason}" for reason, n in sorted(self.dropped.items())]
        return ", ".join(parts)


def apply_length_policy(example: Example, tcfg: TemplateConfig) -> Example | str:
    """The example as it will be trained, or the reason it is dropped."""
    n = len(example.input_ids)
    if n < tcfg.min_tokens:
        return BELOW_MIN
    if tcfg.max_tokens is not None and n > tcfg.max_tokens:
        return ABOVE_MAX
    if n > tcfg.max_seq_len:
        if tcfg.overflow == "drop":
            return TOO_LONG
        cut = tcfg.max_seq_len
        example = replace(example, input_ids=example.input_ids[:cut], trained=example.trained[:cut], truncated=True)
        if not example.n_trained:
            return NO_TRAINED_AFTER_TRUNCATION
    if not example.n_trained:
        return NO_TRAINED
    return example


def build_examples(convs: Sequence[Conversation], tokenizer: PreTrainedTokenizerBase,
                   tcfg: TemplateConfig, fast: bool = True) -> tuple[list[Example], BuildReport]:
    """Render, mask and length-filter every row; the report counts every row that did not make it.

    `fast=False` renders every row by the slow reference path (same results, for checks)."""
    rendered, errors = render_and_mask_many(convs, tokenizer, tcfg, fast=fast)
    report = BuildReport(rows_in=len(convs))
    dropped: Counter[str] = Counter({TEMPLATE_ERROR: len(errors)} if errors else {})
    issues = list(errors)
    kept: list[Example] = []
    for example in rendered:
        outcome = apply_length_policy(example, tcfg)
        if isinstance(outcome, str):
            dropped[outcome] += 1
            issues.append(RowError(example.row, "messages", f"dropped: {outcome} ({len(example.input_ids)} tokens, "
                                   f"{example.n_trained} trained)"))
            continue
        kept.append(outcome)
        report.truncated += outcome.truncated
    report.kept = len(kept)
    report.dropped = dict(dropped)
    report.issues = sorted(issues, key=lambda e: e.row)[:MAX_ISSUES]
    return kept, report
