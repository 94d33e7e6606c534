"""The `kubernetes` backend: a call is a batch/v1 Job, a sweep ONE Indexed Job.

Submitting creates the Job suspended, then its payload Secret (owned by the Job, so
deleting the Job deletes it), then releases the Job. Status comes from two watch
streams per backend (Jobs and pods, selected by this backend's ``clustrix.io/client``
label), resumed from the last resourceVersion after a disconnect and relisted on
410 Gone; nothing is polled per job. A pod that ended is read once: its log holds
each task's output and framed result (see `oncluster.k8s_entry`). Manifests and
state mapping are pure (`manifests`, `status`); API access is in `api` and `watch`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import secrets
import weakref
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from ..._config import ClusterConfig
from ..._exceptions import ClusterConnectionError, CommandError
from ..._job import JobControl
from ..._states import JobState
from ..._tasks import TaskSet
from ..base import Backend, Stream, Submission, wait_all
from . import manifests
from .api import ApiError, KubeApi, command_error, refusal_error
from .reattach import adopt
from .runs import Element, Run, fail_stuck, fail_unsettled, resolve, vanished_because
from .status import PodView, completion_index, job_outcome, parse_log, pod_view

log = logging.getLogger("clustrix")

_MAX_ELEMENTS = 1000  # a larger sweep is chunked: at most this many pods per Indexed Job
_CLOSE_WAIT = 10.0  # seconds aclose() lets cleanup deletions finish


class KubernetesBackend(Backend):
    """Runs tasks as Kubernetes Jobs; status from watch streams, results from pod logs.

    `pending_grace` is how long a pod may stay unable to start for a reason that will
    not fix itself (image pull failure, bad container config) before its tasks fail;
    by default the config's ``k8s_pending_grace_seconds``. An unschedulable pod waits
    (QUEUED, with the scheduler's message in ``job.reason``).
    """

    detaches = True

    def __init__(self, config: ClusterConfig, *, pending_grace: float | None = None) -> None:
        self._config = config
        self._namespace = config.k8s_namespace
        self._client_id = secrets.token_hex(6)
        if pending_grace is None:
            pending_grace = config.k8s_pending_grace_seconds
        self.pending_grace = pending_grace
        self._tasks = TaskSet("kubernetes backend")
        self._cleanups: set[asyncio.Task[None]] = set()
        self._api: KubeApi | None = None
        self._connecting: asyncio.Lock | None = None
        self._refusal: ApiError | None = None  # the watch's last 401/403, until a list works
        self._runs: dict[str, Run] = {}  # by submission key (the pods' label)
        self._where: dict[JobControl[Any], Run] = {}
        self._output: weakref.WeakKeyDictionary[JobControl[Any], str] = weakref.WeakKeyDictionary()

    # -- connection and watches ------------------------------------------------------------
    async def _connect(self) -> KubeApi:
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            if self._api is None:
                api = await KubeApi.connect(self._config, self._tasks)
                self._api = api
                selector = f"{manifests.LABEL_CLIENT}={self._client_id}"
                for kind, on_event in (("jobs", self._on_job), ("pods", self._on_pod)):
                    relist = self._relister(kind)
                    watch = api.watcher(
                        kind, self._namespace, selector, on_event, relist, self._refused
                    )
                    self._tasks.spawn(watch.run(), name=f"k8s-watch-{kind}")
            return self._api

    @property
    def _kube(self) -> KubeApi:
        assert self._api is not None
        return self._api

    # -- submission -------------------------------------------------------------------
    async def submit(self, submission: Submission) -> None:
        count = len(submission.jobs)
        chunksize = submission.chunksize or max(1, math.ceil(count / _MAX_ELEMENTS))
        indexed = submission.jobs[0].index is not None
        name = manifests.job_name(submission.name, submission.key)
        run = Run.plan(submission, name, chunksize, indexed)
        plan = manifests.plan(
            submission,
            namespace=self._namespace,
            client_id=self._client_id,
            chunksize=chunksize,
            elements=len(run.elements),
            indexed=indexed,
        )
        api = await self._connect()
        self._runs[submission.key] = run

        def created(uid: str) -> dict[str, Any]:  # the Job exists: its events may come
            run.uid, run.created_at = uid, asyncio.get_running_loop().time()
            return plan.secret(uid)

        abandon = functools.partial(self._runs.pop, submission.key, None)
        await api.start_job(self._namespace, plan.job, created, abandon)
        if self._runs.get(submission.key) is run:
            for job in run.queued():
                self._where[job] = run
        if self._refusal is not None:  # the watch was refused before this run existed
            self._refused(self._refusal)
        cancelled = [job for job in submission.jobs if job.cancel_requested]
        if cancelled:
            await self._cancel_in_run(run, cancelled)

    # -- events (synchronous: they only record state and start work) ----------------------
    def _run_of(self, obj: dict[str, Any]) -> Run | None:
        labels = (obj.get("metadata") or {}).get("labels") or {}
        run = self._runs.get(labels.get(manifests.LABEL_KEY, ""))
        return run if run is not None and run.uid is not None and not run.gone else None

    def _on_job(self, kind: str, obj: dict[str, Any]) -> None:
        run = self._run_of(obj)
        if run is None or obj["metadata"].get("uid") != run.uid:
            return
        if kind == "DELETED" or obj["metadata"].get("deletionTimestamp"):
            run.gone = True
            self._spawn(run, self._settle_deleted(run))
            return
        outcome = job_outcome(obj)
        if outcome is not None and not run.finishing:
            run.finishing = True
            self._spawn(run, self._settle_finished(run, *outcome))

    def _on_pod(self, kind: str, pod: dict[str, Any]) -> None:
        run = self._run_of(pod)
        index = completion_index(pod)
        if run is None or index >= len(run.elements):
            return
        element, name = run.elements[index], pod["metadata"]["name"]
        if element.settled or element.pod not in (None, name):
            return
        element.pod = name
        view = pod_view(pod)
        deleted = kind == "DELETED" or bool(pod["metadata"].get("deletionTimestamp"))
        if view.terminal or deleted:
            # A pod being deleted ends Failed (killed): ask why before blaming the task.
            vanished = deleted and view.state is not JobState.COMPLETED
            self._settle(run, element, view, vanished=vanished)
            return
        jobs = run.submission.jobs
        reason = f"{view.reason}: {view.message}" if view.message else view.reason
        for position in element.tasks:
            jobs[position].set_state(view.state, job_id=element.job_id, reason=reason)
        element.view = view
        if not view.stuck:
            element.disarm()
        elif element.timer is None:
            element.timer = asyncio.get_running_loop().call_later(
                self.pending_grace, self._stuck_expired, run, element
            )
        if all(jobs[p].done() for p in element.tasks):  # its tasks were cancelled one by one
            element.settled = True
            self._spawn(run, self._delete("pod", name))

    def _relister(
        self, kind: str, key: str | None = None
    ) -> Callable[[list[dict[str, Any]], float], None]:
        """After a (re)list: feed every object, then settle what vanished meanwhile
        (among this client's runs, or the adopted run `key`: what the list covers)."""

        def relist(items: list[dict[str, Any]], started: float) -> None:
            self._refusal = None  # listing works (again)
            handler = self._on_job if kind == "jobs" else self._on_pod
            seen = {item["metadata"]["name"] for item in items}
            for item in items:
                handler("MODIFIED", item)
            for run in list(self._runs.values()):
                if (run.submission.key != key) if run.adopted else key is not None:
                    continue
                if run.uid is None or run.gone or run.created_at >= started:
                    continue  # created after the list was taken: it may not be in it
                if kind == "jobs" and run.name not in seen:
                    run.gone = True
                    self._spawn(run, self._settle_deleted(run))
                for element in run.elements if kind == "pods" else ():
                    if element.pod and element.pod not in seen and not element.settled:
                        self._settle(run, element, element.view or PodView(JobState.LOST), True)

        return relist

    def _refused(self, error: ApiError) -> None:
        """The API server refuses to show us our objects: no job could ever end."""
        self._refusal = error
        for run in list(self._runs.values()):
            for job in run.unfinished():
                job.set_exception(refusal_error(error, self._namespace, run.name))
            self._forget(run)

    def _spawn(self, run: Run, work: Coroutine[Any, Any, None]) -> None:
        if self._tasks.closed:
            work.close()
            return
        run.track(self._tasks.spawn(work, name=f"k8s-{run.name}"))

    # -- settling tasks -----------------------------------------------------------------
    def _settle(self, run: Run, element: Element, view: PodView, vanished: bool) -> None:
        element.settled = True
        element.disarm()
        self._spawn(run, self._collect(run, element, view, vanished))

    async def _collect(self, run: Run, element: Element, view: PodView, vanished: bool) -> None:
        """Read the ended pod's log once and resolve each of its tasks from it."""
        text = await self._read_log(element.pod) if element.pod else None
        fallback = None
        if vanished:  # deleted with its Job (cancelled), or alone (lost)?
            deleted = await self._kube.job_deleted(self._namespace, run.name)
            fallback = vanished_because(deleted, run, element)
        parsed = parse_log(text or "")
        resolve(run, element, parsed, view, fallback=fallback, outputs=self._output)
        self._maybe_finish(run)

    async def _read_log(self, pod: str) -> str | None:
        return await self._kube.read_log(self._namespace, pod, manifests.CONTAINER)

    async def _settle_deleted(self, run: Run) -> None:
        await run.drain()
        run.disarm()
        for job in run.unfinished():
            job.fail(JobState.CANCELLED, f"its Kubernetes Job {run.name} was deleted from outside")
        self._forget(run)

    async def _settle_finished(self, run: Run, state: JobState, reason: str, message: str) -> None:
        """The Job ended: settle tasks whose pod we have not seen end (one pod list)."""
        await run.drain()
        if run.unfinished():
            selector = f"{manifests.LABEL_KEY}={run.submission.key}"
            try:
                pods = await self._kube.list_pods(self._namespace, selector)
            except (ApiError, ClusterConnectionError) as exc:
                log.warning("could not list the pods of %s: %s", run.name, exc)
                pods = []
            for pod in pods:
                self._on_pod("MODIFIED", pod)
            await run.drain()
        fail_unsettled(run, state, reason, message)
        self._maybe_finish(run)

    def _stuck_expired(self, run: Run, element: Element) -> None:
        element.timer = None
        view = element.view
        if element.settled or run.gone or view is None or not view.stuck:
            return
        run.gone = True
        self._spawn(run, self._give_up(run, element, view))

    async def _give_up(self, run: Run, element: Element, view: PodView) -> None:
        """A pod could not start for `pending_grace` seconds: the Job cannot run."""
        await self._delete("Job", run.name)
        fail_stuck(run, element, view, self.pending_grace)
        self._forget(run)

    def _maybe_finish(self, run: Run) -> None:
        if run.unfinished() or self._runs.get(run.submission.key) is not run:
            return
        self._forget(run)
        if run.submission.config.cleanup_remote_files and not run.gone:
            run.gone = True
            task = asyncio.get_running_loop().create_task(self._delete("Job", run.name))
            self._cleanups.add(task)
            task.add_done_callback(self._cleanups.discard)

    def _forget(self, run: Run) -> None:
        run.disarm()
        if self._runs.get(run.submission.key) is run:
            del self._runs[run.submission.key]
        for job in run.submission.jobs:
            self._where.pop(job, None)

    async def _delete(self, kind: str, name: str) -> None:
        await self._kube.delete_quietly(kind, self._namespace, name)

    async def attach(self, submission: Submission, run_dir: str, age: float, gone: str) -> None:
        """Follow a Job an earlier process created, found by its name and key label."""
        await adopt(self, submission)

    # -- cancel, output, close -------------------------------------------------------------
    async def cancel(self, jobs: Sequence[JobControl[Any]]) -> None:
        by_run: dict[str, tuple[Run, list[JobControl[Any]]]] = {}
        for job in jobs:
            job.mark_cancel_requested()  # a submission still in flight cancels on arrival
            run = self._where.get(job)
            if run is not None and not job.done():
                by_run.setdefault(run.submission.key, (run, []))[1].append(job)
        for run, chosen in by_run.values():
            await self._cancel_in_run(run, chosen)
        await wait_all(jobs)

    async def _cancel_in_run(self, run: Run, chosen: list[JobControl[Any]]) -> None:
        remaining = run.unfinished()
        if set(remaining) <= set(chosen):
            # Everything left is cancelled: delete the Job; its pods and Secret follow.
            run.gone = True
            try:
                await self._kube.delete_job(self._namespace, run.name)
            except ApiError as exc:
                run.gone = False
                raise command_error(exc, f"cancelling {run.name} failed") from None
            for job in remaining:
                job.fail(JobState.CANCELLED, f"cancelled; its Kubernetes Job {run.name} deleted")
            self._forget(run)
            return
        for job in chosen:
            job.fail(JobState.CANCELLED, "cancelled")
        for pod in run.idle_pods():  # a pod whose tasks are all cancelled is stopped
            await self._delete("pod", pod)
        # Elements without a pod yet are stopped when their pod appears (_on_pod).

    async def read_output(self, job: JobControl[Any], stream: Stream) -> str:
        """The task's output. Kubernetes keeps ONE log per container, so stdout and
        stderr both return it (the two streams interleaved)."""
        if job in self._output:
            return self._output[job]
        run = self._where.get(job)
        if run is None or self._api is None:
            return ""
        position = job.index or 0  # a sweep's task i is its job i
        pod = run.element_of(position).pod
        text = await self._read_log(pod) if pod else None
        part = parse_log(text or "").tasks.get(position)
        return part.output if part else ""

    async def aclose(self, *, cancel_running: bool) -> None:
        if cancel_running and self._api is not None:
            for run in list(self._runs.values()):
                if run.uid is not None and run.unfinished():
                    with contextlib.suppress(ClusterConnectionError, CommandError):
                        await self._cancel_in_run(run, run.unfinished())
        for run in self._runs.values():
            run.disarm()
        if self._cleanups:
            await asyncio.wait(self._cleanups, timeout=_CLOSE_WAIT)
        await self._tasks.aclose()
        for task in self._cleanups:
            task.cancel()
        if self._api is not None:
            await self._api.aclose()
            self._api = None
