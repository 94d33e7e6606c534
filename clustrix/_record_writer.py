"""`RecordWriter`: a Client's batched, off-loop writes to the local `RecordStore`.

Everything a job does on the event loop's thread costs one list append: a new
submission, a state change (`JobUpdate`), a collected result. A single flusher task
writes what accumulated in ONE transaction in a worker thread, every `interval`
seconds, at once when someone waits for it (a submission is recorded before it is
sent; a run directory is removed only after its collection is recorded), and when the
Client closes. A broken store never fails a job: the error is logged once and the
jobs go on unrecorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ._record_types import JobUpdate, Target, apply_updates, process_id
from ._records import RecordStore
from ._states import JobState

log = logging.getLogger("clustrix")


@dataclass(frozen=True)
class NewSubmission:
    """A submission to record before it is sent (see `RecordStore.record_submission`)."""

    key: str
    function: str
    target: Target
    job_keys: Sequence[str]
    sweep: bool
    run_dir: str | None


class RecordWriter:
    """Collects record changes on the loop and writes them in batches off it."""

    def __init__(self, store: RecordStore, *, interval: float = 0.5) -> None:
        self.store = store
        self.interval = interval
        self.flushes = 0  # transactions attempted (for tests)
        self._submissions: list[NewSubmission] = []
        self._updates: list[JobUpdate] = []
        self._collected: list[str] = []
        self._kick = asyncio.Event()  # something is queued
        self._urgent = asyncio.Event()  # someone waits: write now
        self._next: asyncio.Future[bool] | None = None  # done when the queued is written
        self._writing: asyncio.Future[bool] | None = None  # the batch being written
        self._task: asyncio.Task[None] | None = None
        self._broken = False  # warned once already
        self._closed = False

    # -- on the loop: appends only ----------------------------------------------------
    def update(self, update: JobUpdate) -> None:
        """Queue a change of one task's record."""
        self._updates.append(update)
        self._wake()

    def changed(self, key: str, state: JobState, native_id: str | None, reason: str | None) -> None:
        """Queue a live state change of task `key` (its native id, if now known)."""
        self.update(JobUpdate(key, state, native_id=native_id, reason=reason))

    def ended(
        self,
        key: str,
        state: JobState,
        error: BaseException | None = None,
        *,
        collected: bool = True,
    ) -> None:
        """Queue the end of task `key` (with `error`'s text, exit code and stderr tail),
        and, if `collected`, the mark that this process collected its outcome."""
        text = None if error is None else f"{type(error).__name__}: {error}"
        exit_code = getattr(error, "exit_code", None)
        tail = getattr(error, "stderr_tail", None) or None
        self.update(JobUpdate(key, state, exit_code=exit_code, error=text, stderr_tail=tail))
        if collected:
            self.collected(key)

    def collected(self, key: str) -> None:
        """Queue the mark that this process collected the result of task `key`."""
        self._collected.append(key)
        self._wake()

    async def record_submission(self, submission: NewSubmission) -> bool:
        """Record `submission` and its PENDING tasks; returns once written (False if the
        store failed: the submission goes ahead unrecorded)."""
        self._submissions.append(submission)
        return await self.flush()

    async def flush(self) -> bool:
        """Write everything queued so far; False if the store failed."""
        while True:
            task = self._task
            if task is None or task.done():  # never started, or ended with the loop
                return await self._write_now()
            if not (self._submissions or self._updates or self._collected):
                if self._writing is None:
                    return not self._broken
                waited: asyncio.Future[bool] = self._writing  # queued before: in flight
            else:
                self._kick.set()
                self._urgent.set()
                waited = self._future()
            watched: list[asyncio.Future[Any]] = [waited, task]
            await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
            if waited.done():
                return waited.result()

    async def _write_now(self) -> bool:
        batch = self._take()
        return await asyncio.to_thread(self._write, *batch) if any(batch) else not self._broken

    def _take(self) -> tuple[list[NewSubmission], list[JobUpdate], list[str]]:
        batch = self._submissions, self._updates, self._collected
        self._submissions, self._updates, self._collected = [], [], []
        return batch

    async def aclose(self) -> None:
        """Write what is left and stop the flusher (the Client is closing)."""
        if self._closed:
            return
        self._closed = True
        await self.flush()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    # -- the flusher -----------------------------------------------------------------
    def _future(self) -> asyncio.Future[bool]:
        if self._next is None:
            self._next = asyncio.get_running_loop().create_future()
        return self._next

    def _wake(self) -> None:
        if self._task is None and not self._closed:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="clustrix-records"
            )
        self._kick.set()

    async def _run(self) -> None:
        while True:
            await self._kick.wait()
            if not self._urgent.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._urgent.wait(), self.interval)
            self._kick.clear()
            self._urgent.clear()
            batch = self._take()
            done, self._next = self._future(), None
            self._writing = done
            ok = not self._broken
            try:
                if any(batch):
                    ok = await asyncio.to_thread(self._write, *batch)
            finally:
                self._writing = None
                if not done.done():
                    done.set_result(ok)

    def _write(
        self, submissions: list[NewSubmission], updates: list[JobUpdate], collected: list[str]
    ) -> bool:
        """One transaction (in a worker thread); False, warned once, if it failed."""
        self.flushes += 1
        try:
            self.store._write(lambda conn: _apply(conn, submissions, updates, collected))
        except Exception as error:  # the store must never fail a job
            if not self._broken:
                log.warning(
                    "clustrix cannot write its job records to %s (%s); jobs run on, "
                    "but later processes cannot reattach to them",
                    self.store.path,
                    error,
                )
            self._broken = True
            return False
        return True


def _apply(
    conn: sqlite3.Connection,
    submissions: list[NewSubmission],
    updates: list[JobUpdate],
    collected: list[str],
) -> None:
    now, pending = time.time(), JobState.PENDING.value
    who = process_id()
    for sub in submissions:
        t = sub.target
        conn.execute(
            "INSERT OR IGNORE INTO submissions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (sub.key, sub.function, t.backend, int(sub.sweep), len(sub.job_keys), now,
             sub.run_dir, t.host, t.port, t.username, t.k8s_context, t.k8s_namespace,
             t.profile, who),
        )  # fmt: skip
        conn.executemany(
            "INSERT OR IGNORE INTO jobs (key, submission_key, sweep_index, state, updated_at) "
            "VALUES (?, ?, ?, ?, ?)",
            [(k, sub.key, i if sub.sweep else None, pending, now)
             for i, k in enumerate(sub.job_keys)],
        )  # fmt: skip
    if updates:
        apply_updates(conn, updates)
    conn.executemany(
        "UPDATE jobs SET collected_by = ?, collected_at = ?, updated_at = ? "
        "WHERE key = ? AND collected_by IS NULL",
        [(who, now, now, key) for key in collected],
    )
