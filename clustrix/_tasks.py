"""A set of background tasks owned by one object that cancels and awaits them on close."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")
log = logging.getLogger("clustrix")


class TaskSet:
    """Owns background tasks: `spawn` starts one, `aclose` cancels and awaits them all.

    A task that fails is logged (it must report its failure to the jobs it serves
    itself); nothing spawned here outlives `aclose`.
    """

    def __init__(self, name: str) -> None:
        self._name = name
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False

    def spawn(self, coro: Coroutine[Any, Any, T], *, name: str | None = None) -> asyncio.Task[T]:
        if self._closed:
            coro.close()
            raise RuntimeError(f"{self._name} is closed")
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._finished)
        return task

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error(
                "background task %s of %s failed",
                task.get_name(),
                self._name,
                exc_info=task.exception(),
            )

    @property
    def closed(self) -> bool:
        return self._closed

    def __len__(self) -> int:
        return len(self._tasks)

    async def aclose(self) -> None:
        """Cancel every task and wait until each has finished its cleanup."""
        self._closed = True
        while self._tasks:
            pending = list(self._tasks)
            for task in pending:
                if not task.cancelling():  # cancelled once is enough: let it clean up
                    task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
