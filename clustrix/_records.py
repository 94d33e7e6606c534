"""Local job records: what every submission was, where it runs and how it ended.

A `RecordStore` is one SQLite file (``records_path``, default
``~/.clustrix/records.db`` on the submitting machine) shared by every clustrix process
of the user: a restarted process lists, reattaches to and collects jobs an earlier
one submitted. Writes are async and batched (one transaction per call, however many
rows) and run in a worker thread; reads are sync, for the CLI. Records are frozen
dataclasses. See `_records_db` for locking, journal mode and migrations.

Schema (version 1, in ``PRAGMA user_version``; times are Unix seconds)::

    submissions                       one row per call, sweep or micro-batch
      key TEXT PRIMARY KEY            the submission's key (a sweep's key)
      function, backend               function name; cluster_type (slurm, ssh, ...)
      sweep INTEGER                   1 for map(), 0 for single calls
      task_count, submitted_at, run_dir (remote run directory)
      host, port, username            where it runs (never passwords or keys)
      k8s_context, k8s_namespace, profile
      submitted_by                    pid@host of the submitting process
    jobs                              one row per task
      key TEXT PRIMARY KEY            the Job's key ("<sweep key>.<index>" in a sweep)
      submission_key -> submissions.key (ON DELETE CASCADE)
      sweep_index                     position in its sweep, NULL for single calls
      native_id                       the scheduler's id (12345_7, host:pid, ...)
      state, reason, exit_code, error, stdout_tail, stderr_tail
      started_at, ended_at, attempt   attempt counts from 1 (retries add one)
      collected_at, collected_by      who collected the result (pid@host), first wins
      updated_at
    (error and the stdout/stderr tails keep their last 4000 characters)

A `JobRecord` is a jobs row joined with its submission's fields.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from . import _records_db as db
from ._exceptions import UsageError
from ._record_types import (
    CHUNK,
    FINAL,
    JobRecord,
    JobUpdate,
    SubmissionRecord,
    SweepRecord,
    Target,
    apply_updates,
    from_row,
    process_id,
)
from ._states import JobState

if TYPE_CHECKING:
    from ._config import ClusterConfig

__all__ = [
    "JobRecord",
    "JobUpdate",
    "RecordStore",
    "SubmissionRecord",
    "SweepRecord",
    "Target",
    "default_records_path",
    "process_id",
]

T = TypeVar("T")


def default_records_path() -> Path:
    """``~/.clustrix/records.db``."""
    return Path.home() / ".clustrix" / "records.db"


_JOB_SELECT = """
SELECT j.key, j.submission_key, CASE WHEN s.sweep THEN s.key END AS sweep_key,
       j.sweep_index AS "index", s.function, s.backend, s.host, s.port, s.username,
       s.k8s_context, s.k8s_namespace, j.native_id, s.run_dir, j.state, j.reason,
       j.exit_code, j.error, j.stdout_tail, j.stderr_tail, s.submitted_at, j.started_at,
       j.ended_at, j.attempt, j.collected_at, j.collected_by, j.updated_at
FROM jobs j JOIN submissions s ON s.key = j.submission_key
"""


class RecordStore:
    """The local store of job records at `path` (see the module docstring for the schema).

    Constructing one does no I/O; the file is opened (created, migrated) on first use,
    in a worker thread for the async methods. Safe to share between tasks and
    threads of one process and between processes.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        retention_days: int = 30,
        busy_timeout: float = 0.0,  # SQLite's own wait; clustrix retries finer itself
        lock_deadline: float = 120.0,
    ) -> None:
        self.path = Path(path).expanduser() if path is not None else default_records_path()
        self.retention_days = retention_days
        self.busy_timeout, self.lock_deadline = busy_timeout, lock_deadline
        self.transactions = 0  # write transactions committed by this store (for tests)
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._pid = os.getpid()

    @classmethod
    def for_config(cls, config: ClusterConfig) -> RecordStore:
        """The store named by `config.records_path` (default ``~/.clustrix/records.db``)."""
        return cls(config.records_path, retention_days=config.records_retention_days)

    def __repr__(self) -> str:
        return f"<RecordStore {self.path}>"

    # -- plumbing --------------------------------------------------------------------
    def _connection(self, create: bool) -> sqlite3.Connection | None:
        if self._conn is not None and self._pid != os.getpid():
            self._conn = None  # inherited through fork: never reuse SQLite handles
        if self._conn is None:
            if not create and not self.path.exists():
                return None
            self._conn = db.open_database(self.path, self.busy_timeout, self.lock_deadline)
            self._conn.row_factory = sqlite3.Row
            self._pid = os.getpid()
        return self._conn

    def _write(self, body: Callable[[sqlite3.Connection], T]) -> T:
        with self._lock:
            conn = self._connection(create=True)
            assert conn is not None
            result = db.transaction(conn, self.path, self.lock_deadline, body)
            self.transactions += 1
            return result

    def _read(self, query: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            conn = self._connection(create=False)
            if conn is None:
                return []
            return db.with_retries(
                self.path, self.lock_deadline, lambda: conn.execute(query, params).fetchall()
            )

    def close(self) -> None:
        """Close the database connection (it is reopened if the store is used again)."""
        with self._lock:
            if self._conn is not None and self._pid == os.getpid():
                self._conn.close()
            self._conn = None

    async def aclose(self) -> None:
        """Close the connection from async code (in a worker thread)."""
        await asyncio.to_thread(self.close)

    # -- async writes (each call: one transaction, in a worker thread) ---------------
    async def record_submission(
        self,
        key: str,
        *,
        function: str,
        target: Target,
        job_keys: Sequence[str],
        sweep: bool,
        run_dir: str | None = None,
        submitted_at: float | None = None,
    ) -> None:
        """Record a submission and one PENDING job per key in `job_keys` (task *i* of a
        sweep is ``job_keys[i]``), all in one transaction, before it is sent."""
        when = time.time() if submitted_at is None else submitted_at
        sub = (key, function, target.backend, int(sweep), len(job_keys), when, run_dir,
               target.host, target.port, target.username, target.k8s_context,
               target.k8s_namespace, target.profile, process_id())  # fmt: skip
        rows = [(k, key, i if sweep else None, JobState.PENDING.value, when)
                for i, k in enumerate(job_keys)]  # fmt: skip

        def body(conn: sqlite3.Connection) -> None:
            if conn.execute("SELECT 1 FROM submissions WHERE key = ?", (key,)).fetchone():
                raise UsageError(f"submission {key} is already recorded in {self.path}")
            conn.execute(
                "INSERT INTO submissions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", sub
            )
            conn.executemany(
                "INSERT INTO jobs (key, submission_key, sweep_index, state, updated_at) "
                "VALUES (?, ?, ?, ?, ?)",
                rows,
            )

        await asyncio.to_thread(self._write, body)

    async def update_states(self, updates: Iterable[JobUpdate]) -> int:
        """Apply `updates` (see `JobUpdate`) in one transaction; returns how many
        recorded tasks they touched (keys not in the store are ignored)."""
        pending = list(updates)
        if not pending:
            return 0
        return await asyncio.to_thread(self._write, lambda conn: apply_updates(conn, pending))

    async def mark_collected(self, keys: Iterable[str], *, by: str | None = None) -> set[str]:
        """Record that the results of `keys` were collected by `by` (default this
        process, ``pid@host``); the first collector is kept. Returns the keys this
        call marked (those nobody had collected before)."""
        wanted, who = list(keys), by or process_id()

        def body(conn: sqlite3.Connection) -> set[str]:
            marked: set[str] = set()
            now = time.time()
            for i in range(0, len(wanted), CHUNK):
                chunk = wanted[i : i + CHUNK]
                marks = ", ".join("?" * len(chunk))
                rows = conn.execute(
                    f"UPDATE jobs SET collected_by = ?, collected_at = ?, updated_at = ? "  # noqa: S608
                    f"WHERE key IN ({marks}) AND collected_by IS NULL RETURNING key",
                    (who, now, now, *chunk),
                ).fetchall()
                marked.update(row[0] for row in rows)
            return marked

        return await asyncio.to_thread(self._write, body)

    async def prune(self, older_than_days: float | None = None) -> int:
        """Delete submissions whose tasks all ended more than `older_than_days` (default
        the store's retention) ago, with their tasks; returns how many went."""
        days = self.retention_days if older_than_days is None else older_than_days
        cutoff = time.time() - days * 86400
        marks = ", ".join("?" * len(FINAL))

        def body(conn: sqlite3.Connection) -> int:
            done = conn.execute(
                f"SELECT s.key FROM submissions s WHERE s.submitted_at < ? AND NOT EXISTS "  # noqa: S608
                f"(SELECT 1 FROM jobs j WHERE j.submission_key = s.key AND (j.state NOT IN "
                f"({marks}) OR COALESCE(j.ended_at, j.updated_at) >= ?))",
                (cutoff, *FINAL, cutoff),
            ).fetchall()
            keys = [(row[0],) for row in done]
            conn.executemany("DELETE FROM jobs WHERE submission_key = ?", keys)
            conn.executemany("DELETE FROM submissions WHERE key = ?", keys)
            return len(keys)

        return await asyncio.to_thread(self._write, body)

    # -- sync reads (CLI; from async code wrap them in asyncio.to_thread) --------------
    def get(self, key: str) -> JobRecord | None:
        """The record of the task with `key`, or None."""
        rows = self._read(_JOB_SELECT + "WHERE j.key = ?", (key,))
        return from_row(JobRecord, rows[0]) if rows else None

    def submission(self, key: str) -> SubmissionRecord | None:
        """The record of the submission (or sweep) with `key`, or None."""
        rows = self._read("SELECT * FROM submissions WHERE key = ?", (key,))
        return from_row(SubmissionRecord, rows[0]) if rows else None

    def sweep(self, key: str) -> SweepRecord | None:
        """The submission with `key` and its tasks in index order, or None."""
        submission = self.submission(key)
        if submission is None:
            return None
        rows = self._read(
            _JOB_SELECT + "WHERE j.submission_key = ? ORDER BY j.sweep_index, j.rowid", (key,)
        )
        return SweepRecord(submission, tuple(from_row(JobRecord, r) for r in rows))

    def collected_by(self, key: str) -> str | None:
        """Which process (``pid@host``) collected the result of task `key`, if any."""
        record = self.get(key)
        return record.collected_by if record else None

    def jobs(
        self,
        *,
        state: JobState | str | Iterable[JobState | str] | None = None,
        since: datetime | timedelta | None = None,
        function: str | None = None,
        backend: str | None = None,
        limit: int | None = None,
    ) -> list[JobRecord]:
        """Recorded tasks, newest submission first, filtered by state(s), submission
        time (`since`: a time, or an age such as ``timedelta(days=1)``), function name
        and backend."""
        where, params = _filters(since, function, backend)
        if state is not None:
            states = [state] if isinstance(state, JobState | str) else list(state)
            names = [JobState(s).value if isinstance(s, str) else s.value for s in states]
            where.append(f"j.state IN ({', '.join('?' * len(names))})")
            params.extend(names)
        query = _JOB_SELECT + _where(where)
        query += "ORDER BY s.submitted_at DESC, s.key, j.sweep_index, j.rowid"
        if limit is not None:
            query, params = query + " LIMIT ?", [*params, limit]
        return [from_row(JobRecord, row) for row in self._read(query, params)]

    def submissions(
        self,
        *,
        since: datetime | timedelta | None = None,
        function: str | None = None,
        backend: str | None = None,
    ) -> list[SubmissionRecord]:
        """Recorded submissions (calls and sweeps), newest first, filtered."""
        where, params = _filters(since, function, backend)
        query = "SELECT * FROM submissions s " + _where(where)  # noqa: S608 (no values)
        rows = self._read(query + "ORDER BY s.submitted_at DESC, s.key", params)
        return [from_row(SubmissionRecord, row) for row in rows]


def _where(conditions: list[str]) -> str:
    # only fixed column names and "?" placeholders are interpolated, never values
    return f"WHERE {' AND '.join(conditions)} " if conditions else ""


def _filters(
    since: datetime | timedelta | None, function: str | None, backend: str | None
) -> tuple[list[str], list[Any]]:
    where: list[str] = []
    params: list[Any] = []
    if isinstance(since, timedelta):
        since = datetime.fromtimestamp(time.time() - since.total_seconds(), UTC)
    if since is not None:
        where.append("s.submitted_at >= ?")
        params.append(since.timestamp())
    for column, value in (("function", function), ("backend", backend)):
        if value is not None:
            where.append(f"s.{column} = ?")
            params.append(value)
    return where, params
