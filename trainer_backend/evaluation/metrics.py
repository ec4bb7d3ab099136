"""Scores of generated answers against references, by the libraries that define them.

Scales: exact_match, token_f1, rouge_l, bleu and chrf are 0-100 (as sacrebleu and the SQuAD
script print them); mae is in the answers' own unit; unparsable is the share (0-1) of numeric
references whose answer has no number (see numbers.py for the parse rule); perplexity is
exp(mean loss per trained token) of the held-out responses.

- exact_match, token_f1: the SQuAD v1.1 definitions (lower case, punctuation and English articles
  removed, whitespace collapsed; F1 over the bag of tokens), averaged over rows.
- rouge_l: rouge-score's ROUGE-L F-measure averaged over rows, with a Unicode word tokenizer
  (rouge-score's own keeps only ASCII letters, which would empty Vietnamese answers).
- bleu, chrf: sacrebleu's corpus BLEU and chrF with their default settings.
"""
from __future__ import annotations

import math
import re
import string
from collections import Counter
from typing import Sequence

from ..config import GENERATION_METRICS
from .numbers import first_number

LOWER_IS_BETTER = frozenset({"mae", "unparsable", "perplexity"})
# What each configured metric reports (the numeric metric reports two values).
REPORTED = {"exact_match": ("exact_match",), "token_f1": ("token_f1",), "rouge_l": ("rouge_l",),
            "bleu": ("bleu",), "chrf": ("chrf",), "numeric": ("mae", "unparsable"), "perplexity": ("perplexity",)}

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = str.maketrans("", "", string.punctuation)


def squad_normalize(text: str) -> str:
    return " ".join(_ARTICLES.sub(" ", text.lower().translate(_PUNCTUATION)).split())


def exact_match(predictions: Sequence[str], references: Sequence[str]) -> float:
    return 100.0 * _mean([squad_normalize(p) == squad_normalize(r) for p, r in zip(predictions, references)])


def _f1(prediction: str, reference: str) -> float:
    pred, ref = squad_normalize(prediction).split(), squad_normalize(reference).split()
    common = sum((Counter(pred) & Counter(ref)).values())
    if not pred or not ref:
        return float(pred == ref)
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def token_f1(predictions: Sequence[str], references: Sequence[str]) -> float:
    return 100.0 * _mean([_f1(p, r) for p, r in zip(predictions, references)])


class _WordTokenizer:
    """rouge-score's tokenizer interface: lower-cased Unicode words."""

    def tokenize(self, text: str) -> list[str]:
        return re.findall(r"\w+", text.lower())


def rouge_l(predictions: Sequence[str], references: Sequence[str]) -> float:
    from rouge_score.rouge_scorer import RougeScorer

    scorer = RougeScorer(["rougeL"], tokenizer=_WordTokenizer())
    return 100.0 * _mean([scorer.score(r, p)["rougeL"].fmeasure for p, r in zip(predictions, references)])


def bleu(predictions: Sequence[str], references: Sequence[str]) -> float:
    import sacrebleu

    return sacrebleu.corpus_bleu(list(predictions), [list(references)]).score


def chrf(predictions: Sequence[str], references: Sequence[str]) -> float:
    import sacrebleu

    return sacrebleu.corpus_chrf(list(predictions), [list(references)]).score


def numeric(predictions: Sequence[str], references: Sequence[str]) -> dict[str, float | None]:
    """MAE over rows whose reference and answer both hold a number; unparsable = share of rows with
    a numeric reference whose answer holds none. Rows whose reference has no number are left out."""
    pairs = [(first_number(p), first_number(r)) for p, r in zip(predictions, references)]
    pairs = [(p, r) for p, r in pairs if r is not None]
    parsed = [abs(p - r) for p, r in pairs if p is not None]
    return {"mae": sum(parsed) / len(parsed) if parsed else None,
            "unparsable": (len(pairs) - len(parsed)) / len(pairs) if pairs else None}


_SCORERS = {"exact_match": exact_match, "token_f1": token_f1, "rouge_l": rouge_l, "bleu": bleu, "chrf": chrf}


def score(metrics: Sequence[str], predictions: Sequence[str], references: Sequence[str]) -> dict[str, float | None]:
    """The generation metrics among `metrics` (perplexity is not one: see `perplexity`)."""
    out: dict[str, float | None] = {}
    for name in metrics:
        if name not in GENERATION_METRICS:
            continue
        if not predictions:
            out.update(dict.fromkeys(REPORTED[name]))
        elif name == "numeric":
            out.update(numeric(predictions, references))
        else:
            out[name] = _SCORERS[name](predictions, references)
    return out


def perplexity(loss: float | None) -> float | None:
    if loss is None or not math.isfinite(loss):
        return None
    return math.exp(min(loss, 700.0))   # exp overflows a float above ~709


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0
