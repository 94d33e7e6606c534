"""Pickling calls for the runner, and turning its result files back into values.

Functions from ``__main__``, a REPL or a notebook are pickled by value (cloudpickle
does that by itself). So are functions and classes from the user's own modules that
are not installed packages (a ``helpers.py`` beside the script): the remote side could
not import them, so every such loaded module is registered with cloudpickle's
``register_pickle_by_value``.

cloudpickle names the file of every code object it pickles by value
``<dynamic-code>``; clustrix keeps the real file name (line numbers are kept anyway),
so a remote traceback through a function from ``__main__`` points at the user's file.
"""

from __future__ import annotations

import inspect
import io
import json
import site
import sys
import sysconfig
import types
from collections import ChainMap
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cloudpickle

from ._exceptions import (
    JobFailedError,
    RemoteError,
    ResultIntegrityError,
    SerializationError,
)
from ._units import format_memory
from .oncluster import runner as _runner

Call = tuple[tuple[Any, ...], dict[str, Any]]


@dataclass(frozen=True)
class Payload:
    """What a submission ships: the function once, and one argument pickle per task."""

    function: bytes
    arguments: Sequence[bytes]

    @property
    def size(self) -> int:
        return len(self.function) + sum(len(a) for a in self.arguments)

    def args_blob(self) -> bytes:
        return b"".join(self.arguments)

    def spec_json(self, chunksize: int = 1, *, time_limit: int | None = None) -> bytes:
        """The runner's ``spec.json``; `time_limit` is enforced by the runner per task."""
        offsets = [0]
        for blob in self.arguments:
            offsets.append(offsets[-1] + len(blob))
        spec = {
            "format": 1,
            "count": len(self.arguments),
            "chunksize": chunksize,
            "offsets": offsets,
            "time_limit": time_limit,
        }
        return json.dumps(spec).encode()


_CLOUDPICKLE_CODE_REDUCE = cloudpickle.Pickler.dispatch_table[types.CodeType]


def _code_reduce(code: types.CodeType) -> tuple[Any, tuple[Any, ...]]:
    """cloudpickle's reduction of a code object, with its real ``co_filename``."""
    constructor, args = _CLOUDPICKLE_CODE_REDUCE(code)
    try:
        position = args.index("<dynamic-code>")  # co_filename comes before co_name
    except ValueError:
        return constructor, args  # a cloudpickle that keeps the name itself
    return constructor, (*args[:position], code.co_filename, *args[position + 1 :])


class _Pickler(cloudpickle.Pickler):  # type: ignore[misc]  # cloudpickle is untyped
    dispatch_table = ChainMap({types.CodeType: _code_reduce}, cloudpickle.Pickler.dispatch_table)


def pickle_dumps(obj: object) -> bytes:
    """`cloudpickle.dumps`, but code pickled by value keeps its file name."""
    with io.BytesIO() as file:
        _Pickler(file, protocol=cloudpickle.DEFAULT_PROTOCOL).dump(obj)
        return file.getvalue()


class _ByValueRegistry:
    """Registers the user's own (not installed) modules to be pickled by value."""

    def __init__(self) -> None:
        self._seen: set[str] = set()
        roots = {sysconfig.get_path(k) for k in ("stdlib", "platstdlib", "purelib", "platlib")}
        roots.update([*site.getsitepackages(), site.getusersitepackages()])
        roots.update({sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix})
        self._installed = tuple(str(Path(r).resolve()) for r in roots if r)

    def refresh(self) -> None:
        for name, module in list(sys.modules.items()):
            if name in self._seen:
                continue
            self._seen.add(name)
            if "." in name or name == "__main__" or name.split(".")[0] == "clustrix":
                continue  # submodules go with their top-level package
            if self._is_users_own(module):
                cloudpickle.register_pickle_by_value(module)

    def _is_users_own(self, module: types.ModuleType | None) -> bool:
        file = getattr(module, "__file__", None)
        if not isinstance(file, str) or not file.endswith(".py"):
            return False
        try:
            resolved = str(Path(file).resolve())
        except OSError:
            return False
        return not resolved.startswith(self._installed)


_REGISTRY = _ByValueRegistry()


def _describe(obj: object) -> str:
    return f"a {type(obj).__module__}.{type(obj).__qualname__}"


def _dumps(obj: object, what: str) -> bytes:
    try:
        blob = pickle_dumps(obj)
    except Exception as exc:
        raise SerializationError(f"{what} ({_describe(obj)}) cannot be pickled: {exc}") from exc
    return blob


def _pickle_function(fn: Callable[..., Any]) -> bytes:
    name = getattr(fn, "__qualname__", repr(fn))
    try:
        blob = pickle_dumps(fn)
    except Exception as exc:
        culprit = _find_unpicklable_reference(fn)
        detail = f": it refers to {culprit}, which cannot be pickled" if culprit else ""
        raise SerializationError(
            f"the function {name!r} cannot be pickled{detail} ({exc}). Create such objects "
            "inside the function, or pass what they are built from as arguments."
        ) from exc
    return blob


def _find_unpicklable_reference(fn: Callable[..., Any]) -> str | None:
    target = inspect.unwrap(fn)
    if not inspect.isfunction(target):
        return None
    try:
        found = inspect.getclosurevars(target)
    except (TypeError, ValueError):
        return None
    for kind, names in (("variable", found.nonlocals), ("global", found.globals)):
        for var, value in names.items():
            try:
                cloudpickle.dumps(value)
            except Exception:
                return f"the {kind} {var!r} ({_describe(value)})"
    return None


def serialize_call(
    fn: Callable[..., Any],
    calls: Sequence[Call],
    *,
    max_size: int,
) -> Payload:
    """Pickle `fn` once and every call's arguments; raise `SerializationError` early."""
    _REGISTRY.refresh()
    function = _pickle_function(fn)
    arguments = []
    total = len(function)
    for task, (args, kwargs) in enumerate(calls):
        where = f"task {task}, " if len(calls) > 1 else ""
        try:
            blob = pickle_dumps((args, kwargs))
        except Exception:
            for position, value in enumerate(args):
                _dumps(value, f"{where}argument {position}")
            for key, value in kwargs.items():
                _dumps(value, f"{where}keyword argument {key!r}")
            raise
        total += len(blob)
        if total > max_size:
            raise SerializationError(
                f"the payload of {getattr(fn, '__qualname__', fn)!r} exceeds max_payload_size="
                f"{format_memory(max_size)} (already {total:,} bytes at task {task}); put "
                "large data in files on the cluster and pass their paths, or raise "
                "max_payload_size"
            )
        arguments.append(blob)
    return Payload(function, arguments)


class _RemoteTraceback(Exception):
    """Carries the remote traceback text as the `__cause__` of a re-raised exception."""

    def __str__(self) -> str:
        return f"\n\nRemote traceback:\n{self.args[0]}"


def decode_result(data: bytes, *, job_id: str | None = None) -> Any:
    """Return the task's value, or raise what the task raised (as its own type)."""
    try:
        body = _runner.unframe_result(data)
    except ValueError as exc:
        raise ResultIntegrityError(f"result of job {job_id} is unusable: {exc}") from None
    try:
        outcome = cloudpickle.loads(body)
    except Exception as exc:
        raise SerializationError(
            f"the result of job {job_id} cannot be unpickled here: {exc}. Is every "
            "module it needs importable in this Python?"
        ) from exc
    if outcome["ok"]:
        return outcome["value"]
    kind = outcome.get("kind")
    if kind == "exit":
        raise JobFailedError(
            f"the task called sys.exit({outcome['message']})",
            job_id=job_id,
            exit_code=outcome["code"],
        )
    if kind == "unpicklable-result":
        raise SerializationError(f"job {job_id}: {outcome['message']}")
    remote_tb = outcome.get("traceback", "")
    error = outcome.get("exception")
    if not isinstance(error, BaseException):
        raise RemoteError(
            f"{outcome.get('type')}: {outcome.get('message')}\n\nRemote traceback:\n{remote_tb}",
            type_name=str(outcome.get("type", "")),
            traceback=remote_tb,
        )
    error.add_note(f"Remote traceback (job {job_id}):\n{remote_tb.rstrip()}")
    raise error from _RemoteTraceback(remote_tb)
