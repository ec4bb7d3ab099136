"""What several tabs share: the bundled files, the typed values that travel between tabs (the file
on screen, the dataset chosen for the run), and the job lists. Tabs import this module, never one
another."""
from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from studio.i18n import STRINGS, say, t
from studio.uploads import user_dir
from trainer_backend.child_env import PROJECT_ROOT
from trainer_backend.jobs import COMPLETED, JobInfo

SAMPLES_DIR = PROJECT_ROOT / "samples"
DEMO_SAMPLE = "demo_alpaca.jsonl"      # the demo preset's data: "Load sample" is one click
DEMO_PRESET = "smollm2-135m-demo"


@dataclass(frozen=True)
class DataSource:
    """The file the Data tab shows, whether or not it loaded: Apply re-reads it with another format
    or mapping. `path` is the server's copy and is never shown; `name` is what the user uploaded."""
    path: str
    name: str
    columns: tuple[str, ...] = ()


@dataclass(frozen=True)
class DatasetChoice:
    """A file that loaded with at least one valid row, and how to read it: what the run trains on."""
    path: str
    name: str
    format: str                          # the format it was read as (detected under auto)
    columns: tuple[tuple[str, str], ...] = ()     # (your column, the format's field); a tuple keeps it hashable
    drop_trailing_user: bool = True
    valid_rows: int = 0
    requested: str = "auto"              # the format the user asked for: the run asks for it too

    @property
    def mapping(self) -> dict[str, str]:
        return dict(self.columns)

    def overrides(self) -> dict[str, Any]:
        """The run config's data keys that this choice sets."""
        return {"data.path": self.path, "data.format": self.requested, "data.columns": self.mapping,
                "data.drop_trailing_user": self.drop_trailing_user}


def preset_text(cfg_name: str, description: str, method: str, gpu_mem_gib: float | None, lang: str) -> str:
    """A preset's description in the user's language: its model family's sentence, then how it is
    sized (a preset file states its description in English only)."""
    if lang == "en":
        return description
    family = re.sub(r"-\d+gb$", "", cfg_name)
    head = t(lang, f"preset.{family}") if f"preset.{family}" in STRINGS["en"] else description
    if family == cfg_name and gpu_mem_gib is None:
        return head if family == DEMO_PRESET else f"{head}; {t(lang, 'preset.planned')}"
    return f"{head}; {t(lang, 'preset.sized', method=method, gb=f'{gpu_mem_gib:g}')}"


def remember_dataset(workdir: Path, user: str, choice: DatasetChoice) -> None:
    """Kept in the user's folder, so a reloaded page shows the dataset it had (as Monitor shows jobs)."""
    path = user_dir(workdir, user, "state") / "dataset.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(asdict(choice)), encoding="utf-8")


def recall_dataset(workdir: Path, user: str) -> DatasetChoice | None:
    path = user_dir(workdir, user, "state") / "dataset.json"
    try:
        fields = json.loads(path.read_text(encoding="utf-8"))
        choice = DatasetChoice(**{**fields, "columns": tuple(map(tuple, fields.get("columns", ())))})
    except (OSError, ValueError, TypeError, AttributeError):
        return None
    return choice if Path(choice.path).exists() else None


def ended_reason(job: JobInfo, lang: str) -> str:
    """Why a job stopped or failed, in the user's language (a job of an older studio has English only)."""
    return say(lang, job.exit_notice) if job.exit_notice else (job.exit_reason or "")


def job_choices(jobs: list[JobInfo], lang: str = "en") -> list[tuple[str, str]]:
    """Newest first, each labelled with its current state (the Monitor relabels as states change)."""
    return [(f"{j.name} · {t(lang, f'state.{j.state}')} · {j.id}", j.id)
            for j in sorted(jobs, key=lambda j: j.created, reverse=True)]


def finished_jobs(jobs: list[JobInfo]) -> list[tuple[str, str]]:
    done = [j for j in jobs if j.state == COMPLETED]
    return [(f"{j.name} · {j.id}", j.id) for j in sorted(done, key=lambda j: j.created, reverse=True)]
