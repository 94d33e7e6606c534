"""Which Client serves a call (DESIGN.md section 9), on the local backend: no lab needed.

explicit client > innermost ``async with Client`` > Clients open on the running loop,
most recently opened first > the configured default; calls from worker threads follow
the same rule; nothing runs locally by default while a remote Client is open elsewhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncIterator, Iterator

import anyio.to_thread
import pytest

from clustrix import Client, ClusterConfig, UsageError, cluster, configure, reset_config
from clustrix._selection import select_client

LOCAL = ClusterConfig(cluster_type="local")
REMOTE = ClusterConfig(cluster_type="ssh", cluster_host="192.0.2.7", username="nobody")


@cluster
def square(x: int) -> int:
    return x * x


@cluster(config=ClusterConfig(cluster_type="local", job_poll_interval=7))
def bound_square(x: int) -> int:
    return x * x


@contextlib.asynccontextmanager
async def held_open(client: Client) -> AsyncIterator[Client]:
    """Open `client` in a task of its own, as a FastAPI lifespan does: the caller's
    context never sees it, only the event loop does."""
    opened, stop = asyncio.Event(), asyncio.Event()

    async def lifespan() -> None:
        async with client:
            opened.set()
            await stop.wait()

    task = asyncio.create_task(lifespan())
    await opened.wait()
    try:
        yield client
    finally:
        stop.set()
        await task


@contextlib.contextmanager
def open_on_another_loop(config: ClusterConfig) -> Iterator[Client]:
    """A Client open on an event loop running in another thread."""
    client = Client(config)
    opened = threading.Event()
    held: dict[str, object] = {}

    async def main() -> None:
        stop = asyncio.Event()
        held["loop"], held["stop"] = asyncio.get_running_loop(), stop
        async with client:
            opened.set()
            await stop.wait()

    thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
    thread.start()
    assert opened.wait(10)
    try:
        yield client
    finally:
        loop, stop = held["loop"], held["stop"]
        assert isinstance(loop, asyncio.AbstractEventLoop) and isinstance(stop, asyncio.Event)
        loop.call_soon_threadsafe(stop.set)
        thread.join(30)


async def test_the_most_recently_opened_client_on_the_loop_serves_and_closed_ones_are_skipped() -> (
    None
):
    async with held_open(Client(LOCAL)) as first:
        async with held_open(Client(LOCAL)) as second:
            job = square(3)
            assert job._client is second
            assert await job == 9
        job = square(4)  # `second` is closed now
        assert job._client is first
        assert await job == 16
    job = square(5)
    assert job._client not in (first, second)  # the configured default
    assert job._client._implicit
    assert await job == 25


async def test_innermost_async_with_wins_over_later_opened_clients() -> None:
    async with Client(LOCAL) as outer, held_open(Client(LOCAL)) as later:
        assert square(1)._client is outer  # the context beats the loop's registry
        async with Client(LOCAL) as inner:
            job = square(2)
            assert job._client is inner
            assert await job == 4
        assert square(3)._client is outer
        job = await asyncio.create_task(_call_in_new_context())
        assert job._client is outer  # a task copies its creator's context
        job = later.submit(pow, 2, 3)  # an explicit client beats everything
        assert job._client is later
        assert await job == 8


async def _call_in_new_context() -> object:
    return square(1)


async def test_a_bound_function_uses_an_open_client_with_an_equal_configuration() -> None:
    async with Client(LOCAL) as plain:
        equal_config = ClusterConfig(cluster_type="local", job_poll_interval=7)
        async with held_open(Client(equal_config)) as equal:
            job = bound_square(2)
            assert job._client is equal  # equal configuration beats the innermost context
            assert await job == 4
            assert square(2)._client is plain
        own = bound_square(3)
        assert own._client not in (plain, equal)
        assert own._client.config.job_poll_interval == 7
        assert bound_square(4)._client is own._client  # its own client is reused
        assert await own == 9
        assert plain.submit(bound_square, 5)._client is plain  # explicit client first


async def test_worker_threads_follow_the_rule() -> None:
    async with held_open(Client(LOCAL)) as service:
        # asyncio's own executor: the only loop with open clients is this one
        assert await asyncio.to_thread(lambda: square(6).result(timeout=60)) == 36
        with open_on_another_loop(LOCAL) as elsewhere:
            # two loops with open clients now: anyio's worker thread knows its loop
            job = await anyio.to_thread.run_sync(lambda: square(7))
            assert job._client is service
            assert await anyio.to_thread.run_sync(lambda: job.result(timeout=60)) == 49
            assert elsewhere._state == "open"
            # an explicit client called from a worker thread submits on its own loop
            job = await asyncio.to_thread(service.submit, pow, 2, 5)
            assert job._client is service and await job == 32
    with open_on_another_loop(LOCAL):
        async with Client(LOCAL) as current:
            # the caller's context travels into asyncio.to_thread's thread
            job = await asyncio.to_thread(lambda: square(8))
            assert job._client is current
            assert await job == 64


async def test_never_silently_local_while_a_remote_client_is_open_elsewhere() -> None:
    with open_on_another_loop(REMOTE):
        with pytest.raises(UsageError, match=r"square would run on this machine.*192\.0\.2\.7"):
            square(2)
        # a thread that cannot tell which of two loops it serves: the same answer
        with open_on_another_loop(LOCAL), pytest.raises(UsageError, match=r"192\.0\.2\.7"):
            await asyncio.to_thread(square, 2)
        configure(cluster_type="local")  # asking for local explicitly is not silent
        assert await square(2) == 4


async def test_the_configured_default_names_the_cluster(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLUSTRIX_CLUSTER_TYPE", "slurm")
    monkeypatch.setenv("CLUSTRIX_CLUSTER_HOST", "login.example.org")
    reset_config()
    client, how = select_client(None, "f")
    assert client.config.cluster_type == "slurm"
    assert client.config.cluster_host == "login.example.org"
    assert "configured default" in how
    configure(cluster_type="sge")
    client, _ = select_client(None, "f")
    assert client.config.cluster_type == "sge"


@cluster
def logged_once(x: int) -> int:
    return x


async def test_where_a_function_goes_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="clustrix")
    async with Client(LOCAL):
        assert await logged_once(1) == 1
        assert await logged_once(2) == 2
    lines = [r.getMessage() for r in caplog.records if r.name == "clustrix"]
    said = [line for line in lines if line.startswith("logged_once goes to")]
    assert said == [
        "logged_once goes to the local backend (this machine) "
        "(client: the innermost `async with Client`)"
    ]


def test_an_unopened_client_needs_an_event_loop() -> None:
    with pytest.raises(UsageError, match="open this Client on an event loop"):
        Client(LOCAL).submit(pow, 2, 2)


async def test_a_client_is_not_used_from_another_running_loop() -> None:
    with open_on_another_loop(LOCAL) as elsewhere:
        with pytest.raises(UsageError, match="belongs to the event loop it was opened on"):
            elsewhere.submit(pow, 2, 2)
        # a thread without a loop may use it: the call is made on the client's loop
        job = await asyncio.to_thread(elsewhere.submit, pow, 2, 4)
        assert await job == 16
