"""`retries=` / `retry_on=`: the pure decision on every state, the option's validation,
and what a retry does to a `Job` (driven through its `JobControl`, as a backend does).

No scheduler here: the Slurm states come from sacct/squeue lines in the formats the
lab's Slurm prints (tests/data/slurm). NODE_FAIL and PREEMPTED cannot be produced on the
shared lab without draining a node or reconfiguring preemption (which the lab's users
may not do), so the Slurm state table is covered by these recorded-format lines here,
and the whole batch path by the fake Slurm in tests/fake/test_retries.py.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from clustrix import (
    Client,
    ConfigError,
    JobLostError,
    JobState,
    NodeFailureError,
    RemoteError,
    ResultIntegrityError,
    SerializationError,
    cluster,
)
from clustrix._job import Job
from clustrix._options import Resources
from clustrix._payload import Payload
from clustrix._retry import (
    DEFAULT_RETRY_ON,
    RETRYABLE,
    RetryPolicy,
    attach,
    attempts_text,
    ended_as,
    parse_retry_on,
    should_retry,
)
from clustrix._settle import Ending, settle
from clustrix.backends.base import Submission
from clustrix.schedulers.slurm import SLURM

EVERY_STATE = list(JobState)


# -- the decision ---------------------------------------------------------------------
@pytest.mark.parametrize("state", EVERY_STATE, ids=str)
def test_by_default_only_cluster_failures_are_retried(state: JobState) -> None:
    policy = RetryPolicy(retries=2)
    expected = state in (JobState.NODE_FAIL, JobState.PREEMPTED, JobState.LOST)
    assert should_retry(policy, 1, state) is expected
    assert should_retry(policy, 2, state) is expected
    assert should_retry(policy, 3, state) is False  # retries=2: attempts 1..3
    assert should_retry(RetryPolicy(retries=0), 1, state) is False


@pytest.mark.parametrize("state", EVERY_STATE, ids=str)
def test_retry_on_names_exactly_what_is_retried(state: JobState) -> None:
    policy = RetryPolicy(retries=1, retry_on=RETRYABLE)
    assert should_retry(policy, 1, state) is (state in RETRYABLE)
    only_timeouts = RetryPolicy(retries=1, retry_on=frozenset({JobState.TIMEOUT}))
    assert should_retry(only_timeouts, 1, state) is (state is JobState.TIMEOUT)


@pytest.mark.parametrize("state", EVERY_STATE, ids=str)
def test_a_task_clustrix_was_asked_to_cancel_is_never_retried(state: JobState) -> None:
    policy = RetryPolicy(retries=5, retry_on=RETRYABLE)
    assert should_retry(policy, 1, state, cancel_requested=True) is False


def test_live_completed_and_cancelled_states_are_never_retried() -> None:
    assert RETRYABLE.isdisjoint(
        {JobState.PENDING, JobState.QUEUED, JobState.RUNNING, JobState.COMPLETED}
    )
    assert JobState.CANCELLED not in RETRYABLE
    assert {JobState.NODE_FAIL, JobState.PREEMPTED, JobState.LOST} == DEFAULT_RETRY_ON
    assert should_retry(RetryPolicy(3, RETRYABLE), 1, None) is False


def test_what_each_error_counts_as() -> None:
    assert ended_as(ValueError("mine"), JobState.FAILED) is JobState.FAILED
    assert ended_as(RemoteError("x", type_name="Odd", traceback=""), JobState.FAILED) is (
        JobState.FAILED
    )
    lost = JobLostError("gone", state=JobState.LOST)
    assert ended_as(lost, JobState.FAILED) is JobState.LOST
    # clustrix's own trouble with a result: another attempt would not change it
    assert ended_as(ResultIntegrityError("bad digest"), JobState.FAILED) is None
    assert ended_as(SerializationError("no"), JobState.FAILED) is None


def test_the_final_error_tells_the_attempts() -> None:
    policy = RetryPolicy(retries=2)
    history = ["attempt 1 ended LOST: a", "attempt 2 ended NODE_FAIL: b"]
    assert attempts_text(policy, 3, history, JobState.LOST) == (
        "[after 3 attempts (retries=2 used up); attempt 1 ended LOST: a; "
        "attempt 2 ended NODE_FAIL: b]"
    )
    assert attempts_text(policy, 1, [], JobState.TIMEOUT) == (
        "[not retried: TIMEOUT is not in retry_on]"
    )
    assert attempts_text(policy, 2, history[:1], JobState.CANCELLED) == (
        "[on attempt 2; attempt 1 ended LOST: a]"
    )
    assert attempts_text(policy, 1, [], JobState.CANCELLED) == ""
    assert attempts_text(RetryPolicy(0), 1, [], JobState.LOST) == ""


# -- the option -------------------------------------------------------------------------
def test_options_are_validated_at_decoration() -> None:
    f = cluster(retries=2, retry_on=["timeout", JobState.LOST])(abs)
    assert f.cluster_options.retries == 2
    assert f.cluster_options.retry_on == {JobState.TIMEOUT, JobState.LOST}
    assert f.options(retries=0).cluster_options.retries == 0  # a call may turn it off
    assert cluster(abs).cluster_options.retries is None


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"retries": -1}, "retries=-1 must be an integer >= 0"),
        ({"retries": 1.5}, "retries=1.5 must be an integer"),
        ({"retries": True}, "retries=True must be an integer"),
        ({"retry_on": "LOST"}, "must be a collection of JobState values"),
        ({"retry_on": JobState.LOST}, "must be a collection of JobState values"),
        ({"retry_on": 3}, "must be a collection of JobState values"),
        ({"retry_on": ["nope"]}, "'nope', which is not a JobState"),
        ({"retry_on": [JobState.CANCELLED]}, "CANCELLED, after which a task is never retried"),
        ({"retry_on": [JobState.COMPLETED]}, "COMPLETED, after which a task is never retried"),
        ({"retry_on": ["running"]}, "choose among FAILED, LOST, NODE_FAIL, OUT_OF_MEMORY"),
    ],
)
def test_bad_values_are_config_errors(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(".", r"\.")):
        cluster(**options)


async def test_bad_values_raise_before_anything_is_submitted() -> None:
    async with Client(cluster_type="local") as client:
        with pytest.raises(ConfigError, match="retry_on"):
            client.options(retries=1, retry_on=[JobState.PENDING])
        assert len(client._jobs) == 0


def test_parse_retry_on_accepts_names_in_any_case() -> None:
    assert parse_retry_on(("node_fail", "Preempted")) == {JobState.NODE_FAIL, JobState.PREEMPTED}
    assert parse_retry_on([]) == frozenset()


# -- what a retry does to the Job -------------------------------------------------------
class _Client:
    """Stands in for the Client the Job belongs to (only its loop is used here)."""


def _submission(jobs: list[Job[Any]]) -> Submission:
    payload = Payload(b"function", [b"args-%d" % i for i in range(len(jobs))])
    controls = [job._control for job in jobs]
    from clustrix import ClusterConfig

    return Submission("cxkey", "f", payload, Resources(), ClusterConfig(), controls)


def _sweep(count: int) -> list[Job[Any]]:
    return [Job(_Client(), key=f"cxkey.{i}", name="f", index=i) for i in range(count)]  # type: ignore[arg-type]


def _retrying(jobs: list[Job[Any]], policy: RetryPolicy) -> list[Submission]:
    resubmitted: list[Submission] = []

    def resubmit(submission: Submission) -> bool:
        resubmitted.append(submission)
        return True

    attach(_submission(jobs), policy, resubmit, lambda: True)
    return resubmitted


def _slurm_verdict(line: str) -> Any:
    """The verdict a batch backend reaches for a task whose element sacct reports so."""
    (status,) = SLURM.parse_accounting(line).values()
    return settle(Ending(status.state, status.exit_code, status.reason))


async def test_a_node_failure_from_sacct_resubmits_only_that_task() -> None:
    """sacct lines in the lab's format (``JobID|State|ExitCode``): element 7_1 ended
    NODE_FAIL and 7_2 PREEMPTED; the two go out again in ONE one-off submission with
    their own arguments, as second attempts of the same Jobs."""
    jobs = _sweep(4)
    resubmitted = _retrying(jobs, RetryPolicy(retries=1))
    first = [job._control for job in jobs]
    first[1].set_state(JobState.RUNNING, job_id="7_1")
    first[2].set_state(JobState.RUNNING, job_id="7_2")
    first[1].end(_slurm_verdict("7_1|NODE_FAIL|0:0\n"))
    first[2].end(_slurm_verdict("7_2|PREEMPTED|0:0\n"))
    first[0].set_result(0)
    assert jobs[1].state is JobState.PENDING and jobs[1].job_id is None
    assert jobs[1].reason is not None and "attempt 1 ended NODE_FAIL" in jobs[1].reason
    assert [job.attempts for job in jobs] == [1, 2, 2, 1]
    assert not jobs[1].done() and not jobs[2].done()
    assert first[1].done() and first[2].done()  # to the first run, those tasks are over
    await asyncio.sleep(0)  # retries of one loop turn go out together
    (again,) = resubmitted
    assert again.key == "cxkeyr1" and list(again.payload.arguments) == [b"args-1", b"args-2"]
    assert again.payload.function == b"function"
    assert [c.job for c in again.jobs] == [jobs[1], jobs[2]]
    assert [c.attempt for c in again.jobs] == [2, 2]
    assert [job.key for job in jobs] == ["cxkey.0", "cxkey.1", "cxkey.2", "cxkey.3"]
    # a late report about the first attempt changes nothing
    first[1].set_state(JobState.RUNNING, job_id="7_1")
    assert jobs[1].state is JobState.PENDING
    # the second attempt: a result for one, a second node failure for the other
    again.jobs[0].set_result(10)
    again.jobs[1].end(_slurm_verdict("9|NODE_FAIL|0:0\n"))
    assert await jobs[1] == 10
    with pytest.raises(NodeFailureError) as info:
        await jobs[2]
    assert str(info.value) == (
        "f (job None) ended NODE_FAIL: node_fail [after 2 attempts (retries=1 used up); "
        "attempt 1 (job 7_2) ended PREEMPTED: preempted]"
    )
    assert jobs[2].attempts == 2 and jobs[2].state is JobState.NODE_FAIL
    assert len(resubmitted) == 1


@pytest.mark.parametrize(
    ("line", "state"),
    [
        ("5|TIMEOUT|0:15\n", JobState.TIMEOUT),
        ("5|OUT_OF_MEMORY|0:125\n", JobState.OUT_OF_MEMORY),
        ("5|FAILED|3:0\n", JobState.FAILED),
        ("5|CANCELLED by 1001|0:15\n", JobState.CANCELLED),
    ],
)
async def test_other_endings_are_not_retried_by_default(line: str, state: JobState) -> None:
    jobs = _sweep(1)
    resubmitted = _retrying(jobs, RetryPolicy(retries=3))
    jobs[0]._control.end(_slurm_verdict(line))
    await asyncio.sleep(0)
    assert resubmitted == [] and jobs[0].state is state and jobs[0].attempts == 1


async def test_the_tasks_own_exception_is_retried_only_when_asked() -> None:
    jobs = _sweep(2)
    resubmitted = _retrying(jobs, RetryPolicy(retries=1))
    jobs[0]._control.set_exception(ValueError("mine"))
    with pytest.raises(ValueError, match="mine") as info:
        await jobs[0]
    assert "[not retried: FAILED is not in retry_on]" in info.value.__notes__
    retried = _sweep(1)
    resubmitted = _retrying(retried, RetryPolicy(1, frozenset({JobState.FAILED})))
    retried[0]._control.set_exception(ValueError("flaky"))
    await asyncio.sleep(0)
    assert len(resubmitted) == 1 and retried[0].attempts == 2


async def test_a_cancelled_or_closing_client_ends_the_job_instead() -> None:
    jobs = _sweep(2)
    resubmitted = _retrying(jobs, RetryPolicy(retries=1))
    jobs[0]._control.mark_cancel_requested()
    jobs[0]._control.fail(JobState.LOST, "vanished")  # cancelled meanwhile
    assert jobs[0].state is JobState.CANCELLED
    closed = _sweep(1)
    attach(_submission(closed), RetryPolicy(retries=1), resubmitted.append, lambda: False)
    closed[0]._control.fail(JobState.LOST, "vanished")
    with pytest.raises(JobLostError, match="ended LOST: vanished\n"):
        await closed[0]
    await asyncio.sleep(0)
    assert resubmitted == []


def test_retry_keys_fit_a_job_name_and_never_name_an_original() -> None:
    from clustrix._retry import retry_key
    from clustrix.schedulers.base import check_job_name

    key = "cx0123456789ab"
    assert retry_key(key, 1) == "cx0123456789ar1" and check_job_name(retry_key(key, 1))
    assert retry_key(key, 12) == "cx0123456789r12"
    assert retry_key("cxkey", 2) == "cxkeyr2"
