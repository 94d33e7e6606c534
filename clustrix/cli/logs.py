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
from ._attach import (
    Found,
    KeyArgument,
    ProfileOption,
    attached,
    cluster_config,
    find,
    jobs_of,
    select,
)
from ._output import console, err_console
from ._runfiles import FILE_BACKENDS, RunFiles, run_dir_of


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


def _tail(task: JobRecord, stderr: bool) -> str:
    return (task.stderr_tail if stderr else task.stdout_tail) or ""


async def _snapshot(found: Found, profile: str | None, stderr: bool) -> tuple[dict[str, str], str]:
    """Every task's stream so far (by key) and a note on where it came from. Read from
    the run directory's files: nothing is collected, nothing removed."""
    tasks = found.tasks
    if found.first.backend not in FILE_BACKENDS:  # Kubernetes: the pods' logs
        texts = {t.key: _tail(t, stderr) for t in tasks if t.collected}
        if len(texts) == len(tasks):
            return texts, "results already collected: showing the recorded tails"
        async with attached(found, profile) as handle:
            jobs = [job for job in jobs_of(handle) if job.key not in texts]
            read = await asyncio.gather(*(_read(job, stderr) for job in jobs))
        texts.update({job.key: text for job, text in zip(jobs, read, strict=True)})
        return texts, ""
    config = cluster_config(found, profile)
    files = RunFiles(config)
    try:
        run_dir = run_dir_of(found.first.submission_key, found.first.run_dir, config)
        got = await files.outputs(run_dir, [t.index or 0 for t in tasks], stderr)
    finally:
        await files.aclose()
    if got is None:
        note = f"the run directory {run_dir} is gone: showing the recorded tails"
        return {t.key: _tail(t, stderr) for t in tasks}, note
    return {t.key: got[t.index or 0] for t in tasks}, ""


async def _follow(found: Found, profile: str | None, stderr: bool, interval: float,
                  printer: Printer) -> None:  # fmt: skip
    """Print what is new until every task ended. The job is attached like
    `Client.attach` (so its end is known); its run directory is kept."""
    async with attached(found, profile, cleanup_remote_files=False) as handle:
        jobs = jobs_of(handle)
        while True:
            ended = [job.done() for job in jobs]  # judged before reading: no output is lost
            texts = await asyncio.gather(*(_read(job, stderr) for job in jobs))
            for job, text in zip(jobs, texts, strict=True):
                printer.show(job.key, job.index, text)
            if all(ended):
                break
            await asyncio.sleep(interval)


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

    The output is read from the job's files on the cluster (a running task's too);
    nothing is collected or removed. Tasks whose result was already collected show the
    recorded tails (last 4000 characters). With --follow the job is attached (like
    Client.attach) until it ends, and its run directory is kept.
    """
    found = select(find(key, profile), index)
    stream = "stderr" if stderr else "stdout"
    printer = Printer(headed=found.is_sweep)
    if follow and not all(task.state.final and task.collected for task in found.tasks):
        asyncio.run(_follow(found, profile, stderr, interval, printer))
    else:
        texts, note = asyncio.run(_snapshot(found, profile, stderr))
        for task in found.tasks:
            printer.show(task.key, task.index, texts.get(task.key, ""))
        if note:
            err_console.print(f"[dim]{escape(key)}: {escape(note)}[/]")
    printer.finish()
    if not any(printer.seen.values()):
        err_console.print(f"[dim]{escape(key)}: no {stream} so far[/]")


def register(app: typer.Typer) -> None:
    """Add ``clustrix logs`` to `app`."""
    app.command("logs")(logs)
