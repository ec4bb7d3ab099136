"""Where a job's files live: `<workdir>/jobs/<job_id>/`; the layout inside is contracts.JobPaths."""
from __future__ import annotations

from pathlib import Path

from .. import contracts
from .ids import check_job_id


class JobPaths(contracts.JobPaths):
    @classmethod
    def of(cls, workdir: Path, job_id: str) -> "JobPaths":
        """The files of job `job_id`; an id that is not a job id (`../x`) raises JobNotFound."""
        return cls(Path(workdir).resolve() / "jobs" / check_job_id(job_id))
