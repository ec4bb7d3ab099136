"""How a train attempt ended, from its exit code, its error events and its last stderr line
(the process contract in docs/architecture.md)."""
from __future__ import annotations

import signal
from dataclasses import dataclass

from ..contracts import ExitCode, Reason, disk_full_message
from ..messages import Notice, msg
from .info import COMPLETED, FAILED, STOPPED


@dataclass(frozen=True)
class Outcome:
    state: str
    reason: str | None
    exit_code: int | None = None   # of the train command; negative = killed by that signal
    oom: bool = False
    kind: Reason | None = None     # of a failure, as an error event would name it
    notice: Notice | None = None   # a failure's reason, to show in the user's language

    @classmethod
    def ended(cls, state: str, notice: Notice) -> "Outcome":
        return cls(state, str(notice), notice=notice)

    @classmethod
    def failed(cls, notice: Notice, exit_code: int | None = None, oom: bool = False,
               kind: Reason | None = None) -> "Outcome":
        return cls(FAILED, str(notice), exit_code, oom, kind, notice)


def resume_point(checkpoint: str | None) -> Notice:
    """Where a resume of the job would continue, as the Monitor and the Jobs tab say it."""
    if checkpoint is None:
        return msg("job.resume_from_zero")
    return msg("job.resume_from", checkpoint=checkpoint)


def classify(exit_code: int, stop_requested: bool, error_events: list[dict], last_stderr: str | None,
             grace_s: float, checkpoint: str | None = None) -> Outcome:
    """`checkpoint`: the job's newest complete checkpoint once the attempt is over."""
    outcome = _classify(exit_code, stop_requested, error_events, last_stderr, grace_s, checkpoint)
    return Outcome(outcome.state, outcome.reason, exit_code, outcome.oom, outcome.kind, outcome.notice)


def _classify(exit_code: int, stop_requested: bool, error_events: list[dict], last_stderr: str | None,
              grace_s: float, checkpoint: str | None) -> Outcome:
    detail = _detail(error_events, last_stderr)
    oom_events = [e for e in error_events if e.get("reason") == Reason.OOM]
    if exit_code == ExitCode.OK:
        return Outcome(COMPLETED, None)
    if exit_code == ExitCode.STOPPED:
        return Outcome.ended(STOPPED, msg("job.stopped", resume=resume_point(checkpoint)))
    if stop_requested and exit_code == -signal.SIGTERM:  # the trainer keeps SIGTERM's default until step 1
        return Outcome.ended(STOPPED, msg("job.stopped_before_first_step", resume=resume_point(checkpoint)))
    if stop_requested and exit_code < 0:
        return Outcome.ended(STOPPED, msg("job.stopped_killed", grace=f"{grace_s:g}", resume=resume_point(checkpoint)))
    if oom_events:  # the trainer's message names the step, the batch and the levers
        return Outcome.failed(_detail(oom_events, None), oom=True, kind=Reason.OOM)
    kind, notice = _failure(exit_code, detail)
    return Outcome.failed(notice, oom=kind == Reason.OOM, kind=kind)


def _failure(exit_code: int, detail: Notice | None) -> tuple[Reason, Notice]:
    if exit_code == ExitCode.OOM:
        return Reason.OOM, msg("job.oom_exit", detail=detail or "exit code 3", levers=msg("job.oom_levers"))
    if exit_code == ExitCode.DIVERGED:
        return Reason.DIVERGED, msg("job.diverged_exit", detail=detail or msg("job.nan"))
    if exit_code == ExitCode.DISK_FULL:
        return Reason.DISK_FULL, detail or disk_full_message(None, msg("job.while_training"))
    if exit_code == ExitCode.BAD_INPUT:
        return Reason.CONFIG, msg("job.bad_input", detail=detail or msg("job.see_log"))
    if exit_code < 0:
        key = "job.killed_oom" if -exit_code == signal.SIGKILL else "job.killed"
        return Reason.KILLED, msg(key, signal=_signal_name(-exit_code))
    return Reason.CRASH, detail or msg("job.exit_code", code=exit_code)


def _detail(error_events: list[dict], last_stderr: str | None) -> Notice | None:
    """What the last error event said (its notice, or its first line), else the last stderr line."""
    for event in reversed(error_events):
        if event.get("message"):
            return Notice.from_json(event.get("notice")) or msg("detail", detail=str(event["message"]).splitlines()[0])
    return msg("detail", detail=last_stderr) if last_stderr else None


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"
