"""How a train attempt ended, from its exit code, its error events and its last stderr line
(the process contract in docs/architecture.md)."""
from __future__ import annotations

import signal
from dataclasses import dataclass

from ..contracts import OOM_LEVERS, ExitCode, Reason, disk_full_message
from .info import COMPLETED, FAILED, STOPPED


@dataclass(frozen=True)
class Outcome:
    state: str
    reason: str | None
    exit_code: int | None = None   # of the train command; negative = killed by that signal
    oom: bool = False
    kind: Reason | None = None     # of a failure, as an error event would name it


def resume_point(checkpoint: str | None) -> str:
    """Where a resume of the job would continue, as the Monitor and the Jobs tab say it."""
    if checkpoint is None:
        return "no checkpoint was written: a resume starts from step 0"
    return f"a resume continues from checkpoint {checkpoint}"


def classify(exit_code: int, stop_requested: bool, error_events: list[dict], last_stderr: str | None,
             grace_s: float, checkpoint: str | None = None) -> Outcome:
    """`checkpoint`: the job's newest complete checkpoint once the attempt is over."""
    outcome = _classify(exit_code, stop_requested, error_events, last_stderr, grace_s, checkpoint)
    return Outcome(outcome.state, outcome.reason, exit_code, outcome.oom, outcome.kind)


def _classify(exit_code: int, stop_requested: bool, error_events: list[dict], last_stderr: str | None,
              grace_s: float, checkpoint: str | None) -> Outcome:
    detail = _detail(error_events, last_stderr)
    oom_events = [e for e in error_events if e.get("reason") == Reason.OOM]
    if exit_code == ExitCode.OK:
        return Outcome(COMPLETED, None)
    if exit_code == ExitCode.STOPPED:
        return Outcome(STOPPED, f"stopped on request; {resume_point(checkpoint)}")
    if stop_requested and exit_code == -signal.SIGTERM:  # the trainer keeps SIGTERM's default until step 1
        return Outcome(STOPPED, f"stopped on request before the first step; {resume_point(checkpoint)}")
    if stop_requested and exit_code < 0:
        return Outcome(STOPPED, f"stopped on request; killed after the {grace_s:g} s grace period "
                                f"(the current step was not checkpointed); {resume_point(checkpoint)}")
    if oom_events:  # the trainer's message names the step, the batch and the levers
        return Outcome(FAILED, _detail(oom_events, None), oom=True, kind=Reason.OOM)
    failure = _failure(exit_code, detail)
    return Outcome(FAILED, failure[1], oom=failure[0] == Reason.OOM, kind=failure[0])


def _failure(exit_code: int, detail: str | None) -> tuple[Reason, str]:
    if exit_code == ExitCode.OOM:
        return Reason.OOM, f"out of memory ({detail or 'exit code 3'}): {OOM_LEVERS}"
    if exit_code == ExitCode.DIVERGED:
        return Reason.DIVERGED, f"diverged: {detail or 'the loss became NaN or inf'}"
    if exit_code == ExitCode.DISK_FULL:
        return Reason.DISK_FULL, detail or disk_full_message(None, "training")
    if exit_code == ExitCode.BAD_INPUT:
        return Reason.CONFIG, f"bad input: {detail or 'see train.log'}"
    if exit_code < 0:
        name = _signal_name(-exit_code)
        hint = " (often the system running out of memory)" if -exit_code == signal.SIGKILL else ""
        return Reason.KILLED, f"killed by {name} from outside the job{hint}"
    return Reason.CRASH, detail or f"exited with code {exit_code}"


def _detail(error_events: list[dict], last_stderr: str | None) -> str | None:
    for event in reversed(error_events):
        if event.get("message"):
            return str(event["message"]).splitlines()[0]
    return last_stderr


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"
