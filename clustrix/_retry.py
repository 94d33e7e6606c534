"""Retrying tasks that ended for a reason outside them: ``retries=N``, ``retry_on=``.

A task whose attempt ended in a state of `retry_on` (by default NODE_FAIL, PREEMPTED
and LOST: the node, the scheduler or the machine failed it, not its own code) is
submitted again, up to `retries` more times, as a new attempt of the SAME `Job` (same
key; ``job.attempts`` counts them; its state goes back to PENDING, with the reason in
``job.reason``). Only that task is resubmitted, in a one-task submission; tasks of one
sweep that fail in the same loop turn (a whole node lost) go out together. A task
clustrix was asked to cancel is never retried, nor one that failed for clustrix's own
reasons (a result that does not unpickle, a refused submission).

`should_retry` is the whole decision, pure; `RetryHook` does the bookkeeping.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ._exceptions import ClustrixError, ConfigError, JobError, RemoteError
from ._states import JobState

if TYPE_CHECKING:
    from ._job import JobControl
    from .backends.base import Submission

#: What ``retry_on`` is when not given: failures of the cluster, not of the task.
DEFAULT_RETRY_ON = frozenset({JobState.NODE_FAIL, JobState.PREEMPTED, JobState.LOST})
#: The states ``retry_on`` may name (a cancelled task is never retried).
RETRYABLE = frozenset(
    {
        JobState.FAILED,
        JobState.TIMEOUT,
        JobState.OUT_OF_MEMORY,
        JobState.NODE_FAIL,
        JobState.PREEMPTED,
        JobState.LOST,
    }
)
_NAME_LIMIT = 15  # characters of a job name on every scheduler (PBS's limit)
_MESSAGE_KEEP = 160  # characters of an earlier attempt's error kept in the final one


@dataclass(frozen=True)
class RetryPolicy:
    """How often, and after which endings, a task is submitted again."""

    retries: int
    retry_on: frozenset[JobState] = DEFAULT_RETRY_ON


def parse_retry_on(value: object) -> frozenset[JobState]:
    """`retry_on` as a set of states (`JobState` values or their names), or ConfigError."""
    example = "e.g. retry_on={JobState.NODE_FAIL, JobState.LOST, JobState.TIMEOUT}"
    if isinstance(value, str | bytes | JobState) or not isinstance(value, Iterable):
        raise ConfigError(f"retry_on={value!r} must be a collection of JobState values ({example})")
    states: set[JobState] = set()
    for item in value:
        state = item
        if isinstance(item, str):
            state = JobState.__members__.get(item.upper(), item)
        if not isinstance(state, JobState):
            raise ConfigError(
                f"retry_on has {item!r}, which is not a JobState; use JobState members or "
                f"their names ({example})"
            )
        if state not in RETRYABLE:
            allowed = ", ".join(sorted(s.value for s in RETRYABLE))
            raise ConfigError(
                f"retry_on has {state.value}, after which a task is never retried; "
                f"choose among {allowed}"
            )
        states.add(state)
    return frozenset(states)


def ended_as(error: BaseException, state: JobState) -> JobState | None:
    """The state a retry decision is about, for an attempt that ended with `error`.

    The task's own exception counts as FAILED; a `JobError` carries its state; any
    other clustrix error (a result that does not unpickle, a refused submission) is
    not the kind of ending a new attempt could change: None.
    """
    if isinstance(error, JobError):
        return error.state or state
    if isinstance(error, RemoteError) or not isinstance(error, ClustrixError):
        return JobState.FAILED
    return None


def should_retry(
    policy: RetryPolicy, attempt: int, state: JobState | None, *, cancel_requested: bool = False
) -> bool:
    """Whether attempt `attempt` (from 1) that ended in `state` is followed by another."""
    if cancel_requested or state is None or state not in RETRYABLE:
        return False
    return state in policy.retry_on and attempt <= policy.retries


def attempts_text(
    policy: RetryPolicy, attempt: int, history: Sequence[str], state: JobState | None
) -> str:
    """What a task's final error says about its attempts: how many were made and how
    the earlier ones ended, or why its ending was not retried ("" if nothing to say)."""
    if policy.retries == 0 and attempt == 1:
        return ""
    if state is not None and state in policy.retry_on and attempt > policy.retries:
        text = f"after {attempt} attempts (retries={policy.retries} used up)"
    elif state in RETRYABLE - policy.retry_on:
        text = f"not retried: {state.value} is not in retry_on"
        text += f" (attempt {attempt})" if attempt > 1 else ""
    elif attempt > 1:
        text = f"on attempt {attempt}"
    else:
        return ""
    return f"[{text}{'; ' if history else ''}{'; '.join(history)}]"


@dataclass
class _Batch:
    """The retries of one submission collected in one loop turn."""

    positions: list[int] = field(default_factory=list)
    controls: list[JobControl[Any]] = field(default_factory=list)


class RetryHook:
    """The retries of one submission: its policy, its arguments and how to resubmit.

    `resubmit` starts a submission in the background and returns False if it cannot
    (the client closed). Each task's `JobControl` holds a `TaskRetry` naming this hook;
    `JobControl.set_exception` asks it before ending the job.
    """

    def __init__(
        self,
        policy: RetryPolicy,
        original: Submission,
        resubmit: Callable[[Submission], bool],
        accepting: Callable[[], bool],
    ) -> None:
        self.policy = policy
        self._original = original
        self._resubmit = resubmit
        self._accepting = accepting
        self._batch: _Batch | None = None
        self._count = 0

    def take(
        self, control: JobControl[Any], position: int, error: BaseException, state: JobState
    ) -> bool:
        """Start another attempt of `control`'s task instead of ending its job with
        `error` in `state`, if the policy says so; return whether it did."""
        ended = ended_as(error, state)
        retry = should_retry(
            self.policy, control.attempt, ended, cancel_requested=control.cancel_requested
        )
        if not retry or ended is None or not self._accepting():
            return False
        where = f" (job {control.job_id})" if control.job_id else ""
        text = str(error).partition(f"ended {ended.value}: ")[2] or str(error)
        history = f"attempt {control.attempt}{where} ended {ended.value}: {_short(text, error)}"
        successor = control.next_attempt(
            f"attempt {control.attempt} ended {ended.value}; retrying", history
        )
        if self._batch is None:
            self._batch = _Batch()
            asyncio.get_running_loop().call_soon(self._flush)
        self._batch.positions.append(position)
        self._batch.controls.append(successor)
        return True

    def _flush(self) -> None:
        from ._payload import Payload
        from .backends.base import Submission

        batch, self._batch = self._batch, None
        if batch is None:
            return
        self._count += 1
        original = self._original
        arguments = [original.payload.arguments[p] for p in batch.positions]
        submission = Submission(
            retry_key(original.key, self._count),
            original.name,
            Payload(original.payload.function, arguments),
            original.resources,
            original.config,
            batch.controls,
        )
        if not self._accepting() or not self._resubmit(submission):
            for control in batch.controls:
                control.fail(JobState.CANCELLED, "the client closed before its retry was submitted")


@dataclass(frozen=True)
class TaskRetry:
    """What a task's `JobControl` needs to be retried: the hook and its position."""

    hook: RetryHook
    position: int

    @property
    def policy(self) -> RetryPolicy:
        return self.hook.policy

    def intercept(self, control: JobControl[Any], error: BaseException, state: JobState) -> bool:
        """Retry instead of ending the job with `error` in `state` (True), or let it end
        (False; the task's own exception gets a note on its attempts)."""
        if self.hook.take(control, self.position, error, state):
            return True
        if not isinstance(error, JobError):  # a JobError's message says it (`suffix`)
            text = attempts_text(
                self.policy, control.attempt, control.history, ended_as(error, state)
            )
            if text:
                error.add_note(text)
        return False

    def suffix(self, control: JobControl[Any], state: JobState) -> str:
        """What a `JobError` message ending in `state` adds about the attempts."""
        text = attempts_text(self.policy, control.attempt, control.history, state)
        return f" {text}" if text else ""


def attach(
    submission: Submission,
    policy: RetryPolicy,
    resubmit: Callable[[Submission], bool],
    accepting: Callable[[], bool],
) -> None:
    """Make every task of `submission` retried as `policy` says."""
    hook = RetryHook(policy, submission, resubmit, accepting)
    for position, control in enumerate(submission.jobs):
        control.retry = TaskRetry(hook, position)


def retry_key(key: str, number: int) -> str:
    """The key of retry submission `number` (from 1) of the submission `key`.

    It names the submission on the cluster (job name, run directory), where names are
    at most 15 characters (PBS): the original key's start, then ``r<number>``; keys
    clustrix makes are ``cx`` and hex digits, so it never names an original.
    """
    suffix = f"r{number}"
    return key[: _NAME_LIMIT - len(suffix)] + suffix


def _short(text: str, error: BaseException) -> str:
    text = text or type(error).__name__
    return text if len(text) <= _MESSAGE_KEEP else text[: _MESSAGE_KEEP - 3] + "..."
