"""Errors a user of the job runner can cause; each carries one message meant to be shown as is."""
from __future__ import annotations


class JobError(Exception):
    """Base of the user-facing job errors."""


class JobNotFound(JobError, LookupError):
    """No job with this id in the workdir (or the id is not a job id at all)."""


class JobStateError(JobError):
    """The job is in a state where the action makes no sense (stop a completed job, delete a running one)."""


class DiskSpaceError(JobError, OSError):
    """The workdir has less free space than the runner's floor."""


class GpuRequestError(JobError, ValueError):
    """The job asks for GPUs this machine does not have."""
