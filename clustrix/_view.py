"""`ClientView` (``client.options(...)``) and the argument helpers of `submit`/`map`."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from ._job import Job
from ._options import Options
from ._payload import Call
from ._sweep import Sweep

if TYPE_CHECKING:
    from ._client import Client

R = TypeVar("R")


class ClientView:
    """A `Client` with `@cluster` options applied to its `submit` and `map`.

    A `@cluster`-decorated function passed here runs as its undecorated self, with
    the decorator's options under this view's (the view's win) and on this view's
    client (a `config=`/`profile=` of the decorator is not used: the client decides).
    """

    def __init__(self, client: Client, options: Options) -> None:
        self._client = client
        self._options = options

    def submit(self, fn: Callable[..., R], /, *args: Any, **kwargs: Any) -> Job[R]:
        """Run ``fn(*args, **kwargs)`` with these options; returns its `Job`."""
        function, options = unwrap(fn, self._options)
        job = self._client._start(function, options, [(args, kwargs)], sweep=False)
        return job  # type: ignore[return-value]

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
        """Run `fn` over zipped `iterables` with these options as one sweep."""
        function, options = unwrap(fn, self._options)
        if max_concurrent is not None:
            options = options.merged({"max_concurrent": max_concurrent})
        sweep = self._client._start(
            function,
            options,
            calls_from(iterables),
            sweep=True,
            chunksize=check_chunksize(chunksize),
            return_exceptions=return_exceptions,
            progress=progress,
        )
        return sweep  # type: ignore[return-value]


def unwrap(fn: Callable[..., Any], options: Options) -> tuple[Callable[..., Any], Options]:
    """The plain function behind a `RemoteFunction`, and `options` over its own.

    What is pickled must be the user's function: the wrapper would need clustrix on
    the cluster. The decorator's `config`/`profile` is dropped (an explicit client
    decides where the call runs) unless `options` sets one.
    """
    from ._decorator import RemoteFunction

    while isinstance(fn, RemoteFunction):
        options = options.over(dataclasses.replace(fn.cluster_options, config=None))
        fn = fn.__wrapped__
    return fn, options


def calls_from(iterables: Sequence[Iterable[Any]]) -> list[Call]:
    """Zip the iterables of a `map` into per-task argument tuples."""
    if not iterables:
        raise TypeError("map() needs at least one iterable of arguments")
    return [(tuple(args), {}) for args in zip(*iterables, strict=False)]


def check_chunksize(chunksize: int | None) -> int | None:
    """`chunksize` if it is None or a positive integer, else a `TypeError`."""
    if chunksize is not None and (
        isinstance(chunksize, bool) or not isinstance(chunksize, int) or chunksize < 1
    ):
        raise TypeError(f"chunksize={chunksize!r} must be a positive integer or None")
    return chunksize
