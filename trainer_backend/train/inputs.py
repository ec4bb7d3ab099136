"""From the config's data files to tokenized train and eval Examples, through the same
render+mask function the Template tab previews."""
from __future__ import annotations

import math
import random

from ..config import PREFERENCE_OBJECTIVES, ConfigError, RunConfig
from ..contracts import Stage
from ..data import Conversation, DataError, load_dataset
from ..messages import msg
from ..templates import build_examples, load_tokenizer
from ..templates.example import Example
from ..templates.pairs import build_preference_examples
from .events import EventLog

# The data format each objective trains on (formats not named here are SFT formats).
OBJECTIVE_FORMATS = {**{o: "preference" for o in PREFERENCE_OBJECTIVES}, "kto": "kto"}


def split_eval(convs: list[Conversation], ratio: float, seed: int) -> tuple[list[Conversation], list[Conversation]]:
    """Hold out ceil(ratio × rows) rows chosen by the seed (at least one train row is kept)."""
    if ratio <= 0 or len(convs) < 2:
        return convs, []
    n_eval = min(math.ceil(ratio * len(convs)), len(convs) - 1)
    order = list(range(len(convs)))
    random.Random(seed).shuffle(order)
    held = set(order[:n_eval])
    return [c for i, c in enumerate(convs) if i not in held], [c for i, c in enumerate(convs) if i in held]


def check_objective_format(objective: str, data_format: str, path: str) -> None:
    """An objective reads one kind of file: pairs for dpo/orpo/simpo, labelled completions for kto,
    conversations or text for sft."""
    wanted = OBJECTIVE_FORMATS.get(objective)
    is_preference = data_format in OBJECTIVE_FORMATS.values()
    if wanted == data_format or (wanted is None and not is_preference):
        return
    if wanted is None:
        fits = "dpo, orpo or simpo" if data_format == "preference" else "kto"
        raise ConfigError(f"'train.objective': sft cannot train on {path}, a {data_format} file; "
                          f"set train.objective to {fits}")
    raise ConfigError(f"'train.objective': {objective} trains on {wanted} rows ("
                      f"{'prompt/chosen/rejected' if wanted == 'preference' else 'prompt/completion/label'}), "
                      f"but {path} is a {data_format} file; choose a matching file or objective")


def _read(path: str, cfg: RunConfig, events: EventLog, what: str) -> list[Conversation]:
    loaded = load_dataset(path, format=cfg.data.format, columns=cfg.data.columns or None, strict=cfg.data.strict,
                          drop_trailing_user=cfg.data.drop_trailing_user)
    check_objective_format(cfg.train.objective, loaded.format, path)
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
    events.stage(Stage.LOADING_DATA, msg("prep.reading", path=cfg.data.path))
    tokenizer = load_tokenizer(cfg.model.name_or_path, cfg.template.name)
    train_convs, eval_convs = read_split(cfg, events)
    events.stage(Stage.RENDERING, msg("prep.rendering", n=len(train_convs) + len(eval_convs)))
    build = build_examples if cfg.train.objective == "sft" else build_preference_examples
    train, report = build(train_convs, tokenizer, cfg.template)
    events.log(f"train examples: {report.summary()}")
    for issue in report.issues[:5]:
        events.log(f"  {issue}")
    if not train:
        raise DataError(cfg.data.path, msg("file.nothing_to_train", summary=report.summary()))
    evals, eval_report = build(eval_convs, tokenizer, cfg.template) if eval_convs else ([], None)
    if eval_report is not None:
        events.log(f"eval examples: {eval_report.summary()}")
    return tokenizer, train, evals
