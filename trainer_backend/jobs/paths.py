"""Where a job's files live: `<workdir>/jobs/<job_id>/`, the layout of docs/architecture.md."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .ids import check_job_id


@dataclass(frozen=True)
class JobPaths:
    dir: Path

    @classmethod
    def of(cls, workdir: Path, job_id: str) -> "JobPaths":
        return cls(Path(workdir).resolve() / "jobs" / check_job_id(job_id))

    @property
    def config(self) -> Path:
        return self.dir / "config.yaml"

    @property
    def events(self) -> Path:
        return self.dir / "events.jsonl"

    @property
    def train_log(self) -> Path:
        return self.dir / "train.log"

    @property
    def console_log(self) -> Path:
        """stdout and stderr of the train command: tracebacks and the final one-line message land here."""
        return self.dir / "console.log"

    @property
    def supervisor_log(self) -> Path:
        return self.dir / "supervisor.log"

    @property
    def checkpoints(self) -> Path:
        return self.dir / "checkpoints"

    def has_checkpoint(self) -> bool:
        return self.checkpoints.is_dir() and any(p.name.startswith("step_") for p in self.checkpoints.iterdir())
