"""How a task that ended without a result is reported: one classification for every backend.

`settle` is pure: the backends gather what they know of the task's end (the state its
scheduler, pod or process reported, the exit code, the runner's timeout marker, whether
clustrix asked for a cancel, the stderr tail) into an `Ending`, and end the job with the
`Verdict`, most specific cause first: a time limit, clustrix's own cancel, a cancel
from outside, a failure the cluster names (memory, node, preemption, loss), a signal,
no exit status at all, then a plain exit code.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass

from ._states import JobState
from ._units import format_time

OUTSIDE = "cancelled outside clustrix"
_NAMED = (JobState.OUT_OF_MEMORY, JobState.NODE_FAIL, JobState.PREEMPTED, JobState.LOST)


@dataclass(frozen=True)
class Ending:
    """What is known about the end of a task that left no result."""

    state: JobState | None = None  # what the cluster says of its element (None: nothing)
    exit_code: int | None = None
    reason: str | None = None  # the cluster's own words
    timed_out: bool = False  # the runner stopped it at its time limit
    time_limit: int | None = None  # seconds, for the message
    cancel_requested: bool = False  # clustrix itself asked for the cancel
    stderr_tail: str = ""
    detail: str = ""  # how the backend saw it end, appended to the message


@dataclass(frozen=True)
class Verdict:
    """The state a task ends in, and its error's message, exit code and stderr tail."""

    state: JobState
    message: str
    exit_code: int | None = None
    stderr_tail: str = ""
    reason: str | None = None  # the job's new `reason` (None: keep it)


def settle(ending: Ending) -> Verdict:
    """The most specific verdict `ending` supports (see the module's docstring)."""
    code, state, detail = ending.exit_code, ending.state, ending.detail
    reason = ending.reason or None
    new_reason = None
    if ending.timed_out or state is JobState.TIMEOUT:
        limit = ending.time_limit
        verdict, message = JobState.TIMEOUT, "exceeded its time limit"
        message += f" of {format_time(limit)}" if limit else ""
    elif ending.cancel_requested:
        verdict, message = JobState.CANCELLED, "cancelled"
    elif state is JobState.CANCELLED:
        why = reason or ""
        if OUTSIDE not in why:
            why = f"{OUTSIDE} ({why})" if why else OUTSIDE
        verdict, message, new_reason = JobState.CANCELLED, why, why
    elif state in _NAMED:
        verdict, message = state, reason or detail or state.value.lower()
    elif code is not None and 128 < code < 128 + 65:
        verdict, message = JobState.FAILED, f"killed by {signal_name(code - 128)} (exit {code})"
    elif code is None:  # no exit status anywhere: say only what is known
        message = reason or detail or "it ended without recording an exit status"
        verdict = JobState.FAILED
    else:
        verdict, message = JobState.FAILED, f"exited {code} without a result"
    if detail and detail not in message:
        message = f"{message} ({detail})"
    return Verdict(verdict, message, code, ending.stderr_tail, new_reason)


def exit_code_of(returncode: int) -> int:
    """A process's exit code as a shell reports it (killed by signal N: 128 + N)."""
    return 128 - returncode if returncode < 0 else returncode


def signal_name(number: int) -> str:
    """``SIGKILL`` for 9 (``signal N`` if the number names none)."""
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"
