"""Where a job's files live: `<workdir>/jobs/<job_id>/`; the layout inside is contracts.JobPaths.
Warm workers (jobs/warm.py) keep theirs in `<workdir>/warm/`."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .. import contracts
from .ids import check_job_id


class JobPaths(contracts.JobPaths):
    @classmethod
    def of(cls, workdir: Path, job_id: str) -> "JobPaths":
        """The files of job `job_id`; an id that is not a job id (`../x`) raises JobNotFound."""
        return cls(Path(workdir).resolve() / "jobs" / check_job_id(job_id))

    @property
    def warm_claim(self) -> Path:
        """The ready record of the warm worker this job claimed (jobs/warm.py)."""
        return self.dir / "warm.claim"

    @property
    def warm_request(self) -> Path:
        """The hand-over request, moved here by the warm worker as its answer."""
        return self.dir / "warm.request"

    @property
    def warm_exit(self) -> Path:
        """The exit code of the warm worker that ran the job (it is not its supervisor's child)."""
        return self.dir / "warm.exit"


@dataclass(frozen=True)
class WarmPaths:
    """The files of one warm worker, `<workdir>/warm/gpu<N>-<token>.*`: `.importing` (made by the
    runner before the worker starts), renamed to `.ready` by the worker once its imports are done;
    `.request`, written by the supervisor that claimed it. `gpu<N>.log` is the output of that GPU's workers."""
    dir: Path
    name: str
    gpu: int

    @classmethod
    def of(cls, workdir: Path, gpu: int, token: str) -> "WarmPaths":
        return cls(Path(workdir).resolve() / "warm", f"gpu{gpu}-{token}", gpu)

    @classmethod
    def ready_on(cls, workdir: Path, gpu: int) -> list["WarmPaths"]:
        """The workers of `gpu` that are ready now (oldest first)."""
        folder = Path(workdir).resolve() / "warm"
        ready = sorted(folder.glob(f"gpu{gpu}-*.ready"), key=lambda p: p.name)
        return [cls(folder, p.name.removesuffix(".ready"), gpu) for p in ready]

    @property
    def importing(self) -> Path:
        return self.dir / f"{self.name}.importing"

    @property
    def ready(self) -> Path:
        return self.dir / f"{self.name}.ready"

    @property
    def request(self) -> Path:
        return self.dir / f"{self.name}.request"

    @property
    def log(self) -> Path:
        return self.dir / f"gpu{self.gpu}.log"
