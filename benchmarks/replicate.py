"""environment="replicate": a cold build against a warm reuse, on the lab's sshd.

The function imports `rich`, which the lab's Python lacks: the first call builds the
venv (pip from the index), each later client (one per round) finds it built. The
figure is the cold call's time over the warm call's.
"""

from __future__ import annotations

import builtins
import shutil
import statistics
import time
import types
from collections.abc import Callable
from pathlib import Path

from clustrix import Client

from ._lab import LAB, lab_config
from ._report import Figure, spread

WORK = "~/.clustrix-bench-env"


def _use_rich(x: int) -> str:
    from rich.text import Text

    return Text(str(x)).plain


# The function as if defined in a user's script: globals of `__main__`. Pickled by value
# from this package, it would carry ``__name__``/``__package__`` = benchmarks(.replicate),
# which replicate attributes to the editable clustrix project (then built and shipped).
use_rich: Callable[[int], str] = types.FunctionType(
    _use_rich.__code__, {"__name__": "__main__", "__builtins__": builtins}, "use_rich"
)


async def one_call() -> float:
    """Seconds for one call on a fresh client (login included)."""
    config = lab_config("ssh", WORK, environment="replicate")
    started = time.perf_counter()
    async with Client(config) as client:
        if await client.submit(use_rich, 7) != "7":
            raise RuntimeError("the replicated environment returned a wrong result")
    return time.perf_counter() - started


async def run(rounds: int, quick: bool) -> list[Figure]:
    """One figure: the cold build against the median warm call (one per round)."""
    figure = Figure("replicate: cold build (first call)", "s", floor_name="warm call")
    remote = Path(LAB["home"]) / WORK.removeprefix("~/")
    shutil.rmtree(remote, ignore_errors=True)
    try:
        cold = await one_call()
        warms = [await one_call() for _ in range(rounds)]
        figure.samples.append(cold)
        figure.floor.append(statistics.median(warms))
        figure.notes.append(f"warm calls: {spread(warms, 's')} (one fresh client each)")
        print(f"  replicate: cold {cold:.1f} s, warm {spread(warms, 's')}", flush=True)
    except Exception as error:
        figure.error = f"{type(error).__name__}: {error}"
    finally:
        shutil.rmtree(remote, ignore_errors=True)
    return [figure]
