"""What `submit` and `map` hand to the client: the function to ship and a map's arguments.

`Client.map`, `ClientView.map` and `RemoteFunction.map` check their arguments once,
here (`MapArgs.of`); `Client.start_call`/`start_sweep` turn the function they are
given, plain or `@cluster`-decorated, into what is pickled (`shipped`), so a decorated
function sent through a client keeps its loop parallelization.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from ._config import ClusterConfig
from ._loops import shipped_function
from ._options import Options, validate_options
from ._payload import Call


@dataclasses.dataclass(frozen=True)
class MapArgs:
    """The checked arguments of one `map` call (what is not an `@cluster` option)."""

    calls: list[Call]
    chunksize: int | None = None
    max_concurrent: int | None = None
    return_exceptions: bool = False
    progress: bool | None = None

    @classmethod
    def of(
        cls,
        iterables: Sequence[Iterable[Any]],
        *,
        chunksize: int | None,
        max_concurrent: int | None,
        return_exceptions: bool,
        progress: bool | None,
    ) -> MapArgs:
        """Zip `iterables` into calls and check the keywords; raises before submitting."""
        if max_concurrent is not None:
            max_concurrent = validate_options({"max_concurrent": max_concurrent}).max_concurrent
        return cls(
            calls_from(iterables),
            check_chunksize(chunksize),
            max_concurrent,
            return_exceptions,
            progress,
        )

    def apply(self, options: Options) -> Options:
        """`options` with this call's `max_concurrent`, if it gave one."""
        if self.max_concurrent is None:
            return options
        return dataclasses.replace(options, max_concurrent=self.max_concurrent)


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


def unwrap(fn: Callable[..., Any], options: Options) -> tuple[Callable[..., Any], Options, bool]:
    """The plain function behind a `RemoteFunction`, `options` over its own, and
    whether it was decorated.

    What is pickled must be the user's function: the wrapper would need clustrix on
    the cluster. The decorator's `config`/`profile` is dropped (the client serving the
    call decides where it runs) unless `options` sets one.
    """
    from ._decorator import RemoteFunction

    decorated = False
    while isinstance(fn, RemoteFunction):
        options = options.over(dataclasses.replace(fn.cluster_options, config=None))
        fn, decorated = fn.__wrapped__, True
    return fn, options, decorated


def shipped(
    fn: Callable[..., Any], options: Options, config: ClusterConfig
) -> tuple[Callable[..., Any], Options]:
    """What a call of `fn` with `options` on `config` pickles, and its full options.

    A `@cluster` function is sent as its own function, with its independent loops
    parallelized over the job's cores when enabled (see `explain`); a plain function
    is sent as it is.
    """
    function, options, decorated = unwrap(fn, options)
    if not decorated:
        return function, options
    config = options.config or config
    cores = options.cores or config.default_cores
    return shipped_function(function, options.parallel, config.auto_parallel, cores), options
