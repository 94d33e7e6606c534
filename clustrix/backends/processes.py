"""The local backend's worker processes: CPU slots, and ending a process group."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import AsyncIterator


def available_cpus() -> int:
    """CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


class CpuSlots:
    """Counts this machine's CPUs; a worker holds `cores` of them while it lives."""

    def __init__(self, total: int) -> None:
        self.total = total
        self._free = total
        self._changed = asyncio.Condition()

    @contextlib.asynccontextmanager
    async def hold(self, cores: int) -> AsyncIterator[None]:
        async with self._changed:
            await self._changed.wait_for(lambda: self._free >= cores)
            self._free -= cores
        try:
            yield
        finally:
            self._free += cores
            async with self._changed:
                self._changed.notify_all()


def kill(process: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


async def stop(process: asyncio.subprocess.Process) -> None:
    """End a worker: close its stdin (it exits), or kill its group if cancelled."""
    try:
        if process.stdin is not None and not process.stdin.is_closing():
            process.stdin.close()
        if process.returncode is None:
            await asyncio.wait_for(process.wait(), 5)
    except BaseException:
        kill(process)
        await reap(process)
        raise
    finally:
        if process.returncode is None:
            kill(process)


async def reap(process: asyncio.subprocess.Process) -> None:
    """Wait for a killed process even if cancelled again meanwhile (cleanup must end)."""
    waiter = asyncio.ensure_future(process.wait())
    cancelled = False
    while not waiter.done():
        try:
            await asyncio.shield(waiter)
        except asyncio.CancelledError:
            cancelled = True
    if cancelled:
        raise asyncio.CancelledError


def open_append(path: str) -> int:
    """A file descriptor appending to `path` (created private)."""
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
