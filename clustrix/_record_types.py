"""The record types of `RecordStore`: frozen dataclasses, and how an update merges.

`JobRecord` and `SubmissionRecord` mirror the store's rows (the schema is described in
`clustrix._records`); `JobUpdate` is one change to a task's row and `merge` is the
pure rule that applies it; `apply_updates` runs a batch of them in one transaction.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from ._states import JobState

if TYPE_CHECKING:
    from ._config import ClusterConfig

T = TypeVar("T")

CHUNK = 500  # keys per IN (...) query, below SQLite's variable limit
TAIL_CHARS = 4000  # stdout/stderr tails and error texts are cut to their last characters
FINAL = tuple(s.value for s in JobState if s.final)


def process_id() -> str:
    """This process as records name it: ``pid@host``."""
    return f"{os.getpid()}@{socket.gethostname()}"


def _time(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


@dataclass(frozen=True)
class Target:
    """Where a submission runs: the configuration's identity, never its secrets."""

    backend: str
    host: str | None = None
    port: int | None = None
    username: str | None = None
    k8s_context: str | None = None
    k8s_namespace: str | None = None
    profile: str | None = None

    @classmethod
    def from_config(cls, config: ClusterConfig) -> Target:
        """The identity of `config` (cluster type, host/port/user or kube context)."""
        if config.cluster_type == "kubernetes":
            return cls("kubernetes", k8s_context=config.k8s_context,
                       k8s_namespace=config.k8s_namespace, profile=config.profile)  # fmt: skip
        remote = config.cluster_host is not None
        return cls(
            config.cluster_type,
            host=config.cluster_host,
            port=config.cluster_port if remote else None,
            username=config.username,
            profile=config.profile,
        )


@dataclass(frozen=True)
class SubmissionRecord:
    """One recorded submission (a call, a sweep or a micro-batch); read-only."""

    key: str
    function: str
    backend: str
    sweep: bool
    task_count: int
    submitted_at: datetime
    run_dir: str | None
    host: str | None
    port: int | None
    username: str | None
    k8s_context: str | None
    k8s_namespace: str | None
    profile: str | None
    submitted_by: str


@dataclass(frozen=True)
class JobRecord:
    """One recorded task, with its submission's fields; read-only."""

    key: str
    submission_key: str
    sweep_key: str | None
    index: int | None
    function: str
    backend: str
    host: str | None
    port: int | None
    username: str | None
    k8s_context: str | None
    k8s_namespace: str | None
    native_id: str | None
    run_dir: str | None
    state: JobState
    reason: str | None
    exit_code: int | None
    error: str | None
    stdout_tail: str | None
    stderr_tail: str | None
    submitted_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    attempt: int
    collected_at: datetime | None
    collected_by: str | None
    updated_at: datetime

    @property
    def collected(self) -> bool:
        """True once some process collected the result."""
        return self.collected_by is not None


@dataclass(frozen=True)
class SweepRecord:
    """A submission with its tasks in index order; read-only."""

    submission: SubmissionRecord
    jobs: tuple[JobRecord, ...]

    def counts(self) -> dict[str, int]:
        """How many tasks are in each state, e.g. ``{"RUNNING": 3, "COMPLETED": 97}``."""
        tally: dict[str, int] = {}
        for job in self.jobs:
            tally[job.state.value] = tally.get(job.state.value, 0) + 1
        return tally

    @property
    def final(self) -> bool:
        """True once every task has ended."""
        return all(job.state.final for job in self.jobs)

    @property
    def collected(self) -> bool:
        """True once every task's result was collected (its run directory may go)."""
        return all(job.collected for job in self.jobs)


@dataclass(frozen=True)
class JobUpdate:
    """A change to one task's record; None fields are left as they are.

    ``reason`` belongs to the state: giving a state clears a reason not given. An
    update for an older ``attempt`` is ignored, and so is one giving a live state to a
    task that ended in the same attempt (a late poll cannot undo an ending). A new
    ``attempt`` starts the task's record afresh (native id, times, exit code...).
    ``started_at``/``ended_at`` default to now on the first live/final state.
    """

    key: str
    state: JobState | None = None
    native_id: str | None = None
    reason: str | None = None
    exit_code: int | None = None
    error: str | None = None
    stdout_tail: str | None = None
    stderr_tail: str | None = None
    started_at: float | None = None
    ended_at: float | None = None
    attempt: int | None = None


JOB_COLUMNS = ("native_id", "state", "reason", "exit_code", "error", "stdout_tail",
                "stderr_tail", "started_at", "ended_at", "attempt")  # fmt: skip
_TEXTS = {"error", "stdout_tail", "stderr_tail"}
_TIMES = {"submitted_at", "started_at", "ended_at", "collected_at", "updated_at"}


def from_row(cls: type[T], row: sqlite3.Row) -> T:
    """The record `cls` built from a row whose column names are its field names."""
    values: dict[str, Any] = {}
    for name in row.keys():  # noqa: SIM118 (sqlite3.Row is not a mapping)
        value = row[name]
        if name in _TIMES:
            value = _time(value)
        elif name == "state":
            value = JobState(value)
        elif name == "sweep":
            value = bool(value)
        values[name] = value
    return cls(**values)


def _tail(text: Any) -> Any:
    return text[-TAIL_CHARS:] if isinstance(text, str) else text


def merge(current: dict[str, Any], update: JobUpdate, now: float) -> dict[str, Any] | None:
    """The new column values of a jobs row after `update`, or None if it is stale."""
    attempt = current["attempt"] if update.attempt is None else update.attempt
    state = update.state
    if attempt < current["attempt"]:
        return None  # about an earlier attempt
    new = dict(current)
    if attempt > current["attempt"]:
        new.update(dict.fromkeys(JOB_COLUMNS, None), state=JobState.PENDING.value)
        new["attempt"] = attempt
    elif state is not None and not state.final and current["state"] in FINAL:
        return None  # a late report of a task that has since ended
    for name in JOB_COLUMNS:
        value = getattr(update, name)
        if name not in ("state", "reason", "attempt") and value is not None:
            new[name] = _tail(value) if name in _TEXTS else value
    if state is not None:
        new["state"], new["reason"] = state.value, update.reason
        if state is JobState.RUNNING and new["started_at"] is None:
            new["started_at"] = now
        if state.final and new["ended_at"] is None:
            new["ended_at"] = now
    elif update.reason is not None:
        new["reason"] = update.reason
    return new


def apply_updates(conn: sqlite3.Connection, updates: list[JobUpdate]) -> int:
    """Apply `updates` in order inside the caller's transaction; returns the rows touched."""
    now = time.time()
    current: dict[str, dict[str, Any]] = {}
    keys = list(dict.fromkeys(u.key for u in updates))
    columns = ", ".join(JOB_COLUMNS)
    for i in range(0, len(keys), CHUNK):
        chunk = keys[i : i + CHUNK]
        rows = conn.execute(
            f"SELECT key, {columns} FROM jobs WHERE key IN ({', '.join('?' * len(chunk))})",  # noqa: S608
            chunk,
        )
        current.update({row[0]: dict(zip(JOB_COLUMNS, row[1:], strict=True)) for row in rows})
    changed: dict[str, dict[str, Any]] = {}
    for update in updates:  # in order: later updates of a key see the earlier ones
        row = changed.get(update.key) or current.get(update.key)
        if row is not None and (new := merge(row, update, now)) is not None:
            changed[update.key] = new
    assignments = ", ".join(f"{c} = :{c}" for c in JOB_COLUMNS)
    conn.executemany(
        f"UPDATE jobs SET {assignments}, updated_at = :updated_at WHERE key = :key",  # noqa: S608
        [{**row, "key": key, "updated_at": now} for key, row in changed.items()],
    )
    return len(changed)
