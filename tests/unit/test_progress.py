"""The sweep progress bar (rich), and when it is shown."""

from __future__ import annotations

import io

from rich.console import Console

from clustrix import cluster
from clustrix._progress import SweepProgress
from clustrix._sweep import want_progress


@cluster
def ident(x: int) -> int:
    if x == 3:
        raise ValueError("three")
    return x


async def test_bar_counts_done_and_failed_tasks() -> None:
    sweep = ident.map(range(8), return_exceptions=True, progress=False)
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=100)
    SweepProgress("ident", sweep.jobs, console=console)
    await sweep
    text = screen.getvalue()
    assert "8/8" in text
    assert "1 failed" in text


def test_progress_defaults_to_terminal_only(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr("sys.stderr", io.StringIO())
    assert want_progress(None) is False
    assert want_progress(True) is True
    assert want_progress(False) is False
