"""Which `Client` serves a call: the registry of open clients and the rule that reads it.

The rule, highest first:

1. an explicit client: ``client.submit(f, ...)``, ``client.map(f, ...)`` and the view
   ``client.options(...)`` returns;
2. the innermost ``async with Client(...)`` in the current context;
3. the Clients open on the running event loop, the most recently opened first (so a
   Client opened in a FastAPI lifespan serves every request task);
4. the configured default: one client per event loop made from the global
   configuration (file, ``CLUSTRIX_*`` environment, ``configure()``), closed with the loop.

A function bound with ``@cluster(config=...)`` or ``profile=`` takes the first client
of 2 and 3 whose configuration equals its own, else a client of its own (one per event
loop and configuration). A call from a thread without a running loop — the worker
threads in which FastAPI runs plain ``def`` handlers, ``asyncio.to_thread`` — is made
on the loop that thread serves, by the same rule; a plain script's calls go to the
portal loop (`clustrix._portal`). A call never runs locally by default while a Client
for a remote cluster is open elsewhere in the process: that is a `UsageError`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import logging
import threading
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from ._config import ClusterConfig, get_config
from ._exceptions import UsageError
from ._portal import PORTAL

if TYPE_CHECKING:
    from ._client import Client

T = TypeVar("T")
log = logging.getLogger("clustrix")

CURRENT: contextvars.ContextVar[Client | None] = contextvars.ContextVar(
    "clustrix_client", default=None
)
_lock = threading.Lock()
# Clients opened by the user (not the implicit ones below), per loop, in opening order.
_open: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, list[weakref.ref[Client]]] = (
    weakref.WeakKeyDictionary()
)
# The implicit clients of each loop: "" = the configured default, else a bound config.
_implicit: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, Client]] = (
    weakref.WeakKeyDictionary()
)
_logged: set[tuple[str, str]] = set()


def register(client: Client, loop: asyncio.AbstractEventLoop) -> None:
    """Record that `client` was opened on `loop`."""
    with _lock:
        _open.setdefault(loop, []).append(weakref.ref(client))


def unregister(client: Client) -> None:
    """Forget `client` (it is closing)."""
    with _lock:
        for loop, refs in list(_open.items()):
            refs[:] = [r for r in refs if r() not in (None, client)]
            if not refs or loop.is_closed():
                del _open[loop]


def open_clients(loop: asyncio.AbstractEventLoop) -> list[Client]:
    """The user's Clients open on `loop`, the most recently opened first."""
    with _lock:
        refs = list(_open.get(loop, ()))
    clients = [r() for r in reversed(refs)]
    return [c for c in clients if c is not None and c._state == "open"]


def _loops_with_open_clients() -> list[asyncio.AbstractEventLoop]:
    with _lock:
        loops = list(_open)
    return [loop for loop in loops if loop.is_running() and open_clients(loop)]


def select_client(bound: ClusterConfig | None, name: str | None = None) -> tuple[Client, str]:
    """The client serving a call made on the running loop, and how it was chosen.

    `bound` is the function's own configuration (``@cluster(config=/profile=)``);
    `name` (the function's) turns on the check against running locally by default
    while a remote Client is open elsewhere.
    """
    loop = asyncio.get_running_loop()
    found: list[tuple[Client, str]] = []
    current = CURRENT.get()
    if current is not None and current._loop is loop and current._state == "open":
        found.append((current, "the innermost `async with Client`"))
    found += [
        (c, "the most recently opened Client on this event loop")
        for c in open_clients(loop)
        if c is not current
    ]
    if bound is None:
        if found:
            return found[0]
        if name is not None:
            _refuse_silent_local(loop, name)
        return _implicit_client(loop, None), "the configured default (no Client is open)"
    key = bound.cache_key()
    for client, how in found:
        if client.config.cache_key() == key:
            return client, f"{how}, whose configuration equals the function's"
    return _implicit_client(loop, bound), "a client of the function's own configuration"


def client_for_this_loop() -> Client:
    """The client an unbound call made now on the running loop would use."""
    return select_client(None)[0]


def _refuse_silent_local(loop: asyncio.AbstractEventLoop, name: str) -> None:
    config = get_config()
    if config.cluster_type != "local" or "cluster_type" in config.model_fields_set:
        return  # the default is remote, or the configuration asks for local explicitly
    remote = [
        client
        for other in _loops_with_open_clients()
        if other is not loop
        for client in open_clients(other)
        if client.config.cluster_type != "local"
    ]
    if remote:
        raise UsageError(
            f"{name} would run on this machine (no Client is open on this event loop and the "
            f"configuration names no cluster), but a Client for {describe(remote[0].config)} "
            "is open on another event loop. Pass that client explicitly "
            "(client.submit / client.map), open a Client in the code that makes this call, "
            "or configure(cluster_type='local') to run here on purpose."
        )


def _implicit_client(loop: asyncio.AbstractEventLoop, config: ClusterConfig | None) -> Client:
    from ._client import Client

    key = "" if config is None else config.cache_key()
    clients = _implicit.setdefault(loop, {})
    client = clients.get(key)
    if client is None or client._state == "closed":
        client = Client(config)
        client._implicit = True
        client._open()
        clients[key] = client
        # Held by the client: the loop keeps only weak references to its tasks.
        client._keeper = loop.create_task(
            _close_when_loop_ends(client), name="clustrix-implicit-client"
        )
    return client


async def _close_when_loop_ends(client: Client) -> None:
    # asyncio.run() (and pytest-asyncio) cancel every task when the loop ends; this
    # one then closes the implicit client, so no worker or connection outlives it.
    try:
        await asyncio.Event().wait()
    finally:
        await client.aclose()


async def close_implicit_clients(loop: asyncio.AbstractEventLoop) -> None:
    """Close the implicit clients of `loop` (the portal calls this at exit)."""
    for client in list(_implicit.pop(loop, {}).values()):
        if client._keeper is not None:
            client._keeper.cancel()  # its `finally` closes the client
            await asyncio.gather(client._keeper, return_exceptions=True)
        await client.aclose()


def run_in_caller_context(
    build: Callable[[Client, str], T], bound: ClusterConfig | None, name: str
) -> T:
    """Run ``build(client, how)`` on the caller's loop with the client the rule picks.

    With no running loop, on the loop this thread serves (see the module docstring),
    else on the portal's; the caller's context goes along, so an ``async with
    Client`` around ``asyncio.to_thread`` still counts.
    """
    if _running_loop() is not None:
        return build(*select_client(bound, name))
    context = contextvars.copy_context()
    loop = _loop_of_this_thread(context) or PORTAL.loop()
    return call_on(loop, lambda: build(*select_client(bound, name)), context)


def _loop_of_this_thread(context: contextvars.Context) -> asyncio.AbstractEventLoop | None:
    current = context.get(CURRENT)
    owner = current._loop if current is not None and current._state == "open" else None
    if owner is not None and owner.is_running():
        return owner
    loop = _anyio_worker_loop()
    if loop is not None:
        return loop
    loops = _loops_with_open_clients()
    return loops[0] if len(loops) == 1 else None


def _anyio_worker_loop() -> asyncio.AbstractEventLoop | None:
    """The asyncio loop whose anyio worker thread this is (Starlette's thread pool)."""
    try:
        from anyio import from_thread
    except ImportError:  # pragma: no cover - anyio is a dependency
        return None
    try:
        return from_thread.run_sync(asyncio.get_running_loop)
    except RuntimeError:  # not an anyio worker thread, or not an asyncio loop
        return None


def call_on(
    loop: asyncio.AbstractEventLoop,
    function: Callable[[], T],
    context: contextvars.Context | None = None,
) -> T:
    """Run `function()` on `loop`'s thread (from another thread) and return its value."""
    if loop.is_closed() or not loop.is_running():
        raise UsageError("the event loop of this Client has stopped")
    future: concurrent.futures.Future[T] = concurrent.futures.Future()

    def run() -> None:
        try:
            future.set_result(function())
        except BaseException as error:
            future.set_exception(error)

    loop.call_soon_threadsafe(run, context=context)
    return future.result()


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def describe(config: ClusterConfig) -> str:
    """Where a configuration sends work, for messages and the log."""
    kind = config.cluster_type
    if kind == "local":
        return "the local backend (this machine)"
    if kind == "kubernetes":
        return f"kubernetes (context {config.k8s_context or 'current'}, {config.k8s_namespace})"
    if not config.cluster_host:
        return f"{kind} with its commands run on this machine"
    user = f"{config.username}@" if config.username else ""
    return f"{kind} at {user}{config.cluster_host}:{config.cluster_port}"


def log_destination(name: str, config: ClusterConfig, how: str) -> None:
    """Log once per function and destination, at INFO, where the function's work goes."""
    where = describe(config)
    with _lock:
        if (name, where) in _logged:
            return
        _logged.add((name, where))
    log.info("%s goes to %s (client: %s)", name, where, how)


PORTAL.on_shutdown = close_implicit_clients
