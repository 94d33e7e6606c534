"""``clustrix result KEY``: the value a job returned (its repr), or its error."""

from __future__ import annotations

import asyncio
import sys
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.panel import Panel

from .._exceptions import JobError
from .._job import Job
from .._records import JobRecord
from ._attach import Found, KeyArgument, ProfileOption, connected, find, jobs_of
from ._output import Problem, console, err_console, format_time, styled_state

_MISSING = object()


def _describe_error(error: BaseException) -> str:
    if isinstance(error, JobError):
        return " ".join(str(error).split())
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _show_error(label: str, error: BaseException) -> None:
    notes = [note for note in getattr(error, "__notes__", []) if "traceback" in note.lower()]
    for note in notes:
        err_console.print(Panel(escape(note.rstrip()), title=f"{label}: remote traceback",
                                border_style="red"))  # fmt: skip
    err_console.print(f"[bold red]{escape(label)}:[/] {escape(_describe_error(error))}")


def _collected(task: JobRecord, label: str) -> bool:
    """Say where an already-collected task's value went; True if it had completed."""
    console.print(
        f"{escape(label)}: {styled_state(task.state.value)}; the value was already collected "
        f"by process {escape(task.collected_by or '?')} at {format_time(task.collected_at)}: "
        "it went to that process and is no longer kept on the cluster"
    )
    if task.error:
        err_console.print(f"[bold red]{escape(label)}:[/] {escape(task.error.strip())}")
    return task.state.value == "COMPLETED"


async def _outcome(job: Job[Any], timeout: float | None) -> tuple[Any, BaseException | None]:
    try:
        return await asyncio.wait_for(job._wait(), timeout), None
    except TimeoutError:
        if job.done():
            raise
        raise Problem(
            f"{job.key} has not finished within {timeout:g} s (state {job.state.value}); "
            "it keeps running: try again later"
        ) from None
    except Exception as error:  # the task's own exception, re-raised here
        return _MISSING, error


async def _collect(
    found: Found, keys: list[str], profile: str | None, timeout: float | None
) -> bool:
    async with connected(found, profile) as client:
        jobs = [job for key in keys for job in jobs_of(await client.attach(key))]
        outcomes = await asyncio.gather(*(_outcome(job, timeout) for job in jobs))
    ok = True
    for job, (value, error) in zip(jobs, outcomes, strict=True):
        label = f"[{job.index}]" if found.is_sweep else job.key
        if error is not None:
            ok = False
            _show_error(label, error)
        elif found.is_sweep:
            sys.stdout.write(f"{label} {value!r}\n")
        else:
            sys.stdout.write(f"{value!r}\n")
    return ok


def result(
    key: KeyArgument,
    timeout: Annotated[
        float | None,
        typer.Option(min=0, help="Give up after this many seconds if the job is still running."),
    ] = None,
    profile: ProfileOption = None,
) -> None:
    """Print the value a job returned (its repr), waiting for it to end.

    For a sweep, one line per task: its index in brackets, then its value.

    A failed job prints its error (with the remote traceback) and exits with status 1.
    A job whose value an earlier process already collected prints its state and which
    process the value went to.
    """
    found = find(key, profile)
    ok = True
    pending: list[str] = []
    for task in found.tasks:
        if task.collected:
            ok = _collected(task, f"[{task.index}]" if found.is_sweep else task.key) and ok
        else:
            pending.append(task.key)
    if pending:
        keys = [found.key] if len(pending) == len(found.tasks) else pending
        ok = asyncio.run(_collect(found, keys, profile, timeout)) and ok
    if not ok:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add ``clustrix result`` to `app`."""
    app.command("result")(result)
