"""``clustrix cancel KEY``: cancel a job, or every unfinished task of a sweep."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer
from rich.markup import escape

from ._attach import Found, KeyArgument, ProfileOption, attached, find, jobs_of
from ._output import console, format_counts


async def _cancel(found: Found, profile: str | None, timeout: float) -> dict[str, int]:
    async with attached(found, profile) as handle:
        jobs = jobs_of(handle)
        await asyncio.wait_for(handle.cancel(), timeout)  # the scheduler confirmed
        # then the tasks settle (CANCELLED, or how they ended if they beat the cancel)
        settled = asyncio.gather(*(job._wait() for job in jobs), return_exceptions=True)
        await asyncio.wait_for(settled, timeout)
        counts: dict[str, int] = {}
        for job in jobs:
            counts[job.state.value] = counts.get(job.state.value, 0) + 1
    return counts


def cancel(
    key: KeyArgument,
    timeout: Annotated[
        float, typer.Option(min=1, help="Seconds to wait for the scheduler to confirm.")
    ] = 120.0,
    profile: ProfileOption = None,
) -> None:
    """Cancel a job, or every unfinished task of a sweep.

    Waits until the scheduler (scancel, qdel, ...) confirmed. Tasks that already
    ended keep their state.
    """
    found = find(key, profile)
    if all(task.state.final for task in found.tasks):
        counts: dict[str, int] = {}
        for task in found.tasks:
            counts[task.state.value] = counts.get(task.state.value, 0) + 1
        console.print(
            f"{escape(key)} had already ended ({format_counts(counts, markup=True)}): "
            "nothing to cancel"
        )
        return
    try:
        counts = asyncio.run(_cancel(found, profile, timeout))
    except TimeoutError:
        raise typer.Exit(_unconfirmed(key, timeout)) from None
    what = "cancelled" if "CANCELLED" in counts else "nothing to cancel, already ended"
    console.print(f"{what} {escape(key)}: {format_counts(counts, markup=True)}")


def _unconfirmed(key: str, timeout: float) -> int:
    console.print(
        f"[red]the cancellation of {escape(key)} was not confirmed within {timeout:g} s[/]; "
        f"check with `clustrix status {escape(key)}`"
    )
    return 1


def register(app: typer.Typer) -> None:
    """Add ``clustrix cancel`` to `app`."""
    app.command("cancel")(cancel)
