"""`jobs --workdir W list|stop ID|resume ID|logs ID`: look after the jobs of a workdir from a shell.

Acts on every user's jobs unless `--user NAME` narrows it to one user's. `resume` also runs one
scheduling pass, so the job starts at once when its GPUs are free even with no studio running.
Exit 0 on success; 2 with a one-line message on stderr for an unknown job, a job in the wrong
state, or a missing workdir.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from trainer_backend.jobs import ADMIN, JobError, JobInfo, JobRunner
from trainer_backend.jobs.outcome import resume_point


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workdir", default="workdir", help="the studio's workdir (holds jobs.db and jobs/)")
    parser.add_argument("--user", default=None, help="act as this studio user (default: every user's jobs)")
    actions = parser.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="all jobs, oldest first")
    listing.add_argument("--json", action="store_true", help="one JSON object per job")
    for name, help_text in (("stop", "stop a job: checkpoint, then exit"),
                            ("resume", "continue a stopped or failed job from its last checkpoint")):
        actions.add_parser(name, help=help_text).add_argument("job_id")
    logs = actions.add_parser("logs", help="the end of a job's train.log (and process output when it failed)")
    logs.add_argument("job_id")
    logs.add_argument("-n", type=int, default=50, help="number of lines")


def run(args: argparse.Namespace) -> int:
    workdir = Path(args.workdir)
    if not workdir.is_dir():
        print(f"workdir {workdir} does not exist", file=sys.stderr)
        return 2
    runner = JobRunner(workdir, warm_workers=False)   # a command ends long before a worker is ready
    user = ADMIN if args.user is None else args.user
    try:
        if args.action == "list":
            print_jobs(runner.list(user), args.json)
        elif args.action == "stop":
            runner.stop(args.job_id, user)
            print(f"{args.job_id}: {runner.get(args.job_id, user).state}")
        elif args.action == "resume":
            checkpoint = runner.resume(args.job_id, user)
            runner.schedule()
            print(f"{args.job_id}: {runner.get(args.job_id, user).state}; {resume_point(checkpoint)}")
        else:
            print(runner.log_tail(args.job_id, user, args.n))
    except (JobError, PermissionError) as err:
        print(err, file=sys.stderr)
        return 2
    return 0


def print_jobs(jobs: list[JobInfo], as_json: bool) -> None:
    if as_json:
        for job in jobs:
            print(json.dumps(dataclasses.asdict(job), default=str))
        return
    print(f"{'id':<22} {'owner':<10} {'state':<10} {'gpus':<8} {'step':>11} {'loss':>8}  name / reason")
    for job in jobs:
        step = f"{job.progress.step}/{job.progress.total}" if job.progress.total else str(job.progress.step)
        loss = f"{job.last_loss:.4f}" if job.last_loss is not None else "-"
        gpus = ",".join(map(str, job.gpus)) or "cpu"
        note = f"{job.name}" + (f": {job.exit_reason}" if job.exit_reason else "")
        print(f"{job.id:<22} {job.owner[:10]:<10} {job.state:<10} {gpus:<8} {step:>11} {loss:>8}  {note}")
