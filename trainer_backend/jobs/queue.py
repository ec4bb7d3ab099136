"""The scheduling decision, as a pure function of the queue and what is busy.

FIFO with reservation-based backfilling: jobs are considered in submission order; a job starts
when all its GPUs are free. A job that cannot start *reserves* its GPUs, so a later job may
start ahead of it only on GPUs that no earlier waiting job needs. So [0], [1], [0] run as 1 and
2 together, then 3; and a job needing [0, 1] is never starved by a stream of [0] and [1] jobs.
CPU jobs share `cpu_slots` in strict FIFO order among themselves.

Chat workers (one GPU each) share a GPU with each other, never with a training job: a chat starts
on a GPU that no training job holds or waits for, so training is never starved by chats and a
chat never lands on a GPU a job holds.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Pending:
    job_id: str
    gpus: tuple[int, ...]   # () = CPU job


def pick_startable(queue: list[Pending], busy_gpus: set[int], running_cpu_jobs: int, cpu_slots: int) -> list[str]:
    """Ids of the queued jobs that start now, in queue order."""
    blocked = set(busy_gpus)
    free_cpu = cpu_slots - running_cpu_jobs
    starts = []
    for job in queue:
        if not job.gpus:
            if free_cpu > 0:
                starts.append(job.job_id)
            free_cpu -= 1  # a waiting CPU job keeps its place ahead of later CPU jobs
            continue
        if blocked.isdisjoint(job.gpus):
            starts.append(job.job_id)
        blocked.update(job.gpus)
    return starts


def pick_chats(queue: list[Pending], training_gpus: set[int], chats_on: dict[int, int], per_gpu: int) -> list[str]:
    """Ids of the queued GPU chat workers that start now: `training_gpus` are held by, or queued
    for, training jobs; `chats_on[g]` chat workers already run on GPU g (at most `per_gpu`)."""
    counts = dict(chats_on)
    starts = []
    for job in queue:
        gpu = job.gpus[0]
        if gpu not in training_gpus and counts.get(gpu, 0) < per_gpu:
            starts.append(job.job_id)
            counts[gpu] = counts.get(gpu, 0) + 1
    return starts
