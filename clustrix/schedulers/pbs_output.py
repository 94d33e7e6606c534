"""Reading PBS ``qstat -f`` output: the state table and the exit-status rules.

Two formats reach :func:`parse_qstat`: PBS Pro's JSON (``qstat -f -F json``, with
``Exit_status``) and the ``Job Id: ...`` / ``key = value`` text of Torque (with
``exit_status``) and of Slurm's Torque wrappers (no exit status at all).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

from .._states import JobState
from .base import TaskStatus

#: Every job state of PBS Pro (pbs_job_attributes(7B), qstat(1B)) and Torque (``C``).
STATE_MAP: dict[str, JobState] = {
    "B": JobState.RUNNING,  # array job: at least one subjob has begun
    "C": JobState.COMPLETED,  # Torque: completed (refined by exit_status)
    "E": JobState.RUNNING,  # exiting after having run: the outcome is not final yet
    "F": JobState.COMPLETED,  # PBS Pro: finished, failed or deleted (see Exit_status)
    "H": JobState.QUEUED,  # held
    "M": JobState.QUEUED,  # moved to another server (peer scheduling); lives on there
    "Q": JobState.QUEUED,  # queued
    "R": JobState.RUNNING,  # running
    "S": JobState.RUNNING,  # suspended; resumes later
    "T": JobState.QUEUED,  # in transit to a new location
    # PBS Pro: suspended for workstation activity. Slurm's wrappers: a state they
    # cannot name (node failure, out of memory, completing): keep polling.
    "U": JobState.RUNNING,
    "W": JobState.QUEUED,  # waiting for its Execution_Time
    "X": JobState.COMPLETED,  # PBS Pro subjob finished or deleted (see Exit_status)
}

_ENDED = {"C", "F", "X"}
_REASONS = {
    "H": "held",
    "M": "moved to another server",
    "S": "suspended",
    "T": "in transit",
    "U": "suspended or unknown",
    "W": "waiting for its start time",
}
#: PBS Pro's negative Exit_status values (JOB_EXEC_* in OpenPBS job.h) that say why.
PRO_EXEC_CODES: dict[int, tuple[JobState, str]] = {
    -24: (JobState.FAILED, "JOB_EXEC_KILL_NCPUS_BURST: used more CPUs than requested"),
    -25: (JobState.FAILED, "JOB_EXEC_KILL_NCPUS_SUM: used more CPUs than requested"),
    -26: (JobState.OUT_OF_MEMORY, "JOB_EXEC_KILL_VMEM: exceeded its vmem"),
    -27: (JobState.OUT_OF_MEMORY, "JOB_EXEC_KILL_MEM: exceeded its mem"),
    -28: (JobState.TIMEOUT, "JOB_EXEC_KILL_CPUT: exceeded its cput"),
    -29: (JobState.TIMEOUT, "JOB_EXEC_KILL_WALLTIME: exceeded its walltime"),
}
#: Torque's negative exit_status values (JOB_EXEC_OVERLIMIT_*).
TORQUE_EXEC_CODES: dict[int, tuple[JobState, str]] = {
    -10: (JobState.OUT_OF_MEMORY, "JOB_EXEC_OVERLIMIT_MEM: exceeded its memory limit"),
    -11: (JobState.TIMEOUT, "JOB_EXEC_OVERLIMIT_WT: exceeded its walltime"),
    -12: (JobState.TIMEOUT, "JOB_EXEC_OVERLIMIT_CPUT: exceeded its cput"),
}
_ATTRIBUTE = re.compile(r"^\s+([\w.]+) = ?(.*)$")


def parse_qstat(stdout: str) -> dict[str, TaskStatus]:
    """Status per job id from ``qstat -f`` text or ``qstat -f -F json``."""
    text = stdout.strip()
    if not text:
        return {}
    if text.startswith("{"):
        # strict=False: PBS Pro prints raw control characters inside some strings.
        jobs = json.loads(text, strict=False).get("Jobs") or {}
        return {job_id: job_status(attrs, PRO_EXEC_CODES) for job_id, attrs in jobs.items()}
    return {job_id: job_status(attrs, TORQUE_EXEC_CODES) for job_id, attrs in _text_jobs(text)}


def _text_jobs(text: str) -> list[tuple[str, dict[str, str]]]:
    jobs: list[tuple[str, dict[str, str]]] = []
    last = ""
    for line in text.splitlines():
        if line.startswith("Job Id:"):
            jobs.append((line.split(":", 1)[1].strip(), {}))
            last = ""
            continue
        match = _ATTRIBUTE.match(line)
        if jobs and match:
            last = match.group(1)
            jobs[-1][1][last] = match.group(2).strip()
        elif jobs and last and line.strip():  # a long value wrapped onto the next line
            jobs[-1][1][last] += line.strip()
    return jobs


def job_status(
    attrs: Mapping[str, object], exec_codes: Mapping[int, tuple[JobState, str]]
) -> TaskStatus:
    """One job's status from its attributes (``job_state``, ``Exit_status``, ``comment``)."""
    raw = str(attrs.get("job_state", "")).strip()
    comment = str(attrs.get("comment", "")).strip() or None
    exit_text = attrs.get("Exit_status", attrs.get("exit_status"))
    state = STATE_MAP.get(raw)
    if state is None:
        return TaskStatus(JobState.RUNNING, reason=f"unknown PBS state {raw!r}", raw=raw)
    if raw not in _ENDED:
        return TaskStatus(state, reason=_REASONS.get(raw, comment), raw=raw)
    try:
        exit_status = int(str(exit_text).strip()) if exit_text is not None else None
    except ValueError:
        exit_status = None
    if exit_status is None:
        if raw == "C":  # Slurm's Torque wrappers never say how a job ended
            return TaskStatus(
                JobState.COMPLETED,
                reason="ended; qstat gives no exit status (settle from the exit-code file)",
                raw=raw,
            )
        return TaskStatus(JobState.CANCELLED, reason=comment or "deleted before it ran", raw=raw)
    return _from_exit_status(exit_status, comment, raw, exec_codes)


def _from_exit_status(
    status: int, comment: str | None, raw: str, exec_codes: Mapping[int, tuple[JobState, str]]
) -> TaskStatus:
    if status == 0:
        return TaskStatus(JobState.COMPLETED, reason=comment, exit_code=0, raw=raw)
    if status < 0:
        state, why = exec_codes.get(
            status, (JobState.FAILED, f"PBS could not run the job ({status})")
        )
        return TaskStatus(state, reason=why, exit_code=None, raw=raw)
    if status > 256:  # PBS reports a job killed by signal N as 256+N
        signal = status - 256
        if comment and "walltime" in comment.lower():
            return TaskStatus(JobState.TIMEOUT, comment, 128 + signal, raw)
        return TaskStatus(JobState.CANCELLED, f"killed by signal {signal}", 128 + signal, raw)
    reason = f"killed by signal {status - 128}" if status > 128 else comment
    return TaskStatus(JobState.FAILED, reason=reason, exit_code=status, raw=raw)
