"""Runs the iterations of a loop that clustrix proved independent across a job's cores.

This module runs on the cluster beside the runner: it imports ONLY the standard
library and cloudpickle. It travels with the pickled function itself (registered with
cloudpickle to be pickled by value), so every backend has it without installing
clustrix and without any change to how the runner is shipped.

The rewritten function calls `run_loop(iterable, body, cores, line, watched)`:

* it answers None (the caller then runs its own, unchanged, sequential loop over the
  same iterable) when fewer than two cores are allocated, when ``fork`` is not
  available, inside a worker of another parallel loop, or when an accumulator is the
  very object (or an element of an object) the body reads;
* otherwise it lists the iterable, splits the iterations into one contiguous chunk per
  core and runs each chunk in a forked worker process. ``body(item, effects)`` runs
  one iteration and appends its accumulator effects (``(site, args)``) to `effects`;
  what an iteration prints is captured. The parent gets every iteration's effects back
  in iteration order and returns ``(effects, error)``: the caller replays the effects
  (so floats, strings and dict order come out as the sequential loop makes them) and
  raises `error`, the exception of the lowest failing iteration, if there is one.
"""

from __future__ import annotations

import io
import multiprocessing
import os
import sys
import traceback
from collections.abc import Callable, Iterable
from multiprocessing import connection
from typing import Any

import cloudpickle

WORKER_ENV = "CLUSTRIX_LOOP_WORKER"
# Set by the schedulers inside a job: the number of cores the job was allocated.
CORE_VARIABLES = ("SLURM_CPUS_PER_TASK", "NSLOTS", "NCPUS", "PBS_NUM_PPN")
_IMMUTABLE = (int, float, complex, str, bytes, bool, type(None), frozenset, range)

Effect = tuple[int, tuple[Any, ...]]
# One iteration: its effects, what it wrote to stdout, what it wrote to stderr.
Record = tuple[list[Effect], bytes, bytes]
# A failure: (iteration index, exception, formatted traceback).
Failure = tuple[int, BaseException, str]
Body = Callable[[Any, list[Effect]], None]


def allocated_cores(hint: int | None) -> int:
    """The cores this process may use: the scheduler's allocation, else `hint`.

    Never more than the CPUs the process is allowed to run on.
    """
    wanted = hint or 1
    for name in CORE_VARIABLES:
        value = os.environ.get(name, "")
        if value.isdigit() and int(value) > 0:
            wanted = int(value)
            break
    try:
        available = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        available = os.cpu_count() or 1
    return max(1, min(wanted, available))


def run_loop(
    iterable: Iterable[Any],
    body: Body,
    hint: int | None,
    line: int,
    watched: tuple[tuple[Callable[[], Any], ...], tuple[Callable[[], Any], ...]] = ((), ()),
) -> tuple[list[Effect], BaseException | None] | None:
    """Run the loop's iterations in parallel; None means "run it sequentially yourself"."""
    if os.environ.get(WORKER_ENV) == "1":
        return None  # already inside a worker: never fork workers of workers
    if "fork" not in multiprocessing.get_all_start_methods():
        return None
    cores = allocated_cores(hint)
    if cores < 2 or _aliased(*watched):
        return None
    items: list[Any] = []
    iterable_error: BaseException | None = None
    try:
        for item in iterable:
            items.append(item)
    except Exception as exc:  # the sequential loop would have run the items before it
        iterable_error = exc
    chunks = _split(len(items), cores)
    if len(chunks) < 2:
        outcomes = [_run_chunk(body, items, 0, len(items))]
    else:
        outcomes = _run_in_workers(body, items, chunks, line)
    effects, error = _merge(outcomes, line)
    return effects, error if error is not None else iterable_error


def _aliased(
    accumulators: tuple[Callable[[], Any], ...], reads: tuple[Callable[[], Any], ...]
) -> bool:
    """True if an accumulator is an object the body reads (or an element of one)."""
    targets = {id(v) for v in _values(accumulators) if not isinstance(v, _IMMUTABLE)}
    if not targets:
        return False
    for value in _values(reads):
        if id(value) in targets:
            return True
        if isinstance(value, dict):
            inside: Iterable[Any] = [*value.keys(), *value.values()]
        elif isinstance(value, list | tuple | set | frozenset):
            inside = value
        else:
            continue
        if any(id(element) in targets for element in inside):
            return True
    return False


def _values(getters: tuple[Callable[[], Any], ...]) -> list[Any]:
    values = []
    for getter in getters:
        try:
            values.append(getter())
        except NameError:  # not bound yet: then it cannot be an alias of anything
            continue
    return values


def _split(count: int, parts: int) -> list[tuple[int, int]]:
    """`count` iterations as at most `parts` contiguous (start, stop) ranges."""
    parts = max(1, min(parts, count))
    size, extra = divmod(count, parts)
    chunks, start = [], 0
    for number in range(parts):
        stop = start + size + (1 if number < extra else 0)
        chunks.append((start, stop))
        start = stop
    return chunks


class _Capture(io.TextIOWrapper):
    """A text stream (with a ``.buffer``) collecting what one iteration prints."""

    def __init__(self, like: Any) -> None:
        encoding = getattr(like, "encoding", None) or "utf-8"
        super().__init__(io.BytesIO(), encoding=encoding, errors="backslashreplace")

    def captured(self) -> bytes:
        self.flush()
        raw = self.buffer
        assert isinstance(raw, io.BytesIO)
        return raw.getvalue()


def _run_chunk(
    body: Body, items: list[Any], start: int, stop: int
) -> tuple[list[Record], Failure | None]:
    """Run iterations start..stop-1 in order; stop at the first one that raises."""
    records: list[Record] = []
    for index in range(start, stop):
        effects: list[Effect] = []
        saved = sys.stdout, sys.stderr
        out, err = _Capture(saved[0]), _Capture(saved[1])
        sys.stdout, sys.stderr = out, err
        failure: Failure | None = None
        try:
            body(items[index], effects)
        except BaseException as exc:
            failure = (index, exc, traceback.format_exc())
        finally:
            sys.stdout, sys.stderr = saved
        records.append((effects, out.captured(), err.captured()))
        if failure is not None:
            return records, failure
    return records, None


def _worker(body: Body, items: list[Any], start: int, stop: int, channel: Any) -> None:
    os.environ[WORKER_ENV] = "1"
    outcome = _run_chunk(body, items, start, stop)
    channel.send_bytes(_dumps(outcome, start))
    channel.close()


def _dumps(outcome: tuple[list[Record], Failure | None], start: int) -> bytes:
    """Pickle a chunk's outcome; what cannot be pickled becomes a clear error."""
    try:
        return bytes(cloudpickle.dumps(outcome))
    except Exception:
        return _salvage(outcome, start)


def _salvage(outcome: tuple[list[Record], Failure | None], start: int) -> bytes:
    """The picklable part of an outcome, ending in an error that says what was not."""
    records, failure = outcome
    kept: list[Record] = []
    for offset, record in enumerate(records):
        try:
            cloudpickle.dumps(record)
        except Exception as exc:
            error = TypeError(
                f"iteration {start + offset} accumulated a value that cannot be sent back "
                f"from its worker process ({exc}); run this function with parallel=False"
            )
            return bytes(cloudpickle.dumps((kept, (start + offset, error, ""))))
        kept.append(record)
    assert failure is not None  # the records pickle, so the exception does not
    index, original, text = failure
    kind = f"{type(original).__module__}.{type(original).__qualname__}"
    substitute = RuntimeError(f"{kind}: {original}")
    return bytes(cloudpickle.dumps((kept, (index, substitute, text))))


def _run_in_workers(
    body: Body, items: list[Any], chunks: list[tuple[int, int]], line: int
) -> list[tuple[list[Record], Failure | None]]:
    context = multiprocessing.get_context("fork")
    workers: list[tuple[Any, Any]] = []
    outcomes: dict[int, tuple[list[Record], Failure | None]] = {}
    try:
        for start, stop in chunks:
            reader, writer = context.Pipe(duplex=False)
            process = context.Process(
                target=_worker, args=(body, items, start, stop, writer), name="clustrix-loop"
            )
            process.start()
            writer.close()
            workers.append((process, reader))
        pending: dict[Any, int] = {r: number for number, (_, r) in enumerate(workers)}
        while pending:
            ready: list[Any] = connection.wait(list(pending))
            for reader in ready:
                if reader not in pending:
                    continue  # a later chunk stopped because a lower one failed
                number = pending.pop(reader)
                outcomes[number] = _receive(reader, workers[number][0], chunks[number], line)
                if outcomes[number][1] is not None:  # later chunks cannot fail lower
                    for later in [r for r, n in pending.items() if n > number]:
                        workers[pending.pop(later)][0].terminate()
    finally:
        for process, reader in workers:
            if process.is_alive() and len(outcomes) < len(workers):
                process.terminate()
            process.join()
            reader.close()
    return [outcomes[n] for n in sorted(outcomes)]


def _receive(
    reader: Any, process: Any, chunk: tuple[int, int], line: int
) -> tuple[list[Record], Failure | None]:
    try:
        outcome: tuple[list[Record], Failure | None] = cloudpickle.loads(reader.recv_bytes())
        return outcome
    except EOFError:
        process.join()
        error = ChildProcessError(
            f"the worker process running iterations {chunk[0]}..{chunk[1] - 1} of the loop "
            f"at line {line} ended without a result (exit code {process.exitcode})"
        )
        return [], (chunk[0], error, "")


def _merge(
    outcomes: list[tuple[list[Record], Failure | None]], line: int
) -> tuple[list[Effect], BaseException | None]:
    """All effects in iteration order, up to and including the first failure."""
    effects: list[Effect] = []
    for records, failure in outcomes:
        for record_effects, out, err in records:
            effects.extend(record_effects)
            _write(sys.stdout, out)
            _write(sys.stderr, err)
        if failure is not None:
            index, error, text = failure
            note = f"raised by iteration {index} of the loop at line {line} (run in parallel)"
            if text:
                note += f"; traceback in its worker process:\n{text.rstrip()}"
            error.add_note(note)
            return effects, error
    return effects, None


def _write(stream: Any, data: bytes) -> None:
    if not data:
        return
    buffer = getattr(stream, "buffer", None)
    if buffer is None:
        stream.write(data.decode(getattr(stream, "encoding", None) or "utf-8", "replace"))
        return
    stream.flush()
    buffer.write(data)
    buffer.flush()
