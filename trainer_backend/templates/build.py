"""From Conversations to training Examples under the run's length policy, with nothing dropped silently."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Sequence

from transformers import PreTrainedTokenizerBase

from ..config import TemplateConfig
from ..data.conversation import Conversation, RowError
from ..messages import (ABOVE_MAX, BELOW_MIN, ENGLISH, NO_TRAINED, NO_TRAINED_AFTER_TRUNCATION, TEMPLATE_ERROR,
                        TOO_LONG, msg)
from .blocks import pieces
from .example import Example
from .render import render_and_mask_many

MAX_ISSUES = 20


@dataclass
class BuildReport:
    rows_in: int
    kept: int = 0
    truncated: int = 0
    cut_tokens: int = 0                                     # tokens truncation removed from the rows kept
    split: int = 0                                          # raw-text documents cut into max_seq_len pieces
    dropped: dict[str, int] = field(default_factory=dict)   # reason (a drop.* message key) -> rows
    issues: list[RowError] = field(default_factory=list)    # the first MAX_ISSUES dropped rows

    def summary(self) -> str:
        parts = [f"{self.kept} of {self.rows_in} rows kept",
                 f"{self.truncated} truncated ({self.cut_tokens} tokens cut)"]
        if self.split:
            parts.append(f"{self.split} text documents cut into pieces of max_seq_len (no token lost)")
        parts += [f"{n} dropped: {ENGLISH[reason]}" for reason, n in sorted(self.dropped.items())]
        return ", ".join(parts)


def apply_length_policy(example: Example, tcfg: TemplateConfig) -> Example | str:
    """The example as it will be trained, or the reason it is dropped (a drop.* message key)."""
    n = len(example.input_ids)
    if n < tcfg.min_tokens:
        return BELOW_MIN
    if tcfg.max_tokens is not None and n > tcfg.max_tokens:
        return ABOVE_MAX
    if n > tcfg.max_seq_len:
        if tcfg.overflow == "drop":
            return TOO_LONG
        cut = tcfg.max_seq_len
        example = replace(example, input_ids=example.input_ids[:cut], trained=example.trained[:cut], truncated=True,
                          whole_tokens=example.full_length)
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
    # Raw text is cut into pieces (templates/blocks.py) unless the user asked to drop long rows.
    text_rows = {c.row for c in convs if c.is_text} if tcfg.overflow == "truncate" else set()
    for example in rendered:
        if example.row in text_rows and len(example.input_ids) >= tcfg.min_tokens \
                and (tcfg.max_tokens is None or len(example.input_ids) <= tcfg.max_tokens):
            cut = pieces(example, tcfg.max_seq_len, tokenizer.eos_token_id)
            kept += cut
            report.split += len(cut) > 1
            continue
        outcome = apply_length_policy(example, tcfg)
        if isinstance(outcome, str):
            dropped[outcome] += 1
            issues.append(RowError(example.row, "messages", msg("row.dropped", reason=msg(outcome),
                                                                tokens=example.full_length, trained=example.n_trained)))
            continue
        kept.append(outcome)
        report.truncated += outcome.truncated
        report.cut_tokens += outcome.full_length - len(outcome.input_ids)
    report.kept = len({e.row for e in kept})
    report.dropped = dict(dropped)
    report.issues = sorted(issues, key=lambda e: e.row)[:MAX_ISSUES]
    return kept, report
