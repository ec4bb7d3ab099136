"""From the config's data files to tokenized train and eval Examples, through the same
render+mask function the Template tab previews."""
from __future__ import annotations

import math
import random

from ..config import RunConfig
from ..contracts import Stage
from ..data import Conversation, DataError, load_dataset
from ..templates import build_examples, load_tokenizer
from ..templates.example import Example
from .events import EventLog


def split_eval(convs: list[Conversation], ratio: float, seed: int) -> tuple[list[Conversation], list[Conversation]]:
    """Hold out ceil(ratio × rows) rows chosen by the seed (at least one train row is kept)."""
    if ratio <= 0 or len(convs) < 2:
        return convs, []
    n_eval = min(math.ceil(ratio * len(convs)), len(convs) - 1)
    order = list(range(len(convs)))
    random.Random(seed).shuffle(order)
    held = set(order[:n_eval])
    return [c for i, c in enumerate(convs) if i not in held], [c for i, c in enumerate(convs) if i in held]


def _read(path: str, cfg: RunConfig, events: EventLog, what: str) -> list[Conversation]:
    loaded = load_dataset(path, format=cfg.data.format, columns=cfg.data.columns or None, strict=cfg.data.strict,
                          drop_trailing_user=cfg.data.drop_trailing_user)
    events.log(f"{what} data {path}: {loaded.format} ({loaded.reason}), {loaded.rows} rows, "
               f"{loaded.invalid_rows} invalid rows skipped, {len(loaded.trimmed_rows)} trailing user turns dropped")
    for err in loaded.errors[:5]:
        events.log(f"  skipped {err}")
    return list(loaded.conversations)


def read_split(cfg: RunConfig, events: EventLog) -> tuple[list[Conversation], list[Conversation]]:
    """(train rows, held-out rows) of a run: data.eval_path, else the seeded data.eval_ratio split."""
    convs = _read(cfg.data.path, cfg, events, "train")
    if cfg.data.eval_path:
        return convs, _read(cfg.data.eval_path, cfg, events, "eval")
    return split_eval(convs, cfg.data.eval_ratio, cfg.train.seed)


def load_examples(cfg: RunConfig, events: EventLog) -> tuple[object, list[Example], list[Example]]:
    """(tokenizer, train examples, eval examples) of a run."""
    events.stage(Stage.LOADING_DATA, f"reading {cfg.data.path}")
    tokenizer = load_tokenizer(cfg.model.name_or_path, cfg.template.name)
    train_convs, eval_convs = read_split(cfg, events)
    events.stage(Stage.RENDERING, f"rendering and tokenizing {len(train_convs) + len(eval_convs)} rows")
    train, report = build_examples(train_convs, tokenizer, cfg.template)
    events.log(f"train examples: {report.summary()}")
    if not train:
        raise DataError(cfg.data.path, f"no row is left to train on ({report.summary()}); "
                        "check data.format, template.max_seq_len and the row errors in train.log")
    evals, eval_report = build_examples(eval_convs, tokenizer, cfg.template) if eval_convs else ([], None)
    if eval_report is not None:
        events.log(f"eval examples: {eval_report.summary()}")
    return tokenizer, train, evals
