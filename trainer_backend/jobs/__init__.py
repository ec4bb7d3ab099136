"""Jobs: SQLite registry, GPU-aware FIFO queue, detached supervised process groups."""
from .errors import DiskSpaceError, GpuRequestError, JobError, JobNotFound, JobStateError
from .info import COMPLETED, FAILED, QUEUED, RUNNING, STOPPED, STOPPING, JobInfo, Progress
from .runner import ADMIN, JobRunner

__all__ = ["ADMIN", "COMPLETED", "FAILED", "QUEUED", "RUNNING", "STOPPED", "STOPPING", "DiskSpaceError",
           "GpuRequestError", "JobError", "JobInfo", "JobNotFound", "JobRunner", "JobStateError", "Progress"]
