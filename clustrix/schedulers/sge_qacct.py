"""Reading Grid Engine's ``qacct -j`` records: how a finished job or task ended.

``failed`` codes are those of sge_status(5); the ones that matter here:

* ``0``: the job ran; ``exit_status`` is its exit code (128+N: killed by signal N).
* ``37 : qmaster enforced h_rt, h_cpu, or h_vmem limit`` (recorded on the lab for a
  job over its ``h_rt``, with ``exit_status 137``).
* ``100 : assumedly after job``: killed from outside after it started, i.e. ``qdel``
  (``exit_status 137``, recorded on the lab), or an execd-enforced ``h_rt``.
* anything else (1-36, 38): the job could not be set up or started on the host.

Whether a kill was a time limit is decided by comparing ``ru_wallclock`` with the
``h_rt`` found in ``category`` (the job's own ``-l`` requests).
"""

from __future__ import annotations

import re

from .._states import JobState
from .base import TaskStatus

_FIELD = re.compile(r"^(\w+)\s+(.*?)\s*$")
_NUMBER = re.compile(r"^\d+(?:\.\d+)?")
_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}


def parse_qacct(stdout: str) -> list[dict[str, str]]:
    """The records of ``qacct -j`` output, in order, as ``{field: text}``.

    Records are separated by ``=====`` lines; a field seen twice also starts a new
    record, so ``qacct ... | grep`` excerpts parse as well.
    """
    records: list[dict[str, str]] = []
    record: dict[str, str] = {}
    for line in stdout.splitlines():
        if line.startswith("====="):
            record = {}
            records.append(record)
            continue
        match = _FIELD.match(line)
        if not match:
            continue
        if match.group(1) in record or not records:
            record = {}
            records.append(record)
        record[match.group(1)] = match.group(2)
    return [r for r in records if r]


def record_status(record: dict[str, str]) -> TaskStatus:
    """The outcome of one qacct record (see the module docstring for the rules)."""
    failed_text = record.get("failed", "0")
    failed = int(_number(failed_text) or 0)
    exit_code = int(_number(record.get("exit_status", "")) or 0)
    raw = f"failed {failed_text}; exit_status {exit_code}"
    requested = _requests(record.get("category", ""))
    wallclock = _number(record.get("ru_wallclock", ""))
    h_rt = _seconds(requested.get("h_rt", ""))
    over_time = h_rt is not None and wallclock is not None and wallclock >= h_rt - 1
    killed = f"killed by signal {exit_code - 128}" if exit_code > 128 else None
    if failed == 0:
        state = JobState.COMPLETED if exit_code == 0 else JobState.FAILED
        return TaskStatus(state, reason=killed, exit_code=exit_code, raw=raw)
    if failed in (37, 100) and over_time:
        return TaskStatus(JobState.TIMEOUT, f"exceeded h_rt={requested['h_rt']}", exit_code, raw)
    if failed == 37:
        vmem = _bytes(requested.get("h_vmem", ""))
        used = _bytes(record.get("maxvmem", ""))
        slots = int(_number(record.get("slots", "")) or 1)
        if vmem is not None and used is not None and used >= 0.9 * vmem * slots:
            return TaskStatus(JobState.OUT_OF_MEMORY, "exceeded h_vmem", exit_code, raw)
        return TaskStatus(JobState.TIMEOUT, failed_text, exit_code, raw)
    if failed == 100 and exit_code > 128:
        return TaskStatus(JobState.CANCELLED, f"{killed} (qdel)", exit_code, raw)
    if failed == 100:
        state = JobState.COMPLETED if exit_code == 0 else JobState.FAILED
        return TaskStatus(state, failed_text, exit_code, raw)
    return TaskStatus(JobState.FAILED, f"failed {failed_text}", exit_code, raw)


def _number(text: str) -> float | None:
    match = _NUMBER.match(text.strip())
    return float(match.group()) if match else None


def _requests(category: str) -> dict[str, str]:
    requests: dict[str, str] = {}
    for group in re.findall(r"-l\s+(\S+)", category):
        for item in group.split(","):
            key, _, value = item.partition("=")
            requests[key] = value
    return requests


def _seconds(text: str) -> float | None:
    parts = text.split(":")
    if not text or len(parts) > 3 or not all(part.isdigit() for part in parts):
        return None
    total = 0
    for part in parts:
        total = total * 60 + int(part)
    return float(total)


def _bytes(text: str) -> float | None:
    match = re.match(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)B?\s*$", text, re.IGNORECASE)
    if not match:
        return None
    return float(match.group(1)) * _UNITS[match.group(2).upper()]
