"""Reattaching a remote backend to a run an earlier process launched.

The record gives the run directory; its ``spec.json`` gives the task count and the
chunksize. The backend rebuilds what `launch` knew (`recover`: the scheduler's ids by
the job name, the ssh driver's pid) and polls the run as if it had launched it: no
command that could start anything is sent. A run that never reached the cluster, or
that the scheduler forgot, is settled from the result files it left.
"""

from __future__ import annotations

import asyncio
import json
import math
from typing import TYPE_CHECKING

from ..._exceptions import ClustrixError
from ..._states import JobState
from ...oncluster.layout import RunLayout
from ..base import Submission
from .run import Run

if TYPE_CHECKING:
    from .batch import BatchBackend
    from .batch_fates import Part
    from .runs import RemoteRunsBackend

_INLINE_LIMIT = 1 << 20


async def adopt(
    backend: RemoteRunsBackend, submission: Submission, run_dir: str, age: float, gone: str
) -> None:
    """Follow `submission` (launched `age` seconds ago into `run_dir`) with `backend`."""
    area = backend._area
    await area.prepare()
    directory = await area.expand(run_dir)
    jobs = submission.jobs
    try:
        spec = json.loads(await area.transport.read_file(RunLayout(directory).spec))
    except FileNotFoundError:
        for job in jobs:
            job.fail(JobState.LOST, gone)
        return
    count, chunksize = int(spec["count"]), int(spec["chunksize"])
    if count != len(jobs):
        raise ClustrixError(
            f"the run directory {directory} holds {count} tasks, the record of "
            f"{submission.key} {len(jobs)}: it belongs to another submission"
        )
    elements = math.ceil(count / chunksize)
    started = asyncio.get_running_loop().time() - max(0.0, age)
    run = Run(submission, directory, chunksize, elements, started)
    run.live, run.uncollected = set(range(elements)), set(range(count))
    if await backend.recover(run):
        await backend.follow(run)
    else:
        await settle_from_files(
            backend,
            run,
            f"submission {submission.key} is not known to the cluster (it never reached "
            "the scheduler, or the scheduler no longer remembers it) and left no result",
        )


async def settle_from_files(backend: RemoteRunsBackend, run: Run, message: str) -> None:
    """Collect the results `run` left; end its other tasks LOST with `message`."""
    run.live.clear()  # nothing is asked about its elements: only its files count
    query = backend._agent_request(run, {})
    answer = await backend._area.status({"inline_limit": _INLINE_LIMIT, "runs": [query]})
    report = answer.get(run.directory)
    if report is not None:
        await backend._update(run, report, {})
    if run.uncollected:
        for task in sorted(run.uncollected):
            run.submission.jobs[task].fail(JobState.LOST, message)
        run.uncollected.clear()
        await backend._finish(run)


async def recover_parts(backend: BatchBackend, run: Run) -> list[Part] | None:
    """The run's array submissions, found by its job name (the submission's key) as
    the at-most-once lookup after a lost answer finds them; None unless every part
    is found (the run is then settled from its files)."""
    from .batch_fates import Part

    await backend._probe()
    limit = await backend._array_limit()
    scheduler = backend.scheduler
    found = await backend._area.transport.run(
        scheduler.lookup_argv(run.submission.key), check=False
    )
    masters = sorted(scheduler.parse_lookup(found.stdout), key=_numeric)
    offsets = range(0, run.elements, limit)
    if len(offsets) == 1:
        masters = masters[:1]  # where elements list as jobs of their own (the PBS
        # wrappers on Slurm), the first is the array's own id, as `_find_submitted` takes
    if len(masters) != len(offsets):
        return None
    jobs = run.submission.jobs
    sweep = len(jobs) > 1 or jobs[0].index is not None
    parts = []
    for offset, master in zip(offsets, masters, strict=True):
        count = min(limit, run.elements - offset)
        resources = backend._resources(run, count, array=sweep and count > 1)
        parts.append(Part(offset, count, master, resources))
    return parts


def _numeric(master: str) -> tuple[int, str]:
    """Submission order: ids are numbers (``123``, ``123.server``, ``123[].server``)."""
    digits = master.split(".")[0].split("[")[0].split("_")[0]
    return (int(digits) if digits.isdigit() else -1, master)
