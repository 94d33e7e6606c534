"""Micro-batching: single calls that arrive close together become ONE array submission.

Many request handlers awaiting the same function, an ``asyncio.gather`` over single
calls, calls from worker threads: each is its own `Job` (its own key, state, cancel and
error), but calls of the same function with the same backend and resources that come
close together are submitted as one array, one element per call.

When: a call for a group with no submission in flight is submitted on the next turn of
the event loop (no wait: every call made in the same burst joins it). Calls that come
while a submission of their group is in flight collect into one batch, which goes as
soon as that submission is accepted, or earlier once no call joined it for
`batch_window` seconds (or it holds `batch_max` calls, or `max_payload_size` bytes).
So a call alone is never delayed; a call that comes while its group is busy waits at
most until the submission ahead of it is accepted, and no more than `batch_window`
after the last call of its batch came.

One batch holds calls of ONE function: a run ships its function once and the runner
runs it for every element (the group key includes the function's pickle, so calls of
closures over different values are not merged either). Only backends whose array
elements can be addressed one by one batch (`Backend.batchable`): a cancelled call
must not take its batch mates with it.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import secrets
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from ._job import JobControl
from ._payload import Payload
from ._units import parse_memory
from .backends.base import Backend, Submission

log = logging.getLogger("clustrix")
Spawn = Callable[[Coroutine[Any, Any, None], str], None]
Submit = Callable[[Backend, Submission], Coroutine[Any, Any, None]]


@dataclass(eq=False)
class _Batch:
    """Calls waiting to be submitted together."""

    first: Submission
    calls: list[Submission] = field(default_factory=list)
    size: int = 0
    go: asyncio.Event = field(default_factory=asyncio.Event)
    timer: asyncio.TimerHandle | None = None


@dataclass(eq=False)
class _Group:
    """One backend, function, resources: its open batch and submissions in flight."""

    open: _Batch | None = None
    in_flight: int = 0


class Batcher:
    """Collects single calls into batches and submits them (owned by a `Client`).

    `spawn` runs a coroutine as a task of the client (cancelled when it closes);
    `submit` submits one `Submission` and settles its jobs if it fails.
    """

    def __init__(self, spawn: Spawn, submit: Submit) -> None:
        self._spawn = spawn
        self._submit = submit
        self._groups: dict[tuple[Any, ...], _Group] = {}
        self.submissions = 0  # batched submissions sent (for tests and benchmarks)

    def add(self, backend: Backend, call: Submission) -> None:
        """Submit the single call `call` now, or batch it with others of its group."""
        config = call.config
        if config.batch_window <= 0 or not backend.may_batch:
            self._spawn(self._submit(backend, call), f"submit-{call.key}")
            return
        key = (id(backend), call.name, call.payload.function, repr(call.resources))
        group = self._groups.setdefault(key, _Group())
        size = sum(len(a) for a in call.payload.arguments)
        batch = group.open
        limit = parse_memory(config.max_payload_size)
        if batch is not None and batch.size + size + len(call.payload.function) > limit:
            self._seal(group, batch)
            batch = None
        if batch is None:
            batch = group.open = _Batch(call)
            self._spawn(self._flush(backend, key, group, batch), f"batch-{call.key}")
            if group.in_flight == 0:
                batch.go.set()  # idle: go on the next turn of the loop, with the burst
        if not batch.go.is_set():  # busy: wait while calls keep coming, `window` apart
            if batch.timer is not None:
                batch.timer.cancel()
            loop = asyncio.get_running_loop()
            batch.timer = loop.call_later(config.batch_window, batch.go.set)
        batch.calls.append(call)
        batch.size += size
        if len(batch.calls) >= config.batch_max:
            self._seal(group, batch)

    def _seal(self, group: _Group, batch: _Batch) -> None:
        """No more calls join `batch`; it goes now."""
        if group.open is batch:
            group.open = None
        batch.go.set()

    async def _flush(
        self, backend: Backend, key: tuple[Any, ...], group: _Group, batch: _Batch
    ) -> None:
        try:
            await batch.go.wait()
        except asyncio.CancelledError:  # the client closed first
            for call in batch.calls:
                for job in call.jobs:
                    job.cancelled_before_start()
            raise
        finally:
            self._seal(group, batch)
            if batch.timer is not None:
                batch.timer.cancel()
        calls = [c for c in batch.calls if not c.jobs[0].cancel_requested]
        for call in batch.calls:
            if call.jobs[0].cancel_requested:  # cancelled while it waited here
                call.jobs[0].cancelled_before_start()
        group.in_flight += 1
        log.debug("%s: %d call(s) go as one submission", batch.first.name, len(calls))
        try:
            try:
                together = len(calls) < 2 or await backend.batchable()
            except Exception as error:  # it cannot tell: the cluster is unreachable
                for call in calls:
                    call.jobs[0].reject(own_error(error))
                return
            if not together:
                await asyncio.gather(*(self._submit(backend, c) for c in calls))
            elif calls:
                self.submissions += len(calls) > 1
                await self._submit(backend, merge(calls))
        finally:
            group.in_flight -= 1
            if group.in_flight == 0:
                if group.open is not None:
                    group.open.go.set()  # waited for this submission: go now
                else:
                    self._groups.pop(key, None)


def merge(calls: list[Submission]) -> Submission:
    """One submission for `calls` (single calls of one function and resources): an
    array of one element per call. A call alone stays itself."""
    if len(calls) == 1:
        return calls[0]
    first = calls[0]
    payload = Payload(first.payload.function, [c.payload.arguments[0] for c in calls])
    jobs: list[JobControl[Any]] = [c.jobs[0] for c in calls]
    key = "cx" + secrets.token_hex(6)
    return Submission(key, first.name, payload, first.resources, first.config, jobs, 1)


def own_error(error: BaseException) -> BaseException:
    """A copy of `error` for one job of a batch (each caller raises its own exception
    object; a shared one would collect every caller's traceback)."""
    try:
        duplicate = copy.copy(error)
    except Exception:
        return error
    duplicate.__cause__, duplicate.__context__ = error.__cause__, error.__context__
    return duplicate.with_traceback(error.__traceback__)
