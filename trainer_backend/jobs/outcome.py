"""How a train attempt ended, from its exit code, its error events and its last stderr line
(the process contract in docs/architecture.md)."""
from __future__ import annotations

import signal
from dataclasses import dataclass

from .info import COMPLETED, FAILED, STOPPED

EXIT_OK, EXIT_BAD_INPUT, EXIT_OOM, EXIT_STOPPED = 0, 2, 3, 10  # 1 = anything else

OOM_LEVERS = ("lower train.micro_batch_size (raising train.grad_accum keeps the effective batch), "
              "set train.gradient_checkpointing to on, shorten template.max_seq_len, or use method qlora")


@dataclass(frozen=True)
class Outcome:
    state: str
    reason: str | None
    exit_code: int | None = None   # of the train command; negative = killed by that signal
    oom: bool = False


def classify(exit_code: int, stop_requested: bool, error_events: list[dict], last_stderr: str | None,
             grace_s: float) -> Outcome:
    outcome = _classify(exit_code, stop_requested, error_events, last_stderr, grace_s)
    return Outcome(outcome.state, outcome.reason, exit_code, outcome.oom)


def _classify(exit_code: int, stop_requested: bool, error_events: list[dict], last_stderr: str | None,
              grace_s: float) -> Outcome:
    detail = _detail(error_events, last_stderr)
    oom = exit_code == EXIT_OOM or any(e.get("reason") == "oom" for e in error_events)
    if exit_code == EXIT_OK:
        return Outcome(COMPLETED, None)
    if exit_code == EXIT_STOPPED:
        return Outcome(STOPPED, "stopped on request; checkpoint written")
    if stop_requested and exit_code < 0:
        return Outcome(STOPPED, f"stopped on request; killed after the {grace_s:g} s grace period "
                                "(the current step was not checkpointed)")
    if oom:
        return Outcome(FAILED, f"out of memory ({detail or 'exit code 3'}): {OOM_LEVERS}", oom=True)
    if exit_code == EXIT_BAD_INPUT:
        return Outcome(FAILED, f"bad input: {detail or 'see train.log'}")
    if exit_code < 0:
        name = _signal_name(-exit_code)
        hint = " (SIGKILL from outside: often the system running out of memory)" if -exit_code == signal.SIGKILL else ""
        return Outcome(FAILED, f"killed by {name}{hint}")
    return Outcome(FAILED, detail or f"exited with code {exit_code}")


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
