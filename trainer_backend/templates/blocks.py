"""Raw-text (continued pre-training) documents are cut, not truncated: every token is trained.

Each document ends with the end-of-text token and is cut into consecutive pieces of at most
`max_seq_len` tokens; each piece is an Example of its own (its first token is untrained, since
nothing before it in the piece predicts it). The packer then concatenates pieces into token-budget
passes, and attention stays inside each piece (models/attention.py), so documents never see each
other and no token of the corpus is dropped.

    pieces([doc of 5 tokens], max_seq_len=4, eos_id=0)  ->  rows of 4 and 2 tokens (5 + end-of-text)
"""
from __future__ import annotations

from dataclasses import replace

from .example import Example


def pieces(example: Example, max_seq_len: int, eos_id: int | None) -> list[Example]:
    ids, trained = list(example.input_ids), list(example.trained)
    if eos_id is not None and (not ids or ids[-1] != eos_id):
        ids.append(eos_id)
        trained.append(True)
    out = []
    for start in range(0, len(ids), max_seq_len):
        chunk = ids[start:start + max_seq_len]
        if len(chunk) < 2:  # a lone last token has nothing to predict it inside its piece
            continue
        out.append(replace(example, input_ids=chunk, trained=[False] + trained[start + 1:start + len(chunk)],
                           truncated=False))
    return out
