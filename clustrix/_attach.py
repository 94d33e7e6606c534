"""`Client.attach`: follow a submission an earlier process recorded, without resubmitting.

The record (`clustrix._records`) says what was submitted, where, and where its run
directory is; the backend rebuilds the rest from the cluster (the run's ``spec.json``,
the scheduler's ids found by the job name, Kubernetes labels) and follows the tasks as
it follows its own: finished ones are collected from their result files, live ones
polled. Credentials come from the client's configuration, which must name the cluster
the record names.
"""

from __future__ import annotations

import asyncio
import posixpath
import time
from typing import TYPE_CHECKING, Any

from . import _selection
from ._config import ClusterConfig
from ._exceptions import ClusterMismatchError, UnknownKeyError, UsageError
from ._job import Job
from ._options import Resources
from ._payload import Payload
from ._portal import PORTAL
from ._record_types import SweepRecord, Target
from ._sweep import Sweep
from .backends import Submission

if TYPE_CHECKING:
    from ._client import Client


def attach(
    key: str, *, config: ClusterConfig | None = None, profile: str | None = None
) -> Job[Any] | Sweep[Any]:
    """Reattach from synchronous code: the `Job` (or `Sweep`) recorded under `key`.

    The sync twin of `Client.attach` for plain scripts: it is followed by the
    background event loop clustrix runs for synchronous callers, so ``.result()``
    blocks until it ends.

    Args:
        key: A submission's, sweep's or task's key (``clustrix jobs`` lists them).
        config: The cluster to follow it on (default: the global configuration,
            else the profile the submission was made with).
        profile: A profile of the config file naming the cluster, instead of `config`.

    Raises:
        UsageError: Called on a running event loop, or both `config` and `profile` given.
        UnknownKeyError: No submission or task with `key` is recorded.
        ClusterMismatchError: The configuration names another cluster.
        ConfigError: `profile` is unknown or the configuration is invalid.
    """
    if _selection._running_loop() is not None:
        raise UsageError("clustrix.attach() blocks; in async code use `await client.attach(key)`")
    if config is not None and profile is not None:
        raise UsageError("give clustrix.attach either config= or profile=, not both")
    bound = ClusterConfig(profile=profile) if profile is not None else config

    async def reattach() -> Job[Any] | Sweep[Any]:
        client, _ = _selection.select_client(bound)
        try:
            return await attach_with(client, key)
        except ClusterMismatchError:
            recorded = await asyncio.to_thread(client._records_store().submission, key)
            if bound is not None or recorded is None or recorded.profile is None:
                raise
            own, _ = _selection.select_client(ClusterConfig(profile=recorded.profile))
            return await attach_with(own, key)

    return PORTAL.run(reattach())


async def attach_with(client: Client, key: str) -> Job[Any] | Sweep[Any]:
    """See `Client.attach`."""
    if client._state != "open":
        client._open()
    writer = client._records_writer(client.config)
    await writer.flush()
    store = writer.store
    record = await asyncio.to_thread(store.sweep, key)
    if record is None:
        task = await asyncio.to_thread(store.get, key)
        if task is None or task.submission_key == key:
            raise UnknownKeyError(
                f"no submission or job with key {key!r} is recorded in {store.path} "
                "(`clustrix jobs` lists the recorded ones)"
            )
        # A task of a sweep, or one call of a micro-batch (several calls, one run).
        whole = await _attach_submission(client, task.submission_key)
        if isinstance(whole, Job):
            return whole
        return next(job for job in whole if job.key == key)
    return await _attach_submission(client, key, record)


async def _attach_submission(
    client: Client, key: str, record: SweepRecord | None = None
) -> Job[Any] | Sweep[Any]:
    # One follower per submission and client: attaching twice (or two calls of one
    # micro-batch) must not register its run twice with the poller.
    attached = client._attached
    task = attached.get(key)
    if task is None or (task.done() and (task.cancelled() or task.exception() is not None)):
        task = attached[key] = asyncio.ensure_future(_attach_record(client, key, record))
    return await asyncio.shield(task)


async def _attach_record(
    client: Client, key: str, record: SweepRecord | None
) -> Job[Any] | Sweep[Any]:
    if record is None:
        store = client._records_writer(client.config).store
        record = await asyncio.to_thread(store.sweep, key)
        if record is None:
            raise UnknownKeyError(f"no submission with key {key!r} is recorded")
    config = client.config
    check_target(record, config)
    return await _follow(client, config, record)


def check_target(record: SweepRecord, config: ClusterConfig) -> None:
    """Raise `ClusterMismatchError` unless `config` names the record's cluster."""
    sub = record.submission
    have = Target.from_config(config)
    pairs: list[tuple[str, object, object]] = [("cluster_type", sub.backend, have.backend)]
    if sub.backend == "kubernetes":
        pairs += [
            ("k8s_context", sub.k8s_context, have.k8s_context),
            ("k8s_namespace", sub.k8s_namespace, have.k8s_namespace),
        ]
    else:
        pairs += [
            ("cluster_host", sub.host, have.host),
            ("cluster_port", sub.port, have.port),
            ("username", sub.username, have.username),
        ]
    wrong = [f"{name}={want!r} (configured: {got!r})" for name, want, got in pairs if want != got]
    if wrong:
        hint = f" (it was submitted with profile {sub.profile!r})" if sub.profile else ""
        raise ClusterMismatchError(
            f"submission {sub.key} ran on another cluster than this configuration names: "
            f"it needs {', '.join(wrong)}{hint}. Attach with a Client (or profile) whose "
            "configuration names that cluster; it supplies the credentials."
        )


async def _follow(
    client: Client, config: ClusterConfig, record: SweepRecord
) -> Job[Any] | Sweep[Any]:
    sub = record.submission
    backend = client._backend_for(config)
    writer = client._records_writer(config)
    jobs: list[Job[Any]] = [
        Job(client, key=task.key, name=sub.function, index=task.index if sub.sweep else None)
        for task in record.jobs
    ]
    for job, task in zip(jobs, record.jobs, strict=True):
        job._control.backend = backend
        # A task another process collected keeps its record: what this follower finds
        # of it now (a cleaned run: no result) must not overwrite how it ended.
        if not (task.collected and task.state.final):
            job._control.recorder = writer
    client._jobs.update(jobs)
    payload = Payload(b"", [b""] * len(jobs))  # staged long ago: never sent again
    controls = [job._control for job in jobs]
    submission = Submission(sub.key, sub.function, payload, Resources(), config, controls)
    run_dir = sub.run_dir or posixpath.join(config.remote_work_dir, "runs", sub.key)
    collectors = sorted({t.collected_by for t in record.jobs if t.collected_by})
    gone = f"the run directory {run_dir} of {sub.key} is gone from the cluster"
    if collectors:
        gone += f" (removed after {', '.join(collectors)} collected its results)"
    gone += " and no result file is left"
    age = time.time() - sub.submitted_at.timestamp()
    await backend.attach(submission, run_dir, age, gone)
    if not sub.sweep and len(jobs) == 1:
        return jobs[0]
    # A micro-batch is not a sweep to its callers, but a Sweep holds its calls' Jobs.
    return Sweep(client, jobs, key=sub.key, name=sub.function)
