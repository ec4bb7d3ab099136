"""Held-out metrics on fixed predictions: the values of the libraries that define them, the SQuAD
definitions worked by hand, and the first-number rule on a table of cases."""
from __future__ import annotations

import math

import pytest

from trainer_backend.evaluation import metrics as M
from trainer_backend.evaluation.numbers import first_number

PREDICTIONS = ["The cat sat on the mat.", "Paris is the capital of France", "about 13 dollars", "no idea"]
REFERENCES = ["the cat sat on a mat", "Paris", "It costs $12.99", "45"]


@pytest.mark.parametrize("text, number", [
    ("$12.99", 12.99), ("12,999", 12999.0), ("about 13", 13.0), ("none", None), ("", None),
    ("It costs $1,299.00 with shipping", 1299.0), ("1,234,567.5", 1234567.5),
    ("1,5", 1.0),            # a comma before other than three digits ends the number
    ("12,99", 12.0), ("12.99.5", 12.99), ("13.", 13.0), (".5", 0.5),
    ("-4.5 degrees", -4.5), ("2-3 days", 2.0), ("x-5", 5.0),
    ("SKU12 costs 30", 30.0), ("US$5", 5.0), ("15%", 15.0), ("1e3", 1.0), ("thirteen", None),
])
def test_first_number_rule(text, number):
    assert first_number(text) == number


def test_rouge_l_is_rouge_score_on_ascii_text():
    from rouge_score.rouge_scorer import RougeScorer

    scorer = RougeScorer(["rougeL"])   # the library's own tokenizer: equal on ASCII words
    expected = sum(scorer.score(r, p)["rougeL"].fmeasure for p, r in zip(PREDICTIONS, REFERENCES)) / len(REFERENCES)
    assert M.rouge_l(PREDICTIONS, REFERENCES) == pytest.approx(100 * expected, abs=1e-12)
    assert M.rouge_l(["a b c d"], ["a c d"]) == pytest.approx(100 * 2 * (3 / 4) * 1 / (3 / 4 + 1))


def test_rouge_l_keeps_vietnamese_words():
    # rouge-score's default tokenizer keeps only [a-z0-9] and would score these 0.
    assert M.rouge_l(["Thủ đô của Pháp là Paris"], ["Thủ đô là Paris"]) == pytest.approx(100 * 2 * (4 / 6) / (4 / 6 + 1))


def test_bleu_and_chrf_are_sacrebleu_corpus_scores():
    import sacrebleu

    assert M.bleu(PREDICTIONS, REFERENCES) == sacrebleu.corpus_bleu(PREDICTIONS, [REFERENCES]).score
    assert M.chrf(PREDICTIONS, REFERENCES) == sacrebleu.corpus_chrf(PREDICTIONS, [REFERENCES]).score
    assert M.bleu(["the cat sat on the mat"], ["the cat sat on the mat"]) == pytest.approx(100.0)
    assert M.bleu(["dog"], ["the cat sat on the mat"]) == 0.0


def test_exact_match_and_token_f1_follow_squad():
    # normalized: "cat sat on mat" both -> EM 1, F1 1; "paris is capital of france" vs "paris": P 1/5, R 1
    # -> F1 1/3; "about 13 dollars" vs "it costs 1299": 0; "no idea" vs "45": 0.
    assert M.exact_match(PREDICTIONS, REFERENCES) == pytest.approx(25.0)
    assert M.token_f1(PREDICTIONS, REFERENCES) == pytest.approx(100 * (1 + 1 / 3) / 4)
    assert M.token_f1(["the"], ["a"]) == 100.0   # both empty after normalization count as equal


def test_numeric_mae_and_unparsable_share():
    got = M.numeric(["49.99", "about 40", "no idea", "60"], ["50.00", "45.50", "47", "no number here"])
    # row 4 has no numeric reference and is left out; row 3 has no number in the answer
    assert got == {"mae": pytest.approx((0.01 + 5.5) / 2), "unparsable": pytest.approx(1 / 3)}
    assert M.numeric(["x"], ["y"]) == {"mae": None, "unparsable": None}


def test_score_reports_what_each_metric_names():
    got = M.score(["exact_match", "numeric", "perplexity"], ["12"], ["12.0"])
    assert got == {"exact_match": 0.0, "mae": 0.0, "unparsable": 0.0}   # "12" != "120" once the point goes
    assert M.score(["bleu", "numeric"], [], []) == {"bleu": None, "mae": None, "unparsable": None}
    assert M.perplexity(math.log(7.5)) == pytest.approx(7.5) and M.perplexity(float("nan")) is None
