"""Functions for the parallel="sweep" tests (a module: the tasks unpickle them by value)."""

from __future__ import annotations

import os

TASK = "CLUSTRIX_TASK_INDEX"


def collect(n: int, scale: float = 0.1) -> tuple[list[tuple[int, str]], float, dict[str, int], str]:
    """Every kind of accumulator; each iteration records the task that ran it."""
    seen: list[tuple[int, str]] = []
    total = 0.0
    by_name: dict[str, int] = {}
    text = ""
    for i in range(n):
        seen.append((i, os.environ.get(TASK, "")))
        total += i * scale
        by_name[f"k{(i * 7) % n}"] = i
        text += str(i)
    return seen, total, by_name, text


def fails_at(n: int, bad: tuple[int, ...]) -> list[int]:
    out: list[int] = []
    for i in range(n):
        if i in bad:
            raise KeyError(f"iteration {i}")
        out.append(i)
    return out


def after_loop(words: list[str]) -> str:
    """Code after the loop runs once, in the last job, on the replayed accumulators."""
    upper: list[str] = []
    for word in words:
        upper.append(word.upper())
    joined = "-".join(upper)
    return joined + f"/{len(upper)}"


def busy_prefix(n: int) -> list[int]:
    """The line before the loop calls a function: every task would repeat it."""
    start = len(str(n))
    out = []
    for i in range(n):
        out.append(i + start)
    return out


def from_a_local(n: int) -> list[int]:
    out = []
    for i in range(n):
        out.append(i)
    for j in out[:]:
        out.append(j)
    return out


def wait_for(n: int, folder: str) -> list[int]:
    """Each iteration records its pid, then waits for `folder`/go (at most 60 s)."""
    import pathlib
    import time

    out = []
    for i in range(n):
        pathlib.Path(folder, f"{i}.pid").write_text(str(os.getpid()))
        deadline = time.monotonic() + 60
        while not pathlib.Path(folder, "go").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        out.append(i)
    return out


def collect_on_slurm(n: int) -> tuple[list[tuple[int, str]], float]:
    seen: list[tuple[int, str]] = []
    total = 0.0
    for i in range(n):
        seen.append((i, os.environ.get("SLURM_JOB_ID", "")))
        total += i * 0.1
    return seen, total
