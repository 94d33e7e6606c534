"""The batch backend: SLURM, PBS and SGE through one generic piece of I/O.

Scheduler knowledge (argv builders, parsers, state tables, templates) lives in
`clustrix.schedulers`; this module only stages, renders, submits, polls and cancels.
A sweep is ONE array submission (split only where the scheduler's array limit
forces it); each poll tick asks the scheduler about every live job in one command
(plus one accounting command for jobs that left the queue) and one agent call
collects results and exit-code files, whatever the number of jobs.
"""

from __future__ import annotations

import asyncio
import math
import weakref
from collections.abc import Sequence

from ..._config import ClusterConfig
from ..._exceptions import ClusterConnectionError, CommandError, SubmissionError
from ..._states import JobState
from ..._testing import crash_point
from ...oncluster.protocol import ElementReport
from ...schedulers import ArraySpec, BatchResources, Scheduler, render_script, scheduler_for
from ...schedulers.base import TaskStatus
from ...transport.base import Transport
from ..base import Submission
from .batch_fates import DROPPED, BatchRun, Part, Unstarted, fate_from_files, merge_fates
from .reattach import recover_parts
from .runs import Fate, RemoteRunsBackend, Run
from .scripts import script_context

_MISSING_GRACE = 60.0  # seconds an element may be unknown everywhere before it is LOST
_YOUNG = 15.0  # accounting may lag this long behind a submission
_SHORT_TASK = 600  # seconds: tasks declared this short are packed automatically
_ELEMENT_BUDGET = 1800  # seconds of declared work per packed element, at most
_TARGET_ELEMENTS = 64  # launches a packed sweep aims for


class BatchBackend(RemoteRunsBackend):
    """SLURM, PBS or SGE over the pooled transport (SSH, or local on the login node)."""

    def __init__(self, config: ClusterConfig, transport: Transport) -> None:
        super().__init__(config, transport, f"{config.cluster_type} {config.cluster_host or ''}")
        self.scheduler: Scheduler = scheduler_for(config)
        self._max_array: int | None = config.max_array_size
        self._missing_since: dict[tuple[str, int], float] = {}
        self._probed = False
        self._batch: weakref.WeakKeyDictionary[Run, BatchRun] = weakref.WeakKeyDictionary()

    def plan(self, submission: Submission) -> int:
        """Tasks per array element.

        `chunksize=` decides when given. Otherwise tasks declared short (`time` of at
        most 10 minutes) are packed so a sweep needs about 64 launches and no element
        asks for more than 30 minutes; tasks of unknown length are not packed, since
        a packed element runs its tasks one after another.
        """
        if submission.chunksize:
            return submission.chunksize
        time, count = submission.resources.time, len(submission.jobs)
        if time is None or time > _SHORT_TASK or count <= _TARGET_ELEMENTS:
            return 1
        return max(1, min(_ELEMENT_BUDGET // time, math.ceil(count / _TARGET_ELEMENTS)))

    # -- submission ----------------------------------------------------------------------
    async def _array_limit(self) -> int:
        if self._max_array is None:
            self._max_array = 1000  # a cautious default where the scheduler cannot say
            argv = self.scheduler.array_limit_argv()
            if argv is not None:
                out = await self._area.transport.run(argv, check=False)
                if out.exit_status == 0:
                    self._max_array = self.scheduler.parse_array_limit(out.stdout) or 1000
        return self._max_array

    def _resources(self, run: Run, count: int, array: bool) -> BatchResources:
        submission, resources = run.submission, run.submission.resources
        throttle = resources.max_concurrent if array else None
        return BatchResources(
            job_name=submission.key,
            log_dir=run.layout.logs,
            cores=resources.cores,
            memory=resources.memory,
            time=resources.time * run.chunksize if resources.time else None,
            gpus=resources.gpus,
            nodes=resources.nodes,
            queue=resources.partition,
            account=resources.account,
            extra={k: str(v) if isinstance(v, float) else v for k, v in resources.extra.items()},
            array=ArraySpec(count, throttle) if array else None,
        )

    async def _probe(self) -> None:
        """Ask which variant of its scheduler the cluster runs, if that matters (once)."""
        argv = None if self._probed else self.scheduler.probe_argv()
        if argv is not None:
            answer = await self._area.transport.run(argv, check=False)
            self.scheduler = self.scheduler.probed(answer.stdout)
        self._probed = True

    async def launch(self, run: Run) -> None:
        await self._probe()
        limit = await self._array_limit()
        sweep = len(run.submission.jobs) > 1 or run.submission.jobs[0].index is not None
        state = self._batch[run] = BatchRun()
        try:
            for offset in range(0, run.elements, limit):
                count = min(limit, run.elements - offset)
                resources = self._resources(run, count, array=sweep and count > 1)
                state.parts.append(await self._submit_part(run, offset, count, resources))
        except BaseException:
            await self._withdraw(run, state.parts)
            raise

    async def _submit_part(
        self, run: Run, offset: int, count: int, resources: BatchResources
    ) -> Part:
        area, scheduler = self._area, self.scheduler
        context = script_context(
            self._config,
            run.submission.resources,
            run.directory,
            area.runner,
            offset,
            run.venv,
        )
        script = render_script(scheduler, resources, context)
        path = run.layout.job_script(offset)
        await area.transport.write_file(path, script.encode())
        argv = scheduler.submit_argv(path, resources)
        crash_point("submitting")
        try:
            result = await area.transport.run(argv, check=False, idempotent=False)
            crash_point("submitted")
        except ClusterConnectionError as error:
            if not error.transient:
                raise
            master = await self._find_submitted(run)  # at most once
            if master is None:
                result = await area.transport.run(argv, check=False)
            else:
                return Part(offset, count, master, resources)
        if result.exit_status != 0:
            message = (result.stderr.strip() or result.stdout.strip())[-2000:]
            # The answer may be lost after the scheduler recorded the job: look first.
            if scheduler.submit_error_is_transient(message):
                master = await self._find_submitted(run)
                if master is not None:
                    return Part(offset, count, master, resources)
            raise SubmissionError(
                f"{scheduler.NAME} refused the job: {message}", argv=argv, stderr=message
            )
        return Part(offset, count, scheduler.parse_submit(result.stdout), resources)

    async def recover(self, run: Run) -> bool:
        """Find the run's array submissions by its job name (see `reattach`)."""
        self._batch[run] = BatchRun(await recover_parts(self, run) or [])
        return bool(self._batch[run].parts)

    async def _find_submitted(self, run: Run) -> str | None:
        """After a lost answer: did the submission reach the scheduler?"""
        scheduler = self.scheduler
        found = await self._area.transport.run(
            scheduler.lookup_argv(run.submission.key), check=False
        )
        known = {p.master for p in self._batch[run].parts}
        fresh = [m for m in scheduler.parse_lookup(found.stdout) if m not in known]
        return fresh[0] if fresh else None

    async def _withdraw(self, run: Run, parts: Sequence[Part]) -> None:
        """Leave nothing behind after a refused submission."""
        if parts:
            ids = [part.master for part in parts]
            await self._area.transport.run(self.scheduler.cancel_argv(ids), check=False)
        await self._area.transport.remove_tree(run.directory)

    # -- observing -----------------------------------------------------------------------
    async def observe(self, runs: Sequence[Run]) -> dict[Run, dict[int, Fate]]:
        if not self.scheduler.addressable:
            await self._observe_by_name(runs)
            return {}
        scheduler, transport = self.scheduler, self._area.transport
        masters = [part.master for run in runs for part in self._batch[run].parts]
        result = await transport.run(scheduler.status_argv(masters), check=False)
        self.poll_commands += 1
        if result.exit_status != 0 and not scheduler.status_error_is_benign(
            result.exit_status, result.stderr
        ):
            raise CommandError(
                f"{scheduler.NAME} status failed: {result.stderr.strip()[-500:]}",
                argv=result.argv,
                exit_status=result.exit_status,
                stderr=result.stderr,
                transient=True,
            )
        answer = scheduler.parse_status(result.stdout)
        statuses = {k: v for k, v in answer.items() if not v.outcome_unknown}
        missing = [
            (run, part, element)
            for run in runs
            for part in self._batch[run].parts
            for element in part.elements
            if element in run.live and part.element_id(scheduler, element) not in statuses
        ]
        listed = set(statuses)  # what the live queue lists, before accounting
        if missing:
            statuses.update(await self._accounting({part.master for _, part, _ in missing}))
        now = self._now()
        fates: dict[Run, dict[int, Fate]] = {}
        known_parts: dict[int, bool] = {}
        for run in runs:
            for part in self._batch[run].parts:
                for element in part.elements:
                    if element not in run.live:
                        continue
                    element_id = part.element_id(scheduler, element)
                    status = statuses.get(element_id)
                    dropped = False
                    if status is None:  # in the finished list, or siblings still queued
                        if id(part) not in known_parts:
                            known_parts[id(part)] = self._listed(part, listed)
                        dropped = element_id in answer or known_parts[id(part)]
                    fate = self._fate(run, element, element_id, status, now, dropped)
                    if fate is not None:
                        fates.setdefault(run, {})[element] = fate
        return fates

    def _listed(self, part: Part, listed: set[str]) -> bool:
        """Does the live queue still list the part (its array record or an element)?"""
        if part.master in listed:
            return True
        ids = (part.element_id(self.scheduler, e) for e in part.elements)
        return any(i in listed for i in ids)

    async def _observe_by_name(self, runs: Sequence[Run]) -> None:
        """Elements no one can address by id (Slurm's Torque wrappers): the job name
        says whether a run still has live jobs; the runner's files say the rest
        (element_fate)."""
        argv = self.scheduler.jobs_by_name_argv()
        result = await self._area.transport.run(argv, check=False)
        self.poll_commands += 1
        by_name = self.scheduler.parse_jobs_by_name(result.stdout)
        now = self._now()
        for run in runs:
            named = by_name.get(run.submission.key)
            state = self._batch[run]
            state.ended = not (named and named.live) and now - run.started > _YOUNG / 3
            state.dropped = bool(named and named.dropped)

    async def _accounting(self, masters: set[str]) -> dict[str, TaskStatus]:
        argv = self.scheduler.accounting_argv(sorted(masters))
        if argv is None:
            return {}
        result = await self._area.transport.run(argv, check=False)
        self.poll_commands += 1
        return self.scheduler.parse_accounting(result.stdout) if result.exit_status == 0 else {}

    def _fate(
        self,
        run: Run,
        element: int,
        element_id: str,
        status: TaskStatus | None,
        now: float,
        dropped: bool = False,
    ) -> Fate | None:
        key = (run.submission.key, element)
        if status is not None:
            self._missing_since.pop(key, None)
            return Fate(status.state, element_id, status.reason, status.exit_code)
        # Unknown to the scheduler and its accounting: the exit-code file may still
        # tell (element_fate); if not, give it time (accounting lags), then LOST.
        lost = None
        if now - run.started >= _YOUNG:
            since = self._missing_since.setdefault(key, now)
            if now - since > _MISSING_GRACE:
                lost = Fate(JobState.LOST, element_id, "the scheduler no longer knows this job")
        if dropped:  # left the queue without a record: cancelled, unless it started
            return Unstarted(JobState.CANCELLED, element_id, DROPPED, otherwise=lost)
        return lost

    def merge_fate(
        self, run: Run, element: int, fate: Fate | None, report: ElementReport
    ) -> Fate | None:
        """The scheduler's state, with the exit status the job script recorded.

        That file is exact where the scheduler is not (squeue forgets exit codes after
        MinJobAge, sacct reports them modulo 128, Torque's wrappers never). An element
        the scheduler dropped from its queue without a record was cancelled outside
        clustrix if it never started (no pid or exit file)."""
        return merge_fates(fate, self.element_fate(run, element, report), report)

    def element_fate(self, run: Run, element: int, report: ElementReport) -> Fate | None:
        fate = super().element_fate(run, element, report)
        element_id = self._part(run, element).element_id(self.scheduler, element)
        if fate is None:
            if self.scheduler.addressable:
                return None
            return fate_from_files(run, self._batch[run], element_id, report)
        if fate.exit_code == 0:  # finished normally; the results say the rest
            return Fate(JobState.COMPLETED, element_id, exit_code=0)
        return Fate(fate.state, element_id, exit_code=fate.exit_code)

    def log_path(self, run: Run, element: int) -> str | None:
        part = self._part(run, element)
        return self.scheduler.log_paths(part.resources, part.master, element - part.offset)[1]

    async def _cancel_unaddressable(self, run: Run, elements: Sequence[int]) -> set[int]:
        """A whole array goes with one qdel; single elements get a cancel marker (they
        will not start; one already running cannot be reached through the wrappers)."""
        whole = [p for p in self._batch[run].parts if set(p.elements) & run.live <= set(elements)]
        if whole:
            argv = self.scheduler.cancel_argv([p.master for p in whole])
            await self._area.transport.run(argv, check=False)
        return await self._area.cancel(run.directory, elements)

    def _now(self) -> float:
        return asyncio.get_running_loop().time()

    def initial_job_id(self, run: Run, element: int) -> str | None:
        return self._part(run, element).element_id(self.scheduler, element)

    # -- cancelling ----------------------------------------------------------------------
    async def cancel_elements(self, run: Run, elements: Sequence[int]) -> set[int]:
        if not elements:
            return set()
        if not self.scheduler.addressable:
            return await self._cancel_unaddressable(run, elements)
        parts = self._batch[run].parts
        ids = []
        for part in parts:
            mine = [e for e in elements if e in part.elements]
            if len(mine) == part.count:
                ids.append(part.master)  # the whole array: one id
            else:
                ids += [part.element_id(self.scheduler, e) for e in mine]
        result = await self._area.transport.run(self.scheduler.cancel_argv(ids), check=False)
        if result.exit_status != 0 and result.stderr.strip():
            raise CommandError(
                f"{self.scheduler.NAME} could not cancel {ids}: {result.stderr.strip()}",
                argv=result.argv,
                exit_status=result.exit_status,
                stderr=result.stderr,
            )
        # Elements still waiting in the queue never start once cancelled (and leave no
        # record behind): they are settled now; running ones when the scheduler says.
        jobs = run.submission.jobs
        return {
            e for e in elements if all(jobs[t].state is JobState.QUEUED for t in run.tasks_of(e))
        }

    def _part(self, run: Run, element: int) -> Part:
        """The array submission of `run` that holds `element`."""
        return next(p for p in self._batch[run].parts if element in p.elements)
