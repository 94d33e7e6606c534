"""The records side of `Client`: recording submissions, reading records, reattaching.

`ClientRecords` is a mixin of `Client`: one `RecordWriter` per records file, made on
first use on the client's loop; every Job the client makes reports its state changes
to it. The store is only ever touched in worker threads.
"""

from __future__ import annotations

import asyncio
import posixpath
from collections.abc import Iterable
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._record_types import JobRecord, Target
from ._record_writer import NewSubmission, RecordWriter
from ._records import RecordStore, default_records_path
from ._states import JobState

if TYPE_CHECKING:
    from ._config import ClusterConfig
    from ._job import Job
    from ._sweep import Sweep
    from .backends import Backend, Submission


class ClientRecords:
    """Mixin: a Client's local job records (see `clustrix._records`)."""

    _writers: dict[Path, RecordWriter]
    _attached: dict[str, asyncio.Task[Job[Any] | Sweep[Any]]]

    @property
    def config(self) -> ClusterConfig:  # provided by Client
        raise NotImplementedError

    def _records_writer(self, config: ClusterConfig) -> RecordWriter:
        """The writer of `config`'s records file (made on first use, on the loop)."""
        path = Path(config.records_path or default_records_path()).expanduser()
        writer = self._writers.get(path)
        if writer is None:
            store = RecordStore(path, retention_days=config.records_retention_days)
            writer = self._writers[path] = RecordWriter(store)
        return writer

    async def _record(self, backend: Backend, submission: Submission) -> None:
        """Record `submission` (and its PENDING tasks) before it is sent."""
        jobs = submission.jobs
        writer = jobs[0].recorder if jobs else None
        if writer is None or jobs[0].attempt > 1:
            # A retry: its tasks' rows stay with their first submission and record the
            # new attempt's states (attach follows the first submission's run).
            return
        config = submission.config
        remote = config.cluster_type not in ("local", "kubernetes")
        run_dir = posixpath.join(config.remote_work_dir, "runs", submission.key)
        await writer.record_submission(
            NewSubmission(
                submission.key,
                submission.name,
                Target.from_config(config),
                [job.job.key for job in jobs],
                jobs[0].index is not None,
                run_dir if remote else None,
            )
        )

    async def _close_records(self) -> None:
        writers, self._writers = list(self._writers.values()), {}
        for writer in writers:
            await writer.aclose()
            await writer.store.aclose()

    def _records_store(self) -> RecordStore:
        return self._records_writer(self.config).store

    async def jobs(
        self,
        *,
        state: JobState | str | Iterable[JobState | str] | None = None,
        since: datetime | timedelta | None = None,
        function: str | None = None,
        backend: str | None = None,
        limit: int | None = None,
    ) -> list[JobRecord]:
        """The recorded tasks of every process of this machine, newest submission first.

        Read-only `JobRecord`s, read from ``records_path`` in a worker thread.

        Args:
            state: Only tasks in this state (or these states).
            since: Only submissions made after this time, or within this age
                (e.g. ``timedelta(hours=1)``).
            function: Only tasks of the function of this name.
            backend: Only tasks of this cluster type (``"slurm"``, ...).
            limit: At most this many tasks.

        Raises:
            ValueError: `state` names no `JobState`.
            ConfigError: The records store cannot be opened or stays locked.
        """
        writer = self._records_writer(self.config)
        await writer.flush()  # this client's own latest changes first
        return await asyncio.to_thread(
            writer.store.jobs,
            state=state,
            since=since,
            function=function,
            backend=backend,
            limit=limit,
        )

    async def attach(self, key: str) -> Job[Any] | Sweep[Any]:
        """Follow what any earlier process on this machine submitted under `key`.

        Finished tasks are collected from their result files, live ones polled;
        nothing is resubmitted. The record says where it runs; this client's
        configuration must name the same cluster (host, port and user, or Kubernetes
        context and namespace) and gives the credentials.

        Args:
            key: A submission's, sweep's or task's key (``clustrix jobs`` lists them).

        Returns:
            The `Job`, or the `Sweep` for a sweep's (or micro-batch's) key.

        Raises:
            UnknownKeyError: No submission or task with `key` is recorded.
            ClusterMismatchError: This configuration names another cluster.
            UsageError: The client is closed or belongs to another event loop.
        """
        from ._attach import attach_with

        return await attach_with(self, key)  # type: ignore[arg-type]  # Client is this mixin
