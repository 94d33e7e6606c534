"""``clustrix jobs``: the recorded submissions and sweeps, newest first."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Annotated, Any

import typer
from rich.table import Table

from .._config import ClusterConfig
from .._records import JobRecord, RecordStore, SubmissionRecord
from .._states import JobState
from ._output import console, format_age, format_counts, format_time, print_json

_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$", re.IGNORECASE)
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def open_store() -> RecordStore:
    """The record store of the current configuration (``records_path``)."""
    return RecordStore.for_config(ClusterConfig())


def parse_since(text: str | None) -> datetime | timedelta | None:
    """``2h``, ``30m``, ``3d``, ``1w``, ``45s`` (an age) or an ISO date/time (local
    time unless it names a zone); `typer.BadParameter` otherwise."""
    if text is None:
        return None
    match = _AGE.match(text)
    if match:
        return timedelta(seconds=float(match[1]) * _UNIT_SECONDS[match[2].lower()])
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise typer.BadParameter(
            f"{text!r} is neither an age (30m, 2h, 3d, 1w) nor an ISO date (2026-11-30, "
            "2026-11-30T14:00)"
        ) from None
    return moment if moment.tzinfo else moment.astimezone()


def parse_states(names: list[str] | None) -> set[str] | None:
    """Validated state names (any case); `typer.BadParameter` for an unknown one."""
    if not names:
        return None
    valid = [s.value for s in JobState]
    chosen = set()
    for name in names:
        for part in name.split(","):
            upper = part.strip().upper()
            if upper not in valid:
                raise typer.BadParameter(f"unknown state {part!r}; one of: {', '.join(valid)}")
            chosen.add(upper)
    return chosen


def summarise(submission: SubmissionRecord, tasks: list[JobRecord]) -> dict[str, Any]:
    """One row of ``clustrix jobs --json``."""
    counts: dict[str, int] = {}
    for task in tasks:
        counts[task.state.value] = counts.get(task.state.value, 0) + 1
    return {
        "key": submission.key,
        "function": submission.function,
        "backend": submission.backend,
        "sweep": submission.sweep,
        "task_count": submission.task_count,
        "counts": counts,
        "final": all(t.state.final for t in tasks),
        "submitted_at": submission.submitted_at,
        "host": submission.host,
        "port": submission.port,
        "username": submission.username,
        "k8s_context": submission.k8s_context,
        "k8s_namespace": submission.k8s_namespace,
        "profile": submission.profile,
        "run_dir": submission.run_dir,
        "submitted_by": submission.submitted_by,
    }


def jobs(
    state: Annotated[
        list[str] | None,
        typer.Option(
            "--state", "-s", help="Only submissions with a task in this state (repeatable)."
        ),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(help="Submitted since an age (30m, 2h, 3d, 1w) or an ISO date/time."),
    ] = None,
    function: Annotated[str | None, typer.Option(help="Only this function name.")] = None,
    backend: Annotated[
        str | None, typer.Option(help="Only this backend (slurm, ssh, ...).")
    ] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="At most this many submissions.")] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="A JSON list for scripts instead of the table.")
    ] = False,
) -> None:
    """List recorded submissions and sweeps, newest first, with their state counts."""
    states, when = parse_states(state), parse_since(since)
    store = open_store()
    submissions = store.submissions(since=when, function=function, backend=backend)
    tasks: dict[str, list[JobRecord]] = {s.key: [] for s in submissions}
    for task in store.jobs(since=when, function=function, backend=backend):
        tasks.setdefault(task.submission_key, []).append(task)
    rows = []
    for submission in submissions:
        mine = tasks[submission.key]
        if states is not None and not any(t.state.value in states for t in mine):
            continue
        rows.append(summarise(submission, mine))
        if limit is not None and len(rows) >= limit:
            break
    if as_json:
        print_json(rows)
        return
    if not rows:
        console.print(f"no recorded jobs match (records: {store.path})")
        return
    table = Table(title=f"clustrix jobs ({store.path})", title_justify="left")
    for name in ("key", "function", "backend", "tasks", "states", "submitted", "age"):
        table.add_column(name, no_wrap=name in ("key", "submitted", "age"))
    for row in rows:
        table.add_row(
            row["key"],
            row["function"],
            row["backend"],
            str(row["task_count"]) + (" (sweep)" if row["sweep"] else ""),
            format_counts(row["counts"], markup=True),
            format_time(row["submitted_at"]),
            format_age(row["submitted_at"]),
        )
    console.print(table)


def register(app: typer.Typer) -> None:
    """Add ``clustrix jobs`` to `app`."""
    app.command("jobs")(jobs)
