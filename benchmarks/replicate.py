"""environment="replicate": a cold build against a warm reuse, on the lab's sshd.

    python benchmarks/replicate.py

Needs the test lab (tests/lab/up.sh; run as root). The function imports `rich`, which
the lab's Python lacks: the first call builds the venv (pip from the index), a second
client finds it built. Printed: seconds of each and their ratio.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from pathlib import Path

from _lab import LAB, lab_config

from clustrix import Client

WORK = "~/.clustrix-bench-env"


def use_rich(x: int) -> str:
    from rich.text import Text

    return Text(str(x)).plain


async def one_call() -> float:
    config = lab_config("ssh", WORK, environment="replicate")
    started = time.perf_counter()
    async with Client(config) as client:
        assert await client.submit(use_rich, 7) == "7"
    return time.perf_counter() - started


def main() -> None:
    shutil.rmtree(Path(LAB["home"]) / WORK.removeprefix("~/"), ignore_errors=True)
    cold = asyncio.run(one_call())
    warm = asyncio.run(one_call())
    print(
        f"cold (build the venv, then run): {cold:.1f} s; warm (reuse it): {warm:.2f} s; "
        f"cold/warm {cold / warm:.0f}x"
    )
    shutil.rmtree(Path(LAB["home"]) / WORK.removeprefix("~/"), ignore_errors=True)


if __name__ == "__main__":
    main()
