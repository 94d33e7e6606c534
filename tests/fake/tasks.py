"""Functions the fake-scheduler tests run as tasks (pickled by value by clustrix)."""

from __future__ import annotations

import os
import sys
import time


class Boom(Exception):
    pass


def square(x: int) -> int:
    return x * x


def explode(x: int) -> None:
    raise Boom(f"task {x} exploded")


def nap(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def exit_hard(code: int) -> None:
    sys.stderr.write(f"leaving with {code}\n")
    sys.stderr.flush()
    os._exit(code)


def kill_self(number: int) -> None:
    os.kill(os.getpid(), number)
    time.sleep(5)


def environ(*names: str) -> dict[str, str | None]:
    return {name: os.environ.get(name) for name in names}


def where() -> tuple[str, int, int, int]:
    """The task's working directory and the modes of it, runs/ and the work dir."""
    cwd = os.getcwd()
    runs = os.path.dirname(cwd)
    return (
        cwd,
        os.stat(cwd).st_mode & 0o777,
        os.stat(runs).st_mode & 0o777,
        os.stat(os.path.dirname(runs)).st_mode & 0o777,
    )


def chatty(x: int) -> int:
    print(f"stdout of {x}")
    print(f"stderr of {x}", file=sys.stderr)
    return x


def big(size: int) -> bytes:
    return b"x" * size


def report(x: int, *names: str) -> dict[str, object]:
    """Print to both streams, then tell where and with which variables the task ran."""
    print(f"stdout of {x}")
    print(f"stderr of {x}", file=sys.stderr)
    time.sleep(0.2)
    cwd, run_mode, runs_mode, root_mode = where()
    return {"x": x, "cwd": cwd, "modes": (run_mode, runs_mode, root_mode), "env": environ(*names)}
