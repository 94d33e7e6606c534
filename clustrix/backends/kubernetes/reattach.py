"""Reattaching the kubernetes backend to a Job an earlier process created.

The Job's name follows from the recorded function name and key; its
``clustrix.io/chunksize`` annotation (or its completions) gives the tasks per pod.
The earlier client's watches selected its own ``clustrix.io/client`` label, so an
adopted run gets two watch streams of its own, selected by its ``clustrix.io/key``
label: their first list brings the pods that ended meanwhile (their logs hold the
results) and those still running. Nothing is created.
"""

from __future__ import annotations

import asyncio
import math
from typing import TYPE_CHECKING

from ..._states import JobState
from ..base import Submission
from . import manifests
from .runs import Run

if TYPE_CHECKING:
    from .backend import KubernetesBackend


async def adopt(backend: KubernetesBackend, submission: Submission) -> None:
    """Follow `submission`'s Job with `backend` (or end its tasks LOST if it is gone)."""
    api = await backend._connect()
    namespace = backend._namespace
    name = manifests.job_name(submission.name, submission.key)
    job = await api.read_job(namespace, name)
    if job is None:
        for control in submission.jobs:
            control.fail(
                JobState.LOST,
                f"its Kubernetes Job {name} is gone from namespace {namespace!r} (deleted, "
                "or removed after it ended: k8s_job_ttl_seconds) and with it its results",
            )
        return
    count = len(submission.jobs)
    annotations = job["metadata"].get("annotations") or {}
    elements = int(job.get("spec", {}).get("completions") or 1)
    chunksize = int(annotations.get(manifests.ANNOTATION_CHUNKSIZE) or math.ceil(count / elements))
    run = Run.plan(submission, name, chunksize, submission.jobs[0].index is not None)
    run.uid, run.adopted = job["metadata"]["uid"], True
    run.created_at = asyncio.get_running_loop().time()
    backend._runs[submission.key] = run
    for control in run.queued():
        backend._where[control] = run
    selector = f"{manifests.LABEL_KEY}={submission.key}"
    for kind, on_event in (("jobs", backend._on_job), ("pods", backend._on_pod)):
        relist = backend._relister(kind, submission.key)
        watch = api.watcher(kind, namespace, selector, on_event, relist, backend._refused)
        backend._tasks.spawn(watch.run(), name=f"k8s-watch-{kind}-{submission.key}")
