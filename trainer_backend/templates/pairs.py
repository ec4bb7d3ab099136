"""Preference rows to tokenized pairs (DPO, ORPO, SimPO) or labelled completions (KTO), through
the same render+mask function as SFT.

Each completion is rendered as the last assistant turn of prompt + completion with `loss:
last_turn`, so exactly the completion's tokens (through its end-of-turn marker) are trained and
nothing of the prompt, whatever `template.loss` says. Because the template function tokenizes
scaffolding and responses as separate segments, prompt + chosen and prompt + rejected start with
the same prompt ids; that is checked, not assumed. Tokens after the completion (a template's
trailing newline) are cut: no loss reads them. The length policy is the SFT one, applied to each
sequence; a pair is kept or dropped whole, and every drop is a row error with its reason.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace
from typing import Sequence

from transformers import PreTrainedTokenizerBase

from ..config import TemplateConfig
from ..data.conversation import RowError
from ..data.preference import PreferenceRow
from ..messages import (EMPTY_AFTER_TRUNCATION, IDENTICAL_AFTER_TRUNCATION, NO_TRAINED_AFTER_TRUNCATION,
                        PROMPT_DIFFERS, TEMPLATE_ERROR, TOO_LONG, msg)
from .build import MAX_ISSUES, BuildReport, apply_length_policy
from .example import Example
from .render import render_and_mask_many




@dataclass
class PairExample:
    """A prompt with its chosen and rejected sequences (each prompt + completion, ids of the prompt
    shared). `input_ids` / `trained` are both sequences back to back: what batching and sharding
    count, so that a pair always travels whole. `ref_*` are the reference model's summed
    completion log-probs when they were computed before training."""
    row: int
    chosen: Example
    rejected: Example
    prompt_len: int
    ref_chosen: float | None = None
    ref_rejected: float | None = None

    @property
    def input_ids(self) -> list[int]:
        return self.chosen.input_ids + self.rejected.input_ids

    @property
    def trained(self) -> list[bool]:
        return self.chosen.trained + self.rejected.trained

    @property
    def n_trained(self) -> int:
        return self.chosen.n_trained + self.rejected.n_trained

    @property
    def truncated(self) -> bool:
        return self.chosen.truncated or self.rejected.truncated

    @property
    def cut_tokens(self) -> int:
        return sum(e.full_length - len(e.input_ids) for e in (self.chosen, self.rejected))

    @property
    def has_reference(self) -> bool:
        return self.ref_chosen is not None


@dataclass
class LabelledExample:
    """A KTO row: prompt + completion, desirable or not. `kl` is this prompt with the completion of
    the previous row (rows rotated by one, as TRL builds them): KTO's KL term is estimated from
    such mismatched pairs. `ref` / `ref_kl`: the reference's log-probs when computed before training."""
    row: int
    sequence: Example
    prompt_len: int
    desirable: bool
    kl: Example | None = None
    ref: float | None = None
    ref_kl: float | None = None

    @property
    def has_reference(self) -> bool:
        return self.ref is not None

    @property
    def input_ids(self) -> list[int]:
        return self.sequence.input_ids

    @property
    def trained(self) -> list[bool]:
        return self.sequence.trained

    @property
    def n_trained(self) -> int:
        return self.sequence.n_trained

    @property
    def truncated(self) -> bool:
        return self.sequence.truncated

    @property
    def cut_tokens(self) -> int:
        return self.sequence.full_length - len(self.sequence.input_ids)


def _through_completion(example: Example) -> tuple[Example, int]:
    """The example cut after its last trained token, and its prompt length (first trained token)."""
    first = example.trained.index(True)
    last = len(example.trained) - 1 - example.trained[::-1].index(True)
    return replace(example, input_ids=example.input_ids[:last + 1], trained=example.trained[:last + 1]), first


def _length_checked(example: Example, tcfg: TemplateConfig) -> Example | str:
    outcome = apply_length_policy(example, tcfg)
    return EMPTY_AFTER_TRUNCATION if outcome == NO_TRAINED_AFTER_TRUNCATION else outcome


def build_preference_examples(rows: Sequence[PreferenceRow], tokenizer: PreTrainedTokenizerBase,
                              tcfg: TemplateConfig) -> tuple[list[PairExample | LabelledExample], BuildReport]:
    """Pairs for rows with `rejected`, labelled examples for KTO rows; the report names every drop."""
    completion_only = tcfg.model_copy(update={"loss": "last_turn"})
    convs, keys = [], []
    for r in rows:
        if r.rejected is not None:
            convs += [r.with_completion(r.messages[-1].content), r.with_completion(r.rejected)]
            keys += [(r.row, "chosen"), (r.row, "rejected")]
        else:
            convs.append(r)
            keys.append((r.row, "completion"))
    rendered, errors = render_and_mask_many(convs, tokenizer, completion_only)
    failed_rows = {e.row for e in errors}
    by_key = dict(zip([k for k in keys if k[0] not in failed_rows], rendered))
    issues = [RowError(e.row, "prompt", e.message) for e in errors]
    dropped: Counter[str] = Counter({TEMPLATE_ERROR: len(failed_rows)} if errors else {})
    kept: list[PairExample | LabelledExample] = []
    for r in rows:
        if r.row in failed_rows:
            continue
        outcome = _pair(r, by_key, tcfg)
        if isinstance(outcome, tuple):
            field, reason = outcome
            dropped[reason] += 1
            issues.append(RowError(r.row, field, msg("row.dropped_pair", reason=msg(reason))))
            continue
        kept.append(outcome)
    _add_kl_sequences([e for e in kept if isinstance(e, LabelledExample)], tcfg.max_seq_len)
    report = BuildReport(rows_in=len(rows), kept=len(kept), truncated=sum(e.truncated for e in kept),
                         cut_tokens=sum(e.cut_tokens for e in kept), dropped=dict(dropped),
                         issues=sorted(issues, key=lambda e: e.row)[:MAX_ISSUES])
    return kept, report


def _pair(r: PreferenceRow, by_key: dict, tcfg: TemplateConfig) -> PairExample | LabelledExample | tuple[str, str]:
    """The training unit of one row, or (field, reason) when it is dropped."""
    for side in ("completion",) if r.rejected is None else ("chosen", "rejected"):
        if not any(by_key[r.row, side].trained):   # rendering stopped at max_seq_len inside the prompt
            return side, TOO_LONG if tcfg.overflow == "drop" else EMPTY_AFTER_TRUNCATION
    if r.rejected is None:
        sequence, prompt_len = _through_completion(by_key[r.row, "completion"])
        checked = _length_checked(sequence, tcfg)
        if isinstance(checked, str):
            return "completion", checked
        return LabelledExample(r.row, checked, prompt_len, bool(r.desirable))
    (chosen, p_chosen), (rejected, p_rejected) = (_through_completion(by_key[r.row, k]) for k in ("chosen", "rejected"))
    if p_chosen != p_rejected or chosen.input_ids[:p_chosen] != rejected.input_ids[:p_rejected]:
        return "prompt", PROMPT_DIFFERS
    checked = {}
    for name, example in (("chosen", chosen), ("rejected", rejected)):
        outcome = _length_checked(example, tcfg)
        if isinstance(outcome, str):
            return name, outcome
        checked[name] = outcome
    if checked["chosen"].input_ids == checked["rejected"].input_ids:
        return "rejected", IDENTICAL_AFTER_TRUNCATION
    return PairExample(r.row, checked["chosen"], checked["rejected"], p_chosen)


def _add_kl_sequences(examples: list[LabelledExample], max_seq_len: int) -> None:
    """Row i's prompt with row i-1's completion (the first row takes the last one's), cut to max_seq_len."""
    for example, other in zip(examples, examples[-1:] + examples[:-1]):
        prompt = example.sequence.input_ids[:example.prompt_len]
        completion = other.sequence.input_ids[other.prompt_len:]
        ids = (prompt + completion)[:max_seq_len]
        trained = ([False] * len(prompt) + [True] * len(completion))[:max_seq_len]
        example.kl = Example(row=example.row, input_ids=ids, trained=trained, text="")
