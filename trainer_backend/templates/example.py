"""The unit every layer after templates consumes: token ids with their loss mask."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Example:
    """One rendered row. `trained[i]` is True when token i is a loss target; `trained[0]` is always False."""
    row: int
    input_ids: list[int]
    trained: list[bool]
    text: str
    truncated: bool = False
    # Trained assistant turns written unlike a turn the model generates (history turns of reasoning
    # templates: Qwen3 drops their think block); the Template tab warns about them.
    unlike_inference: int = 0
    # Tokens of the whole row where `input_ids` hold less of it (rendering stopped at the length limit,
    # or truncation cut it); None when `input_ids` are the whole row.
    whole_tokens: int | None = None

    @property
    def n_trained(self) -> int:
        return sum(self.trained)

    @property
    def full_length(self) -> int:
        """Tokens of the whole row: what the Data and Template tabs report, and truncation's cut is counted from."""
        return len(self.input_ids) if self.whole_tokens is None else self.whole_tokens

    def __len__(self) -> int:
        return len(self.input_ids)

    def labels(self) -> list[int]:
        """HF-style labels (the model shifts them): the token id where trained, else -100."""
        return [t if m else -100 for t, m in zip(self.input_ids, self.trained)]
