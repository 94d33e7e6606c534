"""``clustrix logs KEY``: a job's stdout (or stderr), a sweep's task by task, or
followed live until the job ends."""

from __future__ import annotations

import asyncio
import sys
from typing import Annotated, Any

import typer
from rich.markup import escape

from .._job import Job
from .._records import JobRecord
from ._attach import Found, KeyArgument, ProfileOption, attached, find, jobs_of, select
from ._output import console, err_console


def _heading(index: int | None) -> None:
    console.print(f"[bold]==> task {index} <==[/]")


def _write(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


class Printer:
    """Writes what is new in each task's stream, heading a sweep's output by index."""

    def __init__(self, headed: bool) -> None:
        self.headed = headed
        self.seen: dict[str, str] = {}
        self.last: str | None = None  # the task whose output was printed last

    def show(self, key: str, index: int | None, text: str) -> None:
        """Print the part of `text` not printed yet (all of it if it changed under us)."""
        before = self.seen.get(key, "")
        new = text[len(before) :] if text.startswith(before) else text
        self.seen[key] = text
        if not new:
            return
        if self.headed and self.last != key:
            if self.last is not None and not self.seen[self.last].endswith("\n"):
                _write("\n")
            _heading(index)
        self.last = key
        _write(new)

    def finish(self) -> None:
        """End with a newline so the shell prompt starts on its own line."""
        if self.last is not None and not self.seen[self.last].endswith("\n"):
            _write("\n")


async def _read(job: Job[Any], stderr: bool) -> str:
    return await (job.stderr() if stderr else job.stdout())


async def _show(found: Found, profile: str | None, stderr: bool, follow: bool,
                interval: float) -> int:  # fmt: skip
    printer = Printer(headed=found.is_sweep)
    async with attached(found, profile) as handle:
        jobs = jobs_of(handle)
        while True:
            ended = [job.done() for job in jobs]  # judged before reading: no output is lost
            texts = await asyncio.gather(*(_read(job, stderr) for job in jobs))
            for job, text in zip(jobs, texts, strict=True):
                printer.show(job.key, job.index, text)
            if not follow or all(ended):
                break
            await asyncio.sleep(interval)
    printer.finish()
    return sum(bool(t) for t in printer.seen.values())


def _from_records(tasks: tuple[JobRecord, ...], stderr: bool, headed: bool) -> int:
    """Print the recorded tails of collected tasks (their run directory may be gone)."""
    printer = Printer(headed)
    for task in tasks:
        printer.show(task.key, task.index, (task.stderr_tail if stderr else task.stdout_tail) or "")
    printer.finish()
    return sum(bool(t) for t in printer.seen.values())


def logs(
    key: KeyArgument,
    index: Annotated[
        int | None,
        typer.Option("--index", "-i", min=0, help="Only this task of a sweep."),
    ] = None,
    stderr: Annotated[
        bool, typer.Option("--stderr", "-e", help="Standard error instead of standard output.")
    ] = False,
    follow: Annotated[
        bool,
        typer.Option("--follow", "-f", help="Keep printing new output until the job ends."),
    ] = False,
    interval: Annotated[
        float, typer.Option(min=0.2, help="Seconds between reads with --follow.")
    ] = 2.0,
    profile: ProfileOption = None,
) -> None:
    """Print a job's output so far; for a sweep, every task's, each headed by its index.

    The output is read from the job's files on the cluster (the running task's too),
    without collecting or resubmitting anything. For tasks whose result was already
    collected, the recorded tails (last 4000 characters) are shown if the run
    directory is gone.
    """
    found = select(find(key, profile), index)
    stream = "stderr" if stderr else "stdout"
    collected = all(task.collected for task in found.tasks)
    if collected and not follow:
        shown = _from_records(found.tasks, stderr, found.is_sweep)
        err_console.print(
            f"[dim]{escape(key)}: results already collected; showing the recorded {stream} tails[/]"
        )
    else:
        shown = asyncio.run(_show(found, profile, stderr, follow, interval))
    if not shown:
        err_console.print(f"[dim]{escape(key)}: no {stream} so far[/]")


def register(app: typer.Typer) -> None:
    """Add ``clustrix logs`` to `app`."""
    app.command("logs")(logs)
