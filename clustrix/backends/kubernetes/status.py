"""Pure Kubernetes status knowledge: pod and Job objects to `JobState`, log parsing.

The inputs are the JSON objects of the API (dicts, as a watch delivers them).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..._states import JobState
from ...oncluster.k8s_entry import MARK
from ...oncluster.runner import TIMEOUT_EXIT
from .manifests import CONTAINER, INDEX_ANNOTATION

#: Container waiting reasons that will not fix themselves; after a grace period the
#: task fails with the kubelet's message instead of waiting forever.
STUCK_REASONS = frozenset(
    {
        "ErrImagePull",
        "ImagePullBackOff",
        "InvalidImageName",
        "ErrImageNeverPull",
        "CreateContainerConfigError",
        "CreateContainerError",
        "RunContainerError",
    }
)
IMAGE_REASONS = frozenset(
    {"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"}
)
_NODE_REASONS = frozenset({"Evicted", "NodeLost", "Shutdown", "NodeShutdown", "Terminated"})


@dataclass(frozen=True)
class PodView:
    """What one pod says about the tasks of its element."""

    state: JobState
    terminal: bool = False
    reason: str | None = None
    message: str = ""
    exit_code: int | None = None
    stuck: bool = False


def _get(obj: Mapping[str, Any], *path: str) -> Any:
    value: Any = obj
    for part in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def completion_index(pod: Mapping[str, Any]) -> int:
    """The Indexed Job index of `pod` (0 for a non-indexed Job)."""
    for where in ("annotations", "labels"):
        value = _get(pod, "metadata", where, INDEX_ANNOTATION)
        if isinstance(value, str) and value.isdigit():
            return int(value)
    return 0


def _container(pod: Mapping[str, Any]) -> Mapping[str, Any]:
    for status in _get(pod, "status", "containerStatuses") or ():
        if status.get("name") == CONTAINER:
            return status  # type: ignore[no-any-return]
    return {}


def pod_view(pod: Mapping[str, Any]) -> PodView:
    """Map a pod's status to the state of the tasks it runs."""
    status = _get(pod, "status") or {}
    phase = status.get("phase", "Pending")
    container = _container(pod)
    if phase in ("Succeeded", "Failed"):
        terminated = _get(container, "state", "terminated") or {}
        code = terminated.get("exitCode")
        reason = status.get("reason") or terminated.get("reason")
        message = status.get("message") or terminated.get("message") or ""
        if phase == "Succeeded":
            return PodView(JobState.COMPLETED, True, reason, message, code)
        if terminated.get("reason") == "OOMKilled":
            return PodView(JobState.OUT_OF_MEMORY, True, "OOMKilled", message, code)
        if status.get("reason") == "DeadlineExceeded" or code == TIMEOUT_EXIT:
            return PodView(JobState.TIMEOUT, True, "DeadlineExceeded", message, code)
        if _preempted(status):
            return PodView(JobState.PREEMPTED, True, "PreemptionByScheduler", message, code)
        if status.get("reason") in _NODE_REASONS:
            return PodView(JobState.NODE_FAIL, True, status["reason"], message, code)
        return PodView(JobState.FAILED, True, reason or "Error", message, code)
    if phase == "Running":
        return PodView(JobState.RUNNING)
    if phase == "Unknown":  # its node stopped reporting; the pod may still run
        return PodView(JobState.RUNNING, reason="Unknown", message=status.get("message") or "")
    waiting = _get(container, "state", "waiting") or {}
    if waiting.get("reason"):
        reason = waiting["reason"]
        message = waiting.get("message") or ""
        return PodView(JobState.QUEUED, False, reason, message, stuck=reason in STUCK_REASONS)
    for condition in status.get("conditions") or ():
        if condition.get("type") == "PodScheduled" and condition.get("status") == "False":
            reason = condition.get("reason") or "Unschedulable"
            return PodView(JobState.QUEUED, False, reason, condition.get("message") or "")
    return PodView(JobState.QUEUED)


def _preempted(status: Mapping[str, Any]) -> bool:
    return any(
        c.get("type") == "DisruptionTarget" and c.get("reason") == "PreemptionByScheduler"
        for c in status.get("conditions") or ()
    )


def job_outcome(job: Mapping[str, Any]) -> tuple[JobState, str, str] | None:
    """(state, reason, message) once the Job is Complete or Failed, else None."""
    for condition in _get(job, "status", "conditions") or ():
        if condition.get("status") != "True":
            continue
        reason = condition.get("reason") or ""
        message = condition.get("message") or ""
        if condition.get("type") == "Complete":
            return JobState.COMPLETED, reason or "Completed", message
        if condition.get("type") == "Failed":
            state = JobState.TIMEOUT if reason == "DeadlineExceeded" else JobState.FAILED
            return state, reason or "Failed", message
    return None


def stuck_hint(reason: str | None) -> str:
    """What to check when a pod cannot start for `reason`."""
    if reason in IMAGE_REASONS:
        return "check k8s_image and k8s_image_pull_secrets"
    return "check the pod spec given in extra (a missing Secret or ConfigMap?)"


def describe(view: PodView, pod: str) -> str:
    """A one-line explanation of how the pod ended, for the task's error."""
    detail = f": {view.message}" if view.message else ""
    if view.state is JobState.OUT_OF_MEMORY:
        return f"the pod {pod} was OOMKilled: it exceeded its memory limit{detail}"
    if view.state is JobState.TIMEOUT:
        return f"the pod {pod} exceeded its time limit (activeDeadlineSeconds){detail}"
    if view.exit_code is not None:
        return f"the container of pod {pod} exited {view.exit_code} ({view.reason}){detail}"
    return f"the pod {pod} failed ({view.reason}){detail}"


@dataclass
class TaskLog:
    """One task's part of a pod log."""

    output: str = ""
    result: bytes | None = None
    too_large: tuple[int, int] | None = None
    corrupt: bool = False
    timeout: int | None = None  # seconds, if the entry point stopped it at its limit


@dataclass
class PodLog:
    """A parsed pod log: every task's part, and a Python mismatch if reported."""

    tasks: dict[int, TaskLog]
    mismatch: tuple[str, str] | None = None


_MARKER = re.compile(
    rf"^{re.escape(MARK)} (?:task (\d+) (begin|result|too-large|timeout|end)((?: \d+)*)"
    r"|python-mismatch (\S+) (\S+))$",
    re.MULTILINE,
)
_BASE64_LINE = re.compile(r"^[A-Za-z0-9+/=]+$")


def parse_log(text: str) -> PodLog:
    """Split a pod log into per-task output and decoded (still framed) results."""
    parsed = PodLog({})
    current: int | None = None
    start = body_start = 0
    for match in _MARKER.finditer(text):
        if match.group(4):
            parsed.mismatch = (match.group(4), match.group(5))
            continue
        index, what = int(match.group(1)), match.group(2)
        numbers = [int(n) for n in match.group(3).split()]
        task = parsed.tasks.setdefault(index, TaskLog())
        if what == "begin":
            if current is not None:
                _close_output(parsed.tasks[current], text[start : match.start()])
            current, start = index, match.end() + 1
        elif what in ("result", "too-large", "timeout") and current == index:
            _close_output(task, text[start : match.start()], strip_newline=True)
            current, start = None, match.end() + 1
            if what == "timeout":
                task.timeout = numbers[0] if numbers else 0
            elif what == "too-large":
                task.too_large = (numbers[0], numbers[1]) if len(numbers) == 2 else (0, 0)
            else:
                task.result = None
                task.corrupt = True  # until its end marker and body check out
                body_start = start
        elif what == "end" and task.corrupt:
            lines = text[body_start : match.start()].splitlines()
            try:
                task.result = base64.b64decode("".join(x for x in lines if _BASE64_LINE.match(x)))
                task.corrupt = False
            except (binascii.Error, ValueError):
                pass
            start = match.end() + 1
    if current is not None:
        _close_output(parsed.tasks[current], text[start:])
    return parsed


def _close_output(task: TaskLog, text: str, strip_newline: bool = False) -> None:
    if strip_newline and text.endswith("\n"):
        text = text[:-1]
    task.output = text
