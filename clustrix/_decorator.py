"""`@cluster` and `RemoteFunction`: calling a decorated function returns a `Job`."""

from __future__ import annotations

import datetime
import functools
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Generic, Literal, ParamSpec, TypeVar, overload

from ._client import Client
from ._config import ClusterConfig
from ._fanout import start_fanout
from ._job import Job
from ._loops import analyse
from ._options import Options, validate_options
from ._selection import run_in_caller_context
from ._states import JobState
from ._submit import MapArgs
from ._sweep import Sweep

P = ParamSpec("P")
R = TypeVar("R")
log = logging.getLogger("clustrix")


class RemoteFunction(Generic[P, R]):
    """A function that runs on a cluster: ``f(x)`` returns a `Job`, ``f.map(xs)`` a `Sweep`.

    The original function stays reachable as ``f.__wrapped__`` (call it to run
    in-process, e.g. while debugging). Which `Client` runs a call is decided per call;
    see `Client` (explicit client, innermost ``async with``, Clients open on the
    running loop, the configured default; a bound ``config``/``profile`` picks an open
    Client with an equal configuration, else its own).
    """

    def __init__(self, fn: Callable[P, R], options: Options) -> None:
        while isinstance(fn, RemoteFunction):  # @cluster over @cluster: one wrapper
            options = options.over(fn.cluster_options)
            fn = fn.__wrapped__
        self.__wrapped__: Callable[P, R] = fn
        self._options = options
        functools.update_wrapper(self, fn)
        analysis = analyse(fn)  # at decoration; redone at submission if globals were missing
        if log.isEnabledFor(logging.DEBUG):
            log.debug("loop analysis of %s", analysis.report(options.parallel))

    @property
    def cluster_options(self) -> Options:
        """The validated `@cluster` options of this function."""
        return self._options

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> Job[R]:
        """Start the function on the cluster; never blocks. Returns its `Job`.

        Args:
            *args: Positional arguments of the call.
            **kwargs: Keyword arguments of the call.

        Raises:
            UsageError: No Client may serve the call (e.g. it would run locally by
                default while a remote Client is open elsewhere).
            ConfigError: The configuration is invalid.
            SerializationError: The function or an argument cannot be pickled, or is too large.
        """
        if self._options.parallel == "sweep":
            plan = analyse(self.__wrapped__).fanout(args, dict(kwargs))
            if plan is not None:  # its loop goes out as an array sweep from here
                fanned: Job[R] = run_in_caller_context(
                    lambda client, how: start_fanout(
                        client, self._options, plan, (args, dict(kwargs)), self._name, how
                    ),
                    self._options.config,
                    self._name,
                )
                return fanned

        def start(client: Client, how: str) -> Job[R]:
            return client.start_call(self, Options(), args, dict(kwargs), how=how)

        return run_in_caller_context(start, self._options.config, self._name)

    def map(
        self,
        *iterables: Iterable[Any],
        chunksize: int | None = None,
        max_concurrent: int | None = None,
        return_exceptions: bool = False,
        progress: bool | None = None,
    ) -> Sweep[R]:
        """Run the function over zipped `iterables` as ONE submission (an array job).

        Args:
            *iterables: One iterable per positional argument, zipped (shortest wins).
            chunksize: Tasks per array element (None: the backend chooses).
            max_concurrent: How many tasks may run at once (None: no cap).
            return_exceptions: Put failures in the result list instead of raising.
            progress: Show a progress bar (None: when stderr is a terminal).

        Raises:
            TypeError: No iterable was given, or `chunksize` is not a positive integer.
            ConfigError: `max_concurrent` or the configuration is invalid.
            UsageError, SerializationError: As for calling the function.
        """
        arguments = MapArgs.of(
            iterables,
            chunksize=chunksize,
            max_concurrent=max_concurrent,
            return_exceptions=return_exceptions,
            progress=progress,
        )

        def start(client: Client, how: str) -> Sweep[R]:
            return client.start_sweep(self, Options(), arguments, how=how)

        return run_in_caller_context(start, self._options.config, self._name)

    def options(self, **overrides: Any) -> RemoteFunction[P, R]:
        """A copy with some `@cluster` options changed, e.g. ``f.options(cores=8)(x)``.

        Args:
            **overrides: `@cluster` options to change.

        Raises:
            TypeError: An option is unknown.
            ConfigError: An option's value is invalid.
        """
        return RemoteFunction(self.__wrapped__, self._options.merged(overrides))

    @property
    def _name(self) -> str:
        return str(getattr(self.__wrapped__, "__qualname__", None) or repr(self.__wrapped__))

    def __repr__(self) -> str:
        return f"<RemoteFunction {getattr(self.__wrapped__, '__qualname__', '?')}>"


@overload
def cluster(fn: Callable[P, R], /) -> RemoteFunction[P, R]: ...
@overload
def cluster(
    *,
    cores: int | None = None,
    memory: str | None = None,
    time: str | datetime.timedelta | None = None,
    gpus: int | None = None,
    partition: str | None = None,
    queue: str | None = None,
    account: str | None = None,
    nodes: int | None = None,
    environment: str | None = None,
    parallel: bool | Literal["cores", "sweep"] | None = None,
    config: ClusterConfig | None = None,
    profile: str | None = None,
    extra: Mapping[str, Any] | None = None,
    max_concurrent: int | None = None,
    retries: int | None = None,
    retry_on: Iterable[JobState | str] | None = None,
) -> Callable[[Callable[P, R]], RemoteFunction[P, R]]: ...
def cluster(fn: Callable[P, R] | None = None, /, **options: Any) -> Any:
    """Make a function run on a cluster: ``@cluster`` or ``@cluster(cores=8, ...)``.

    Decorating a decorated function merges the options (the outer win). Which
    cluster runs a call: an explicit client (``client.submit(f, ...)``) > the
    innermost ``async with Client(...)`` > the Clients open on the running event loop,
    the most recently opened first > the configured default. With `config`/`profile`
    the function uses an open Client whose configuration equals it, else its own.

    Args:
        fn: The function, when used bare as ``@cluster``.
        **options: The options below (unset ones come from the configuration):
            `cores` (CPUs per task), `memory` ("4GB"), `time` ("HH:MM:SS"), `gpus`,
            `partition`/`queue`, `account`, `nodes`, `environment` ("inherit",
            "replicate", "conda:<name>", "venv:<path>"), `parallel` (None: loops
            proven independent run in parallel when the job has several cores and
            the config's `auto_parallel` is on; True/"cores": always; False: never;
            see `explain`), `config` or `profile` (which cluster), `extra` (raw
            scheduler directives), `max_concurrent`, and `retries` with `retry_on`:
            a task that ended in a state of `retry_on` (default NODE_FAIL,
            PREEMPTED, LOST; also allowed: FAILED, which includes the function's own
            exceptions, TIMEOUT and OUT_OF_MEMORY) is submitted again, up to
            `retries` times (default 0), as further attempts of the same `Job`
            (``job.attempts``).

    Raises:
        TypeError: An option is unknown, or what is decorated is not callable.
        ConfigError: An option's value is invalid (e.g. both `config` and `profile`).
    """
    validated = validate_options(options)
    if fn is not None:
        if not callable(fn):
            raise TypeError(f"@cluster decorates a function, got {type(fn).__name__}")
        return RemoteFunction(fn, validated)

    def decorate(function: Callable[P, R]) -> RemoteFunction[P, R]:
        if not callable(function):
            raise TypeError(f"@cluster decorates a function, got {type(function).__name__}")
        return RemoteFunction(function, validated)

    return decorate
