"""Reading PBS output: the state table, the exit-status rules, the flavour probe and
the jobs-by-name listing of Slurm's Torque wrappers.

Two formats reach :func:`parse_qstat`: PBS Pro's JSON (``qstat -f -F json``, with
``Exit_status``) and the ``Job Id: ...`` / ``key = value`` text of Torque (with
``exit_status``) and of Slurm's Torque wrappers (no exit status at all).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Literal

from .._states import JobState
from .base import PbsDialect, TaskStatus

PbsFlavour = Literal["pro", "torque", "slurm-wrappers"]
#: Which dialect each flavour speaks, and whether one array element can be addressed.
FLAVOUR_DIALECT: dict[PbsFlavour, PbsDialect] = {
    "pro": "pro",
    "torque": "torque",
    "slurm-wrappers": "torque",
}
FLAVOUR_ARRAYS: dict[PbsFlavour, bool] = {"pro": True, "torque": True, "slurm-wrappers": False}

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


def probe_argv() -> list[str]:
    """``qstat --version``, whose answer tells PBS Pro, Torque and the wrappers apart."""
    return ["sh", "-c", "qstat --version 2>&1; exit 0"]


def parse_probe(output: str) -> PbsFlavour:
    """``pbs_version = 2022.1`` -> pro; ``Version: 6.1.3`` -> torque; the perl
    wrappers' ``Unknown option: version`` -> slurm-wrappers."""
    text = output.lower()
    if "pbs_version" in text:
        return "pro"
    if "unknown option" in text:
        return "slurm-wrappers"
    if re.search(r"^\s*version:?\s*\d", text, re.MULTILINE):
        return "torque"
    raise ValueError(f"qstat --version answered something unknown: {output.strip()[:200]!r}")


def jobs_by_name_argv() -> list[str]:
    """Every job ``qstat -f`` knows, as ``ID NAME STATE HOST`` lines (one command for all).

    For Slurm's Torque wrappers, whose array elements run under unpredictable ids:
    the job name (clustrix's key) is what ties them to their submission. HOST is
    ``ran`` if the job had an ``exec_host``, else ``-``: the wrappers print no
    ``exec_host`` for a job deleted before it was given a node.
    """
    script = (
        "qstat -f 2>/dev/null | awk '"
        'function out() { if (id != "") print id, name, state, (host == "" ? "-" : "ran") } '
        '/^Job Id:/ {out(); id = $3; name = ""; state = ""; host = ""} '
        '$1 == "Job_Name" {name = $3} $1 == "job_state" {state = $3} '
        '$1 == "exec_host" {host = $3} '
        "END {out()}'; exit 0"
    )
    return ["sh", "-c", script]


def parse_jobs_by_name(stdout: str) -> dict[str, list[JobState]]:
    """States of the jobs carrying each name (unknown letters count as QUEUED)."""
    found: dict[str, list[JobState]] = {}
    for fields in _by_name_lines(stdout):
        found.setdefault(fields[1], []).append(STATE_MAP.get(fields[2], JobState.QUEUED))
    return found


def parse_unstarted_by_name(stdout: str) -> set[str]:
    """Names with a job that ended without ever being given a node (deleted while
    it was waiting: ``qdel`` of a queued job, or of an array with queued elements)."""
    return {
        fields[1]
        for fields in _by_name_lines(stdout)
        if len(fields) == 4 and fields[2] == "C" and fields[3] == "-"
    }


def _by_name_lines(stdout: str) -> list[list[str]]:
    lines = [line.split() for line in stdout.splitlines()]
    return [fields for fields in lines if len(fields) in (3, 4)]
