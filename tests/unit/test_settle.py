"""`settle`: how a task that ended without a result is classified (pure, no I/O)."""

from __future__ import annotations

import pytest

from clustrix._settle import OUTSIDE, Ending, Verdict, exit_code_of, settle, signal_name
from clustrix._states import JobState

CASES = [
    # the runner's timeout marker wins over everything, with the limit and the exit code
    (
        Ending(JobState.FAILED, 124, timed_out=True, time_limit=90, stderr_tail="t"),
        Verdict(JobState.TIMEOUT, "exceeded its time limit of 00:01:30", 124, "t"),
    ),
    (Ending(JobState.TIMEOUT), Verdict(JobState.TIMEOUT, "exceeded its time limit")),
    # clustrix's own cancel, whatever the scheduler says
    (
        Ending(JobState.FAILED, 137, cancel_requested=True),
        Verdict(JobState.CANCELLED, "cancelled", 137),
    ),
    # a cancel from outside says so, and becomes the job's reason
    (
        Ending(JobState.CANCELLED, reason="by admin"),
        Verdict(JobState.CANCELLED, f"{OUTSIDE} (by admin)", reason=f"{OUTSIDE} (by admin)"),
    ),
    (
        Ending(JobState.CANCELLED, reason=f"{OUTSIDE} before it started"),
        Verdict(
            JobState.CANCELLED,
            f"{OUTSIDE} before it started",
            reason=f"{OUTSIDE} before it started",
        ),
    ),
    (Ending(JobState.CANCELLED), Verdict(JobState.CANCELLED, OUTSIDE, reason=OUTSIDE)),
    # failures the cluster names keep their state and its words
    (Ending(JobState.OUT_OF_MEMORY, 137), Verdict(JobState.OUT_OF_MEMORY, "out_of_memory", 137)),
    (
        Ending(JobState.NODE_FAIL, reason="node n1 died"),
        Verdict(JobState.NODE_FAIL, "node n1 died"),
    ),
    (Ending(JobState.PREEMPTED), Verdict(JobState.PREEMPTED, "preempted")),
    (Ending(JobState.LOST, reason="gone"), Verdict(JobState.LOST, "gone")),
    # a signal, from the shell's 128 + N convention
    (Ending(JobState.FAILED, 137), Verdict(JobState.FAILED, "killed by SIGKILL (exit 137)", 137)),
    (Ending(None, 128 + 15), Verdict(JobState.FAILED, "killed by SIGTERM (exit 143)", 143)),
    # no exit status anywhere: only what is known
    (
        Ending(JobState.FAILED),
        Verdict(JobState.FAILED, "it ended without recording an exit status"),
    ),
    (Ending(JobState.FAILED, reason="NonZeroExit"), Verdict(JobState.FAILED, "NonZeroExit")),
    # a plain exit code
    (Ending(JobState.FAILED, 3), Verdict(JobState.FAILED, "exited 3 without a result", 3)),
    (Ending(JobState.COMPLETED, 0), Verdict(JobState.FAILED, "exited 0 without a result", 0)),
    (Ending(None, 255), Verdict(JobState.FAILED, "exited 255 without a result", 255)),
    # a backend's detail: the message when the cluster gave no words, else appended
    (
        Ending(JobState.OUT_OF_MEMORY, detail="the pod p was OOMKilled"),
        Verdict(JobState.OUT_OF_MEMORY, "the pod p was OOMKilled"),
    ),
    (
        Ending(JobState.FAILED, 1, detail="the container of pod p exited 1 (Error)"),
        Verdict(
            JobState.FAILED,
            "exited 1 without a result (the container of pod p exited 1 (Error))",
            1,
        ),
    ),
    (
        Ending(JobState.TIMEOUT, time_limit=2, detail="it never started"),
        Verdict(JobState.TIMEOUT, "exceeded its time limit of 00:00:02 (it never started)"),
    ),
]


@pytest.mark.parametrize(("ending", "verdict"), CASES)
def test_settle(ending: Ending, verdict: Verdict) -> None:
    assert settle(ending) == verdict


def test_exit_codes_of_processes_killed_by_a_signal_follow_the_shell() -> None:
    assert [exit_code_of(-9), exit_code_of(0), exit_code_of(3)] == [137, 0, 3]


def test_signal_names() -> None:
    assert signal_name(9) == "SIGKILL"
    assert signal_name(200) == "signal 200"
