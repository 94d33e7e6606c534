"""Shared output helpers: consoles, errors, times and JSON for the commands."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import Any, NoReturn

from rich.console import Console
from rich.markup import escape

from .._states import JobState

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)

#: JobState names in their life order, for counts like "3 COMPLETED, 1 FAILED".
STATE_ORDER = [s.value for s in JobState]
STATE_STYLE = {
    "COMPLETED": "green",
    "RUNNING": "cyan",
    "QUEUED": "blue",
    "PENDING": "blue",
    "CANCELLED": "yellow",
}


class Problem(Exception):
    """A problem the user can fix: printed as one red line, exit status 1."""


def fail(message: str, status: int = 1) -> NoReturn:
    """Print `message` as one red line on stderr and exit with `status`."""
    err_console.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)
    sys.exit(status)


def styled_state(state: str) -> str:
    """`state` with rich markup in its colour (red for failures)."""
    return f"[{STATE_STYLE.get(state, 'red')}]{state}[/]"


def format_counts(counts: dict[str, int], markup: bool = False) -> str:
    """``{"FAILED": 1, "COMPLETED": 3}`` -> ``"3 COMPLETED, 1 FAILED"`` (life order)."""
    names = sorted(counts, key=lambda s: STATE_ORDER.index(s) if s in STATE_ORDER else 99)
    return ", ".join(f"{counts[s]} {styled_state(s) if markup else s}" for s in names)


def format_time(moment: datetime | None) -> str:
    """A local time for tables (``2026-11-30 14:02:11``), or ``-``."""
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S") if moment else "-"


def format_age(moment: datetime | None, now: datetime | None = None) -> str:
    """How long ago: ``45s``, ``12m``, ``3h05m``, ``2d04h``."""
    if moment is None:
        return "-"
    seconds = max(0, int(((now or datetime.now(UTC)) - moment).total_seconds()))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m"
    if seconds < 86400:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 86400}d{seconds % 86400 // 3600:02d}h"


def jsonable(value: Any) -> Any:
    """`value` made JSON-friendly: datetimes as ISO 8601, enums by value."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, JobState):
        return value.value
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


def print_json(data: Any) -> None:
    """Write `data` as indented JSON on stdout (no markup, no wrapping)."""
    sys.stdout.write(json.dumps(jsonable(data), indent=2, default=str) + "\n")
