"""What ``logs``, ``cancel`` and ``result`` share: find a key's record, pick the
configuration of the cluster it runs on, and attach a `Client` to it.

The record names where a job runs (backend, host, port, user or kube context and
namespace) but never its credentials: those come from the configuration. Without
``--profile`` the record's own profile is used if the config files still define it,
else the default configuration; either way its identity must match the record's.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

import typer

from .._config import ClusterConfig
from .._exceptions import ConfigError
from .._job import Job
from .._records import JobRecord, RecordStore, SweepRecord, Target
from .._sweep import Sweep
from ._output import Problem
from .config_sources import resolve

if TYPE_CHECKING:
    from .._client import Client

ProfileOption = Annotated[
    str | None,
    typer.Option(
        "--profile",
        "-p",
        help="Use this profile's configuration (credentials) for the job's cluster; "
        "default: the profile it was submitted with.",
    ),
]
KeyArgument = Annotated[str, typer.Argument(help="A job's or a sweep's key (see `clustrix jobs`).")]


@dataclass(frozen=True)
class Found:
    """A key's records: `sweep` for a submission's key, `job` for a task's key (also
    set for a single call's key, whose submission has one task)."""

    key: str
    store: RecordStore
    sweep: SweepRecord | None
    job: JobRecord | None

    @property
    def tasks(self) -> tuple[JobRecord, ...]:
        """Every recorded task the key names, in index order."""
        if self.job is not None:
            return (self.job,)
        assert self.sweep is not None
        return self.sweep.jobs

    @property
    def is_sweep(self) -> bool:
        """True for a sweep's key (several tasks or a ``map`` call)."""
        return self.job is None

    @property
    def first(self) -> JobRecord:
        """The first task (its submission's fields name the cluster)."""
        return self.tasks[0]


def store_for(profile: str | None) -> RecordStore:
    """The record store named by the configuration (``records_path``)."""
    return RecordStore.for_config(resolve(profile).config)


def find(key: str, profile: str | None = None) -> Found:
    """The records of `key`, or `Problem` naming the store when there are none."""
    store = store_for(profile)
    sweep = store.sweep(key)
    if sweep is not None and sweep.jobs:
        if sweep.submission.sweep or len(sweep.jobs) != 1:
            return Found(key, store, sweep, None)
        return Found(key, store, None, sweep.jobs[0])
    job = store.get(key)
    if job is None:
        raise Problem(f"no recorded job or sweep has the key {key!r} (records: {store.path})")
    return Found(key, store, None, job)


def select(found: Found, index: int | None) -> Found:
    """`found` narrowed to task `index` of its sweep (``--index``)."""
    if index is None:
        return found
    if not found.is_sweep:
        raise Problem(f"{found.key} is a single job, not a sweep: leave out --index")
    tasks = found.tasks
    chosen = next((t for t in tasks if t.index == index), None)
    if chosen is None:
        raise Problem(f"sweep {found.key} has tasks 0 to {len(tasks) - 1}, not {index}")
    return Found(chosen.key, found.store, None, chosen)


def describe(target: Target | JobRecord) -> str:
    """``slurm at ada@login:22`` or ``kubernetes in ctx/ns``."""
    if target.backend == "kubernetes":
        return f"kubernetes in {target.k8s_context or 'the current context'}/{target.k8s_namespace}"
    if not target.host:
        return f"{target.backend} on this machine"
    user = f"{target.username}@" if target.username else ""
    return f"{target.backend} at {user}{target.host}:{target.port}"


def _identity(target: Target | JobRecord) -> tuple[Any, ...]:
    return (target.backend, target.host, target.port, target.username,
            target.k8s_context, target.k8s_namespace)  # fmt: skip


def config_for(
    record: JobRecord, profile: str | None, submitted_profile: str | None
) -> ClusterConfig:
    """The configuration to reach `record`'s cluster with; `Problem` if it does not match."""
    chosen = profile
    if chosen is None and submitted_profile:
        try:
            resolve(submitted_profile)
        except ConfigError:  # the profile is gone from the files: try the default
            pass
        else:
            chosen = submitted_profile
    config = resolve(chosen).config
    if _identity(Target.from_config(config)) != _identity(record):
        which = f"profile {chosen!r}" if chosen else "the default configuration"
        raise Problem(
            f"{record.key} runs on {describe(record)} but {which} is for "
            f"{describe(Target.from_config(config))}: pass --profile naming a profile for "
            "that cluster (credentials come from the configuration, not the record)"
        )
    return config


def cluster_config(found: Found, profile: str | None) -> ClusterConfig:
    """The configuration that reaches `found`'s cluster (see `config_for`)."""
    sweep = found.sweep
    submitted_profile = sweep.submission.profile if sweep is not None else None
    if submitted_profile is None and found.job is not None:
        submission = found.store.submission(found.job.submission_key)
        submitted_profile = submission.profile if submission else None
    return config_for(found.first, profile, submitted_profile)


@asynccontextmanager
async def connected(found: Found, profile: str | None, **overrides: Any) -> AsyncIterator[Client]:
    """An open `Client` for `found`'s cluster (`overrides` replace configuration
    fields); leaving it detaches from tasks still running (they keep running)."""
    from .._client import Client

    config = cluster_config(found, profile)
    if overrides:
        config = config.model_copy(update=overrides)
    async with Client(config) as client:
        yield client


@asynccontextmanager
async def attached(
    found: Found, profile: str | None, **overrides: Any
) -> AsyncIterator[Job[Any] | Sweep[Any]]:
    """`found`'s job or sweep, attached through `connected` (nothing is resubmitted)."""
    async with connected(found, profile, **overrides) as client:
        yield await client.attach(found.key)


def jobs_of(handle: Job[Any] | Sweep[Any]) -> list[Job[Any]]:
    """The tasks of an attached job or sweep."""
    return list(handle) if isinstance(handle, Sweep) else [handle]
