"""``parallel="sweep"`` on the cluster: the executors of a loop fanned out as a sweep.

Like `parallel_loop` (whose pieces it uses), this runs on the cluster and
imports only the standard library and cloudpickle; it travels by value inside the
pickled function. The client lists the iterable and submits one task per iteration:
each task runs the function with `run_part` as its loop executor, which runs the body
for the task's own item and stops the function there; a last job runs the function
once more with `replay` as its executor, which hands back every iteration's effects
in order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from .parallel_loop import Body, Effect, Failure, Record, _merge, _run_chunk

Outcome = tuple[list[Record], Failure | None]


class _PartDone(BaseException):
    """Ends the function of a fan-out task once its iteration ran (not an error)."""

    def __init__(self, outcome: Outcome) -> None:
        super().__init__("the iteration of this task ran")
        self.outcome = outcome


_PARTS: list[tuple[int, Any]] = []  # (iteration index, item) of the running fan-out task


def run_part(
    iterable: Iterable[Any],
    body: Body,
    hint: int | None,
    line: int,
    watched: tuple[tuple[Callable[[], Any], ...], tuple[Callable[[], Any], ...]] = ((), ()),
) -> None:
    """The executor of a fan-out task: run this task's one iteration, then stop."""
    index, item = _PARTS[-1]
    records, failure = _run_chunk(body, [item], 0, 1)
    if failure is not None:
        failure = (index, failure[1], failure[2])
    raise _PartDone((records, failure))


def sweep_part(
    function: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    index: int,
    item: Any,
) -> Outcome:
    """A fan-out task: `function` (rewritten with `run_part`) for iteration `index`."""
    _PARTS.append((index, item))
    try:
        function(*args, **kwargs)
    except _PartDone as done:
        return done.outcome
    finally:
        _PARTS.pop()
    raise RuntimeError("the function returned before it reached its loop")


def replay(
    outcomes: list[Outcome],
    iterable: Iterable[Any],
    body: Body,
    hint: int | None,
    line: int,
    watched: tuple[tuple[Callable[[], Any], ...], tuple[Callable[[], Any], ...]] = ((), ()),
) -> tuple[list[Effect], BaseException | None]:
    """The executor of the last job of a fan-out: every iteration's effects, in order."""
    return _merge(outcomes, line)
