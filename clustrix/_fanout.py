"""A call whose loop is fanned out as an array sweep (``parallel="sweep"``).

The caller gets one `Job`. Behind it: one sweep with a task per iteration (each runs
the function up to its loop and then only its own iteration, returning the
iteration's effects), then one last job that runs the function with those effects
replayed in iteration order, so it returns exactly what the sequential loop gives.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from ._job import Job
from ._options import Options
from ._states import JobState
from ._submit import MapArgs

if TYPE_CHECKING:
    from ._client import Client
    from ._loops import FanOut
    from ._sweep import Sweep


def start_fanout(
    client: Client, options: Options, plan: FanOut, call: tuple[Any, ...], name: str, how: str
) -> Job[Any]:
    """Submit the iterations' sweep now; the returned Job ends with the last job's value.

    Runs on the client's loop (as `Client._start` does for ordinary calls).
    """
    args, kwargs = call
    calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = [
        ((index, item), {}) for index, item in enumerate(plan.items)
    ]
    sweep: Sweep[Any] = client.start_sweep(
        plan.task, options, MapArgs(calls, return_exceptions=True, progress=False), how=how
    )
    job: Job[Any] = Job(client, key=f"{sweep.key}.fan", name=name)
    job._control.set_state(JobState.QUEUED, job_id=sweep.key)
    inner: list[Job[Any]] = []

    def cancel_inner(done: Job[Any]) -> None:
        if done._control.cancel_requested:
            live = [j for j in [*sweep, *inner] if not j.done()]
            if live:
                client.cancel_jobs(live)

    job._control.add_done_callback(cancel_inner)

    async def drive() -> None:
        try:
            outcomes = await sweep
            failed = [o for o in outcomes if isinstance(o, BaseException)]
            if failed:  # a task ended without running its iteration (killed, lost...)
                job._control.set_exception(failed[0])
                return
            job._control.set_state(JobState.RUNNING, job_id=sweep.key)
            last: Job[Any] = client.start_call(
                plan.final(list(outcomes)), options, args, kwargs, how=how
            )
            inner.append(last)
            value = await last
            job._control.set_state(JobState.RUNNING, job_id=last.job_id)
            job._control.set_result(value)
        except asyncio.CancelledError:
            job._control.fail(JobState.CANCELLED, "the client closed while its loop was fanned out")
            raise
        except BaseException as error:  # the user's exception, or the last job's fate
            job._control.set_exception(error)

    client.spawn(drive(), name=f"fanout-{sweep.key}")
    return job
