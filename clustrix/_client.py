"""`Client`: owns backends, connections and every background task of clustrix."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import secrets
import weakref
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from . import _selection
from ._batcher import Batcher
from ._client_jobs import ClientJobs
from ._client_records import ClientRecords
from ._config import ClusterConfig, get_config
from ._exceptions import ConfigError, UsageError
from ._job import Job
from ._options import Options, validate_options
from ._payload import Call, serialize_call
from ._progress import SweepProgress
from ._retry import DEFAULT_RETRY_ON, RetryPolicy
from ._retry import attach as attach_retries
from ._selection import client_for_this_loop as client_for_this_loop
from ._states import JobState
from ._submit import MapArgs, shipped
from ._sweep import Sweep, want_progress
from ._tasks import TaskSet
from ._units import parse_memory
from ._view import ClientView
from ._warmup import warm_up
from .backends import Backend, Submission, create_backend
from .transport.base import Transport
from .transport.local import LocalTransport
from .transport.ssh import SSHTransport

if TYPE_CHECKING:
    from ._decorator import RemoteFunction

R = TypeVar("R")


class Client(ClientJobs, ClientRecords):
    """Owns the connection pool, pollers and background tasks for its jobs.

    Use it as ``async with Client(config) as client:``. A call goes to, highest first:
    the explicit client (``client.submit(f, ...)``); the innermost ``async with
    Client(...)``; the Clients open on the running loop, newest first (one opened in a
    FastAPI lifespan serves every request, threaded handlers too); the configured
    default, made per event loop. A function bound with ``@cluster(config=/profile=)``
    uses an open Client of an equal configuration, else its own. Nothing runs locally
    by default while a remote Client is open elsewhere (`UsageError`); each function's
    destination is logged once at INFO on the ``clustrix`` logger.

    Args:
        config: The cluster to use; None uses the global configuration (`configure`).
        cancel_on_exit: Cancel remote jobs still running when the client closes
            (default: detach, they keep running). Local tasks are always cancelled.
        **fields: `ClusterConfig` fields, instead of `config`.

    Raises:
        UsageError: Both `config` and `**fields` were given.
        ConfigError: A field of `**fields` is invalid.
    """

    def __init__(
        self,
        config: ClusterConfig | None = None,
        *,
        cancel_on_exit: bool = False,
        **fields: Any,
    ) -> None:
        if config is not None and fields:
            raise UsageError("give Client either a ClusterConfig or config fields, not both")
        self._config = ClusterConfig(**fields) if fields else config
        self.cancel_on_exit = cancel_on_exit
        self._state: Literal["unopened", "open", "closed"] = "unopened"
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks = TaskSet("clustrix client")
        self._batcher = Batcher(lambda coro, name: self.spawn(coro, name=name), self._submit)
        self._backends: dict[str, Backend] = {}
        self._transports: dict[tuple[str, int, str], Transport] = {}
        self._jobs: weakref.WeakSet[Job[Any]] = weakref.WeakSet()
        self._token: contextvars.Token[Client | None] | None = None
        self._keeper: asyncio.Task[None] | None = None
        self._implicit = False  # made by the selection rule, not by the user
        self._writers = {}
        self._attached = {}  # submission key -> its one follower (`_attach`)

    @property
    def config(self) -> ClusterConfig:
        """This client's configuration (the global one if none was given)."""
        return self._config if self._config is not None else get_config()

    # -- lifecycle -----------------------------------------------------------------------
    async def __aenter__(self) -> Client:
        # What the first call would otherwise do on the loop (hundreds of ms in a big app).
        with contextlib.suppress(ConfigError):  # a bad global config is the call's error
            await asyncio.to_thread(warm_up, self.config)
        self._open()
        self._token = _selection.CURRENT.set(self)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._token is not None:
            _selection.CURRENT.reset(self._token)
            self._token = None
        await self.aclose()

    def _open(self) -> None:
        if self._state == "closed":
            raise UsageError("this Client is closed; create a new one")
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            raise UsageError(
                "open this Client on an event loop first (`async with Client(...)`)"
            ) from None
        if self._loop is not None and self._loop is not loop:
            raise UsageError("a Client belongs to the event loop it was opened on")
        if self._state == "open":
            return
        self._loop, self._state = loop, "open"
        if not self._implicit:
            _selection.register(self, loop)

    async def aclose(self) -> None:
        """Stop every background task; cancel (``cancel_on_exit``) or detach live jobs."""
        if self._state == "closed":
            return
        self._state = "closed"
        _selection.unregister(self)
        await self._tasks.aclose()
        for backend in self._backends.values():
            await backend.aclose(cancel_running=self.cancel_on_exit)
        for transport in self._transports.values():
            await transport.aclose()
        for job in list(self._jobs):
            if job.done():
                continue
            owner = job._control.backend
            if owner is not None and owner.detaches and job.state is not JobState.PENDING:
                job._control.detach(
                    f"the Client was closed while {job!r} was live; it keeps running on the "
                    f"cluster (key {job.key})"
                )
            else:
                job._control.fail(
                    JobState.CANCELLED, "the client was closed before it was submitted"
                )
        await self._close_records()

    # -- submitting ----------------------------------------------------------------------
    def submit(self, fn: Callable[..., R], /, *args: Any, **kwargs: Any) -> Job[R]:
        """Run ``fn(*args, **kwargs)`` on this client's cluster; returns its `Job` at once.

        Args:
            fn: The function; if `@cluster`-decorated, its options apply.
            *args: Positional arguments of the call.
            **kwargs: Keyword arguments of the call.

        Raises:
            UsageError: The client is closed, or called on another running event loop
                (a thread without a loop is fine).
            ConfigError: The configuration or an option is invalid.
            SerializationError: `fn` or an argument cannot be pickled, or is too large.
        """
        return self.start_call(fn, Options(), args, kwargs)

    def map(
        self,
        fn: Callable[..., R],
        /,
        *iterables: Iterable[Any],
        chunksize: int | None = None,
        max_concurrent: int | None = None,
        return_exceptions: bool = False,
        progress: bool | None = None,
    ) -> Sweep[R]:
        """Run `fn` over zipped `iterables` as one sweep; returns its `Sweep` at once.

        Args:
            fn: The function; if `@cluster`-decorated, its options apply.
            *iterables: One iterable per positional argument, zipped (shortest wins).
            chunksize: Tasks per array element (None: the backend chooses).
            max_concurrent: How many tasks may run at once (None: no cap).
            return_exceptions: Put failures in the result list instead of raising.
            progress: Show a progress bar (None: when stderr is a terminal).

        Raises:
            TypeError: No iterable was given, or `chunksize` is not a positive integer.
            ConfigError: `max_concurrent`, the configuration or an option is invalid.
            UsageError, SerializationError: As for `submit`.
        """
        return ClientView(self, Options()).map(
            fn,
            *iterables,
            chunksize=chunksize,
            max_concurrent=max_concurrent,
            return_exceptions=return_exceptions,
            progress=progress,
        )

    def options(self, **options: Any) -> ClientView:
        """This client with `@cluster` options applied to its `submit`/`map`.

        Args:
            **options: `@cluster` options (``cores=``, ``memory=``, ``time=``, ...).

        Raises:
            TypeError: An option is unknown.
            ConfigError: An option's value is invalid.
        """
        return ClientView(self, validate_options(options))

    def start_call(
        self,
        fn: RemoteFunction[..., R] | Callable[..., R],
        options: Options,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        how: str = "the explicit client",
    ) -> Job[R]:
        """Start ``fn(*args, **kwargs)`` with `options` (under every `submit`); returns its `Job`.

        Args:
            fn: The function; if `@cluster`-decorated, `options` apply over its own.
            options: Validated options of this call.
            args: Positional arguments of the call.
            kwargs: Keyword arguments of the call.
            how: How this client was chosen, for the log.

        Raises:
            UsageError, ConfigError, SerializationError: As for `submit`.
        """
        jobs, _, _ = self._launch(fn, options, [(args, kwargs)], how=how, sweep=False)
        return jobs[0]

    def start_sweep(
        self,
        fn: RemoteFunction[..., R] | Callable[..., R],
        options: Options,
        args: MapArgs,
        *,
        how: str = "the explicit client",
    ) -> Sweep[R]:
        """Start `fn` over the calls of `args` as one sweep (under every `map`).

        Args:
            fn: The function; if `@cluster`-decorated, `options` apply over its own.
            options: Validated options of this sweep.
            args: The checked `map` arguments (calls, chunksize, ...).
            how: How this client was chosen, for the log.

        Raises:
            UsageError, ConfigError, SerializationError: As for `submit`.
        """
        jobs, key, name = self._launch(
            fn, args.apply(options), args.calls, how=how, chunksize=args.chunksize
        )
        bar = SweepProgress(name, jobs) if jobs and want_progress(args.progress) else None
        return Sweep(
            self, jobs, key=key, name=name, return_exceptions=args.return_exceptions, progress=bar
        )

    def _launch(
        self,
        fn: RemoteFunction[..., R] | Callable[..., R],
        options: Options,
        calls: Sequence[Call],
        *,
        how: str,
        chunksize: int | None = None,
        sweep: bool = True,
    ) -> tuple[list[Job[R]], str, str]:
        """Serialize, create the handles and start the submission in the background.

        Runs on the client's loop thread (called from a thread without a loop, it is run
        there).
        """
        running = _selection._running_loop()
        if self._loop is not None and running is not self._loop:
            if running is not None:
                raise UsageError(
                    "a Client belongs to the event loop it was opened on; open another "
                    "Client on this loop (or call from a thread without a running loop)"
                )
            launch = functools.partial(
                self._launch, fn, options, calls, how=how, chunksize=chunksize, sweep=sweep
            )
            return _selection.call_on(self._loop, launch, contextvars.copy_context())
        if self._state != "open":
            self._open()
        function, options = shipped(fn, options, self.config)
        config = options.config or self.config
        resources = options.resolve(config)
        backend = self._backend_for(config)
        payload = serialize_call(function, calls, max_size=parse_memory(config.max_payload_size))
        key = "cx" + secrets.token_hex(6)
        name = _name_of(function)
        _selection.log_destination(name, config, how)
        jobs: list[Job[R]] = [
            Job(self, key=f"{key}.{i}" if sweep else key, name=name, index=i if sweep else None)
            for i in range(len(calls))
        ]
        recorder = self._records_writer(config)
        for job in jobs:
            job._control.backend = backend
            job._control.recorder = recorder
        self._jobs.update(jobs)
        if calls:
            controls = [job._control for job in jobs]
            submission = Submission(key, name, payload, resources, config, controls, chunksize)
            if options.retries:
                retry_on = DEFAULT_RETRY_ON if options.retry_on is None else options.retry_on
                resubmit = functools.partial(self._resubmit, backend)
                policy = RetryPolicy(options.retries, retry_on)
                attach_retries(submission, policy, resubmit, self._accepting)
            if sweep:
                self._tasks.spawn(self._submit(backend, submission), name=f"submit-{key}")
            else:  # alone, or with single calls close to it in one array (`_batcher`)
                self._batcher.add(backend, submission)
        return jobs, key, name

    def _backend_for(self, config: ClusterConfig) -> Backend:
        key = config.cache_key()
        if key not in self._backends:
            backend = self._backends[key] = create_backend(config, self._transport_for)
            backend.records = self._records_writer(config)
        return self._backends[key]

    def _transport_for(self, config: ClusterConfig) -> Transport:
        """The client's one transport per (host, port, user): shared by its backends."""
        if not config.cluster_host:
            return LocalTransport()
        key = (config.cluster_host, config.cluster_port, config.username or "")
        if key not in self._transports:
            self._transports[key] = SSHTransport(config)
        return self._transports[key]

    def __repr__(self) -> str:
        return f"<Client {self.config.cluster_type} {self._state} jobs={len(self._jobs)}>"


def _name_of(fn: Callable[..., Any]) -> str:
    return str(getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn))
