"""The synchronous edge: one event loop in a daemon thread serves plain scripts.

Calling a `@cluster` function where no event loop runs (a plain script) submits on
this loop; `job.result()` then blocks the caller, never the loop. At interpreter
exit the loop's default client is closed, so no worker process or task outlives it.
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

T = TypeVar("T")


class Portal:
    """An event loop running in its own daemon thread, started on first use."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self.on_shutdown: Callable[[asyncio.AbstractEventLoop], Coroutine[Any, Any, None]] | None
        self.on_shutdown = None

    def loop(self) -> asyncio.AbstractEventLoop:
        """The portal's loop, started if needed."""
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                ready = threading.Event()
                thread = threading.Thread(
                    target=self._serve, args=(loop, ready), name="clustrix-portal", daemon=True
                )
                thread.start()
                ready.wait()
                self._loop, self._thread = loop, thread
                atexit.register(self.shutdown)
            return self._loop

    @staticmethod
    def _serve(loop: asyncio.AbstractEventLoop, ready: threading.Event) -> None:
        asyncio.set_event_loop(loop)
        loop.call_soon(ready.set)
        loop.run_forever()

    def call(self, function: Callable[[], T]) -> T:
        """Run `function()` on the portal's thread and return its value (or raise)."""
        loop = self.loop()
        future: concurrent.futures.Future[T] = concurrent.futures.Future()

        def run() -> None:
            try:
                future.set_result(function())
            except BaseException as error:
                future.set_exception(error)

        loop.call_soon_threadsafe(run)
        return future.result()

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run `coroutine` on the portal's loop and block until it is done."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop()).result(timeout)

    def _forget_after_fork(self) -> None:
        """In a forked child (a parallel loop's worker) the portal's thread is gone."""
        self._lock = threading.Lock()
        self._loop = self._thread = None

    def shutdown(self) -> None:
        """Close what runs on the loop, then stop it (called at interpreter exit)."""
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is None or thread is None:
            return
        if self.on_shutdown is not None:
            with contextlib.suppress(Exception):  # best effort at interpreter exit
                asyncio.run_coroutine_threadsafe(self.on_shutdown(loop), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        if not thread.is_alive():
            loop.close()


PORTAL = Portal()
if hasattr(os, "register_at_fork"):  # the child starts its own loop on first use
    os.register_at_fork(after_in_child=PORTAL._forget_after_fork)
