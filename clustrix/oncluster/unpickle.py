"""Unpickling a payload without importing cloudpickle when it is not needed.

Shipped to clusters beside the runner (as ``clustrix_unpickle.py``), so it imports only
the standard library. Every array element pays its imports: cloudpickle costs about
20 ms and a dozen standard modules (dataclasses, inspect, logging, typing...), more
than a tiny task. A function pickled by value names only a few of cloudpickle's
reconstructors; they are rebuilt here as cloudpickle 3 defines them (checked against
the installed cloudpickle by tests/unit/test_unpickle.py), and any other name, or any
cloudpickle that is not version 3, loads cloudpickle itself.
"""

from __future__ import annotations

import _pickle  # pickle's C half: `pickle` itself imports re, struct, _compat_pickle...
import builtins
import io
import os
import sys
import types

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs milliseconds to import: only for the type checker
    from typing import Any

PROTOCOL = 5  # cloudpickle.DEFAULT_PROTOCOL: pickle.HIGHEST_PROTOCOL on every Python here


def _builtin_type(name: str) -> Any:
    return type if name == "ClassType" else getattr(types, name)


def _make_function(
    code: Any, globals_: dict[str, Any], name: str, argdefs: Any, closure: Any
) -> Any:
    globals_["__builtins__"] = builtins.__dict__
    return types.FunctionType(code, globals_, name, argdefs, closure)


def _function_setstate(obj: Any, state: tuple[dict[str, Any], dict[str, Any]]) -> None:
    state_dict, slotstate = state
    obj.__dict__.update(state_dict)
    obj_globals = slotstate.pop("__globals__")
    obj_closure = slotstate.pop("__closure__")
    slotstate.pop("_cloudpickle_submodules")  # only held the submodules while loading
    obj.__globals__.update(obj_globals)
    obj.__globals__["__builtins__"] = builtins.__dict__
    if obj_closure is not None:
        for i, cell in enumerate(obj_closure):
            try:
                value = cell.cell_contents
            except ValueError:  # an empty cell
                continue
            obj.__closure__[i].cell_contents = value
    for key, value in slotstate.items():
        setattr(obj, key, value)


def _subimport(name: str) -> Any:
    __import__(name)
    return sys.modules[name]


_LIGHT: dict[str, Any] = {
    "_builtin_type": _builtin_type,
    "_make_function": _make_function,
    "_function_setstate": _function_setstate,
    "_make_empty_cell": types.CellType,
    "_make_cell": types.CellType,
    "subimport": _subimport,
}


class _LightUnpickler(_pickle.Unpickler):
    used = False

    def find_class(self, module: str, name: str) -> Any:
        if module == "cloudpickle.cloudpickle" and name in _LIGHT and _cloudpickle_is_3():
            self.used = True
            return _LIGHT[name]
        return super().find_class(module, name)


def _cloudpickle_is_3() -> bool:
    """Whether the cloudpickle an import would find is the major version the
    reconstructors mirror (the first on `sys.path`; anything else: not known to be)."""
    global _IS_3
    if _IS_3 is None:
        _IS_3 = False
        for entry in sys.path:
            try:
                with open(os.path.join(entry or ".", "cloudpickle", "__init__.py")) as handle:
                    _IS_3 = '__version__ = "3.' in handle.read()
                break
            except OSError:
                continue
    return _IS_3


_IS_3: bool | None = None


def loads(data: bytes) -> Any:
    """`cloudpickle.loads`, importing cloudpickle only if the payload needs it."""
    unpickler = _LightUnpickler(io.BytesIO(data))
    try:
        return unpickler.load()
    except Exception:
        if not unpickler.used:
            raise
    import cloudpickle  # whatever failed, cloudpickle's own reconstructors decide

    return cloudpickle.loads(data)


_PLAIN = frozenset((type(None), bool, int, float, complex, str, bytes))
_CONTAINERS = frozenset((list, tuple, set, frozenset))


def plain(value: Any, budget: int = 10_000) -> bool:
    """Whether `value` is built of builtin scalars and containers only (pickle and
    cloudpickle pickle those alike), judged within `budget` objects."""
    stack = [value]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind in _PLAIN:
            continue
        if kind is not dict and kind not in _CONTAINERS:
            return False
        budget -= len(item) + 1
        if budget < 0:
            return False
        stack.extend(item.items() if kind is dict else item)
    return True


class _JsonContext:
    """What `_json.make_scanner` reads from a decoder (json.JSONDecoder's defaults)."""

    strict = True
    object_hook = object_pairs_hook = None
    parse_float, parse_int = float, int
    memo: dict[str, str] = {}

    @staticmethod
    def parse_constant(name: str) -> float:
        return {"-Infinity": -float("inf"), "Infinity": float("inf"), "NaN": float("nan")}[name]


def json_loads(text: str) -> Any:
    """`json.loads` of a document clustrix wrote, with json's C scanner only: the json
    package imports re (and with it enum, functools...) for what the runner never reads."""
    try:
        import _json

        scanner = _json.make_scanner(_JsonContext())  # type: ignore[arg-type]  # duck-typed
        value, end = scanner(text, 0)
    except (ImportError, StopIteration, ValueError):
        end = -1
    if end != len(text.rstrip()):
        import json

        return json.loads(text)
    return value
