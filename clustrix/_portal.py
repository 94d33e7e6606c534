"""The synchronous edge: one event loop in a daemon thread serves plain scripts.

Calling a `@cluster` function where no event loop runs (a plain script) submits on
this loop; `job.result()` then blocks the caller, never the loop. The loop runs anyio's
`BlockingPortal` (asyncio backend), started on first use. At interpreter exit the
loop's default client is closed, so no worker process or task outlives it. A forked
child (a parallel loop's worker) has no portal thread: it starts its own on first use.

Not `anyio.from_thread.start_blocking_portal`: its context manager, once dropped in a
forked child, is finalized there and waits forever for the parent's loop thread, and
its exit joins that thread with no time limit (a stuck task would hang the exit). The
thread here is ours; the portal in it is anyio's.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import os
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import anyio
from anyio.from_thread import BlockingPortal

T = TypeVar("T")
_Started = tuple[BlockingPortal, asyncio.AbstractEventLoop]
_EXIT_SECONDS = 30  # closing the clients at exit
_STOP_SECONDS = 10  # then stopping the loop


class Portal:
    """anyio's blocking portal in a daemon thread, started on first use."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._started: _Started | None = None
        self._thread: threading.Thread | None = None
        self.on_shutdown: Callable[[asyncio.AbstractEventLoop], Coroutine[Any, Any, None]] | None
        self.on_shutdown = None

    def _start(self) -> _Started:
        with self._lock:
            if self._started is None:
                ready: concurrent.futures.Future[_Started] = concurrent.futures.Future()
                thread = threading.Thread(
                    target=_serve, args=(ready,), name="clustrix-portal", daemon=True
                )
                thread.start()
                self._started, self._thread = ready.result(), thread
                atexit.register(self.shutdown)
            return self._started

    def loop(self) -> asyncio.AbstractEventLoop:
        """The portal's asyncio loop, started if needed."""
        return self._start()[1]

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run `coroutine` on the portal's loop and block until it is done."""
        portal = self._start()[0]
        future: concurrent.futures.Future[T] = portal.start_task_soon(_await, coroutine)
        return future.result(timeout)

    def _forget_after_fork(self) -> None:
        """In a forked child (a parallel loop's worker) the portal's thread is gone."""
        self._lock = threading.Lock()
        self._started = self._thread = None

    def shutdown(self) -> None:
        """Close what runs on the loop, then stop it (called at interpreter exit)."""
        with self._lock:
            started, thread = self._started, self._thread
            self._started = self._thread = None
        if started is None or thread is None:
            return
        portal, loop = started
        if self.on_shutdown is not None:
            with contextlib.suppress(Exception):  # best effort at interpreter exit
                portal.start_task_soon(self.on_shutdown, loop).result(_EXIT_SECONDS)
        with contextlib.suppress(RuntimeError):  # already stopped
            portal.call(portal.stop, True)  # cancel what still runs in the portal
        thread.join(_STOP_SECONDS)


def _serve(ready: concurrent.futures.Future[_Started]) -> None:
    async def main() -> None:
        async with BlockingPortal() as portal:
            ready.set_result((portal, asyncio.get_running_loop()))
            await portal.sleep_until_stopped()

    try:
        anyio.run(main, backend="asyncio")
    except BaseException as error:
        if not ready.done():
            ready.set_exception(error)
        raise


async def _await(coroutine: Coroutine[Any, Any, T]) -> T:
    return await coroutine


PORTAL = Portal()
if hasattr(os, "register_at_fork"):  # the child starts its own portal on first use
    os.register_at_fork(after_in_child=PORTAL._forget_after_fork)
