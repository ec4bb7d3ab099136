"""A user's space on a shared studio: what that user may name in a field that becomes a path.

One rule for every such field (the model and its offline stand-in tokenizer, data, eval data, the
Template tab's tokenizer, the Chat tab's base model): the value, with symlinks and `..` resolved,
must lie inside one of the roots this user may read for that kind of path; a model may also be a
hub id (`org/name`).

    data  -> the user's uploads, the bundled samples
    model -> the bundled models and tokenizers, the admin-listed model folders (--model-dir),
             the output folders of the user's own finished jobs

A refusal reads the same whether the path exists or not. Where a job writes (output.dir) and
exports go is never taken from the user: the runner and the Export tab choose the user's own
folders. A studio without --auth has one trusted user and confines nothing.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING

from studio.i18n import t
from studio.uploads import user_dir
from trainer_backend.child_env import PROJECT_ROOT
from trainer_backend.config import RunConfig
from trainer_backend.jobs import COMPLETED

if TYPE_CHECKING:
    from studio.context import StudioContext

SAMPLES_DIR = PROJECT_ROOT / "samples"
BUNDLED_MODEL_DIRS = (PROJECT_ROOT / ".cache" / "models", PROJECT_ROOT / ".cache" / "tokenizers")
HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*(/[A-Za-z0-9][A-Za-z0-9_.-]*)?$")
_SHOWN_CHARS = 160


class PathKind(Enum):
    DATA = "data"
    MODEL = "model"


class PathRefused(ValueError):
    """A path field names something outside the user's space; `field` is the config key or the
    tab's field, `value` what the user typed."""

    def __init__(self, field: str, value: str, kind: PathKind):
        self.field, self.value, self.kind = field, value[:_SHOWN_CHARS], kind
        super().__init__(f"'{field}': '{self.value}' is outside your space ({kind.value})")


def refusal_text(err: PathRefused, lang: str) -> str:
    return t(lang, f"path.refused.{err.kind.value}", field=err.field, value=err.value)


@dataclass(frozen=True)
class UserSpace:
    user: str
    workdir: Path
    roots: dict[PathKind, tuple[Path, ...]] | None   # None: nothing is confined (a local studio)

    def confine(self, field: str, value: str, kind: PathKind) -> str:
        """The value to hand to the backend (absolute for a local path), or PathRefused."""
        text = (value or "").strip()
        if self.roots is None:
            return text
        if kind is PathKind.MODEL and HUB_ID.match(text) and not Path(text).exists():
            return text
        if not text or "\0" in text:
            raise PathRefused(field, text, kind)
        real = Path(text).expanduser().resolve()
        if any(real.is_relative_to(root) for root in self.roots[kind]):
            return str(real)
        raise PathRefused(field, text, kind)

    def confine_config(self, cfg: RunConfig) -> RunConfig:
        """The run's path fields, each through `confine`."""
        optional = {"model.offline_tokenizer": (cfg.model.offline_tokenizer, PathKind.MODEL),
                    "data.eval_path": (cfg.data.eval_path, PathKind.DATA)}
        return cfg.with_overrides({
            "model.name_or_path": self.confine("model.name_or_path", cfg.model.name_or_path, PathKind.MODEL),
            "data.path": self.confine("data.path", cfg.data.path, PathKind.DATA),
            **{key: self.confine(key, value, kind) if value else None for key, (value, kind) in optional.items()}})

    def shown(self, text: str) -> str:
        return relative_paths(text, self.workdir, self.user)


def relative_paths(text: str, workdir: Path, user: str) -> str:
    """A message with the server's absolute folders replaced by the names the user knows
    (`uploads/x.jsonl`, `jobs/<id>/...`, `samples/...`)."""
    workdir = workdir.resolve()
    named = ((user_dir(workdir, user, "uploads"), "uploads"), (user_dir(workdir, user, "exports"), "exports"),
             (workdir / "jobs", "jobs"), (workdir, "workdir"), ((PROJECT_ROOT / ".cache").resolve(), ".cache"),
             (PROJECT_ROOT, ""))
    for folder, name in named:
        text = text.replace(f"{folder}/", f"{name}/" if name else "").replace(str(folder), name or ".")
    return text


def user_space(ctx: StudioContext, user: str) -> UserSpace:
    """Read at each call, so a job that just finished counts at once."""
    workdir = ctx.settings.workdir
    if ctx.settings.auth_file is None:
        return UserSpace(user, workdir, None)
    finished = [j for j in ctx.runner.list(user) if j.state == COMPLETED]
    models = (*BUNDLED_MODEL_DIRS, *ctx.settings.model_dirs, *(Path(j.job_dir) / "output" for j in finished))
    return UserSpace(user, workdir, {PathKind.DATA: (user_dir(workdir, user, "uploads").resolve(), SAMPLES_DIR.resolve()),
                                     PathKind.MODEL: tuple(p.resolve() for p in models)})
