"""Jobs: SQLite registry, GPU-aware FIFO queue, detached supervised process groups."""
from .errors import DiskSpaceError, GpuRequestError, JobError, JobNotFound, JobStateError
from .info import CHAT, COMPLETED, FAILED, QUEUED, RUNNING, STOPPED, STOPPING, TRAIN, JobInfo, Progress
from .runner import ADMIN, JobRunner

__all__ = ["ADMIN", "CHAT", "COMPLETED", "FAILED", "QUEUED", "RUNNING", "STOPPED", "STOPPING", "TRAIN", "DiskSpaceError",
           "GpuRequestError", "JobError", "JobInfo", "JobNotFound", "JobRunner", "JobStateError", "Progress"]
