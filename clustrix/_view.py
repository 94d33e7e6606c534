"""`ClientView`: ``client.options(...)``, a `Client` with `@cluster` options applied."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

from ._job import Job
from ._options import Options
from ._submit import MapArgs
from ._sweep import Sweep

if TYPE_CHECKING:
    from ._client import Client

R = TypeVar("R")


class ClientView:
    """A `Client` with `@cluster` options applied to its `submit` and `map`.

    A `@cluster`-decorated function passed here runs as its own function (its loops
    parallelized as the decorator would), with the decorator's options under this
    view's (the view's win) and on this view's client (a `config=`/`profile=` of the
    decorator is not used: the client decides).
    """

    def __init__(self, client: Client, options: Options) -> None:
        self._client = client
        self._options = options

    def submit(self, fn: Callable[..., R], /, *args: Any, **kwargs: Any) -> Job[R]:
        """Run ``fn(*args, **kwargs)`` with these options; returns its `Job` at once.

        Args:
            fn: The function; if `@cluster`-decorated, this view's options win over its own.
            *args: Positional arguments of the call.
            **kwargs: Keyword arguments of the call.

        Raises:
            UsageError, ConfigError, SerializationError: As for `Client.submit`.
        """
        return self._client.start_call(fn, self._options, args, kwargs)

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
        """Run `fn` over zipped `iterables` with these options as one sweep.

        Args:
            fn: The function; if `@cluster`-decorated, this view's options win over its own.
            *iterables: One iterable per positional argument, zipped (shortest wins).
            chunksize: Tasks per array element (None: the backend chooses).
            max_concurrent: How many tasks may run at once (None: no cap).
            return_exceptions: Put failures in the result list instead of raising.
            progress: Show a progress bar (None: when stderr is a terminal).

        Raises:
            TypeError, ConfigError, UsageError, SerializationError: As for `Client.map`.
        """
        args = MapArgs.of(
            iterables,
            chunksize=chunksize,
            max_concurrent=max_concurrent,
            return_exceptions=return_exceptions,
            progress=progress,
        )
        return self._client.start_sweep(fn, self._options, args)
