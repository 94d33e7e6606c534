"""``clustrix status KEY``: one recorded job, or a sweep task by task."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table

from .._records import JobRecord, SweepRecord
from ._output import (
    Problem,
    console,
    format_age,
    format_counts,
    format_time,
    print_json,
    styled_state,
)
from .jobs import open_store, summarise


def job_data(job: JobRecord) -> dict[str, Any]:
    """A task's record as ``status --json`` gives it."""
    data = dataclasses.asdict(job)
    data["collected"] = job.collected
    return data


def status(
    key: Annotated[str, typer.Argument(help="A job's or a sweep's key (see `clustrix jobs`).")],
    as_json: Annotated[bool, typer.Option("--json", help="JSON for scripts.")] = False,
) -> None:
    """Show one job (state, ids, times, error, output tails) or a sweep's tasks."""
    store = open_store()
    sweep = store.sweep(key)
    if sweep is not None and (sweep.submission.sweep or len(sweep.jobs) != 1):
        if as_json:
            print_json({**summarise(sweep.submission, list(sweep.jobs)),
                        "tasks": [job_data(j) for j in sweep.jobs]})  # fmt: skip
        else:
            _show_sweep(sweep)
        return
    job = sweep.jobs[0] if sweep is not None else store.get(key)
    if job is None:
        raise Problem(f"no recorded job or sweep has the key {key!r} (records: {store.path})")
    if as_json:
        print_json(job_data(job))
    else:
        _show_job(job)


def _show_sweep(sweep: SweepRecord) -> None:
    sub = sweep.submission
    where = f"{sub.username}@{sub.host}" if sub.username and sub.host else sub.host or "-"
    console.print(
        f"[bold]{sub.key}[/]  {escape(sub.function)} on {sub.backend} ({escape(where)}), "
        f"{sub.task_count} tasks: {format_counts(sweep.counts(), markup=True)}"
    )
    console.print(
        f"submitted {format_time(sub.submitted_at)} ({format_age(sub.submitted_at)} ago) by "
        f"{sub.submitted_by}; run dir {escape(sub.run_dir or '-')}"
    )
    table = Table()
    for name in ("index", "key", "state", "native id", "exit", "started", "ended", "reason"):
        table.add_column(name, no_wrap=name != "reason")
    for job in sweep.jobs:
        table.add_row(
            str(job.index),
            job.key,
            styled_state(job.state.value),
            job.native_id or "-",
            "-" if job.exit_code is None else str(job.exit_code),
            format_time(job.started_at),
            format_time(job.ended_at),
            escape(job.reason or ""),
        )
    console.print(table)


def _show_job(job: JobRecord) -> None:
    where = f"{job.username}@{job.host}" if job.username and job.host else job.host or "-"
    if job.port and job.host:
        where += f":{job.port}"
    if job.k8s_namespace:
        where = f"{job.k8s_context or 'current context'} / {job.k8s_namespace}"
    rows = [
        ("key", job.key + (f"  (task {job.index} of {job.sweep_key})" if job.sweep_key else "")),
        ("function", escape(job.function)),
        ("state", styled_state(job.state.value)),
        ("reason", escape(job.reason or "-")),
        ("exit code", "-" if job.exit_code is None else str(job.exit_code)),
        ("backend", job.backend),
        ("host", escape(where)),
        ("native id", escape(job.native_id or "-")),
        ("run dir", escape(job.run_dir or "-")),
        ("attempt", str(job.attempt)),
        ("submitted", f"{format_time(job.submitted_at)} ({format_age(job.submitted_at)} ago)"),
        ("started", format_time(job.started_at)),
        ("ended", format_time(job.ended_at)),
        ("collected", f"by {job.collected_by}" if job.collected_by else "not yet"),
    ]
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    for name, value in rows:
        table.add_row(name, value)
    console.print(table)
    for title, text, style in (
        ("error", job.error, "red"),
        ("stdout (tail)", job.stdout_tail, "white"),
        ("stderr (tail)", job.stderr_tail, "yellow"),
    ):
        if text:
            console.print(Panel(escape(text.rstrip()), title=title, border_style=style))


def register(app: typer.Typer) -> None:
    """Add ``clustrix status`` to `app`."""
    app.command("status")(status)
