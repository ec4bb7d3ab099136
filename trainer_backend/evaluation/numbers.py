"""The first number in a model's answer, for numeric tasks (prices, counts, scores).

The rule, in order:
- the first run of digits that is not glued to a letter, digit or underscore before it
  (`SKU12 costs 30` -> 30, `$12.99` -> 12.99, `about 13` -> 13, `US$5` -> 5);
- commas inside it are thousands separators only between groups of exactly three digits
  (`12,999` -> 12999, `1,234,567.5` -> 1234567.5; `1,5` -> 1: the comma ends the number);
- one decimal point followed by digits belongs to it (`12.99.5` -> 12.99, `13.` -> 13, `.5` -> 0.5);
- a minus sign directly before it makes it negative unless the sign itself follows a letter or
  digit (`-4.5` -> -4.5, `x-5` -> 5, `2-3` -> 2);
- no exponents and no words (`1e3` -> 1, `thirteen` -> none): an answer without a number is
  unparsable (None), and is counted as such rather than guessed.
"""
from __future__ import annotations

import re

_NUMBER = re.compile(r"(?<![\w.,])(-?)(\d{1,3}(?:,\d{3})+(?!\d)|\d+|(?=\.\d))(\.\d+)?")


def first_number(text: str) -> float | None:
    match = _NUMBER.search(text or "")
    if match is None:
        return None
    sign, whole, fraction = match.groups()
    return float(f"{sign}{whole.replace(',', '')}{fraction or ''}")
