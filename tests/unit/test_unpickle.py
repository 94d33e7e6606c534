"""The runner's light unpickler (`clustrix.oncluster.unpickle`): functions pickled by
value load without importing cloudpickle, exactly as cloudpickle would load them."""

from __future__ import annotations

import enum
import json
import shutil
import subprocess
import sys
import types
from pathlib import Path

import cloudpickle
import pytest

from clustrix._payload import pickle_dumps
from clustrix.oncluster import unpickle
from clustrix.oncluster.runner import _encode

# Functions of a module that is not importable: cloudpickle pickles them by value.
SOURCE = '''
import math
SCALE = 3

def plain(x: int, y: int = 2, *, z: int = 5) -> float:
    """A docstring."""
    return math.sqrt(x) * SCALE + y + z + helper(x)

def helper(n):
    return 0 if n <= 0 else 1 + helper(n - 1)

def closure(k):
    offset = [k]
    def inner(x):
        return (lambda v: v + offset[0])(x)
    return inner

def recursive_inner():
    def fact(n):
        return 1 if n == 0 else n * fact(n - 1)
    return fact

class Point:
    def __init__(self, x):
        self.x = x

def with_class(x):
    return Point(x).x * 2

async def coroutine(x):
    return x + 1

def with_attribute(x):
    return x
with_attribute.tag = "kept"
'''


def _corpus() -> dict[str, bytes]:
    module = types.ModuleType("clustrix_not_importable_corpus")
    exec(compile(SOURCE, "corpus.py", "exec"), module.__dict__)
    functions = {
        "plain": module.plain,
        "closure": module.closure(10),
        "recursive_inner": module.recursive_inner(),
        "with_class": module.with_class,
        "coroutine": module.coroutine,
        "with_attribute": module.with_attribute,
    }
    return {name: pickle_dumps(fn) for name, fn in functions.items()}


PROBE = """
import asyncio, inspect, json, pickle, sys
sys.path.insert(0, sys.argv[1])
import clustrix_unpickle as light

def describe(fn, arg):
    value = fn(arg)
    if inspect.iscoroutine(value):
        value = asyncio.run(value)
    return {
        "value": value, "name": fn.__name__, "qualname": fn.__qualname__,
        "module": fn.__module__, "doc": fn.__doc__, "defaults": fn.__defaults__,
        "kwdefaults": fn.__kwdefaults__, "annotations": repr(fn.__annotations__),
        "dict": repr(fn.__dict__), "globals": sorted(fn.__globals__),
    }

blobs = {name: bytes.fromhex(blob) for name, blob in json.load(sys.stdin).items()}
out = {"light": {}, "imported": {}}
for name, blob in blobs.items():
    out["light"][name] = describe(light.loads(blob), 4)
    out["imported"][name] = "cloudpickle" in sys.modules
import cloudpickle
out["cloudpickle"] = {name: describe(cloudpickle.loads(b), 4) for name, b in blobs.items()}
print(json.dumps(out, default=repr))
"""


def test_functions_by_value_load_as_cloudpickle_loads_them(tmp_path: Path) -> None:
    shutil.copy(unpickle.__file__, tmp_path / "clustrix_unpickle.py")
    blobs = {name: blob.hex() for name, blob in _corpus().items()}
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(tmp_path)],
        input=json.dumps(blobs),
        capture_output=True,
        text=True,
        check=True,
    )
    out = json.loads(done.stdout)
    assert out["light"] == out["cloudpickle"]
    assert out["light"]["plain"]["value"] == 2 * 3 + 2 + 5 + 4
    assert out["light"]["closure"]["value"] == 14
    assert out["light"]["recursive_inner"]["value"] == 24
    assert out["light"]["with_class"]["value"] == 8
    assert out["light"]["coroutine"]["value"] == 5
    assert out["light"]["with_attribute"]["dict"] == "{'tag': 'kept'}"
    # Plain functions, closures, modules they use: no cloudpickle. A class pickled by
    # value needs cloudpickle's own reconstructors, which are then imported.
    imported = out["imported"]
    assert not any(imported[name] for name in ("plain", "closure", "recursive_inner"))
    assert imported["with_class"]


class Colour(enum.IntEnum):
    RED = 1


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, True),
        ([1, 2.5, "a", b"b", True, 1j, None], True),
        ({"k": (1, frozenset({2})), 3: {4}}, True),
        (Colour.RED, False),  # a subclass of int: cloudpickle decides
        ([object()], False),
        ({"k": [lambda: 1]}, False),
        (list(range(20_000)), False),  # too large to judge: cloudpickle decides
    ],
)
def test_plain_values_are_pickled_without_cloudpickle(value: object, expected: bool) -> None:
    assert unpickle.plain(value) is expected
    outcome = {"ok": True, "value": value}
    loaded = cloudpickle.loads(_encode(outcome))
    if expected:
        assert loaded == outcome


@pytest.mark.parametrize(
    "text",
    [
        json.dumps({"format": 1, "count": 3, "offsets": [0, 9, 18, 27], "time_limit": None}),
        json.dumps({"s": 'é\n"', "f": 1.5e-3, "n": [True, False, None, -2], "d": {}}),
        '{"a": NaN, "b": -Infinity}\n',
        '{"a": 1} trailing',  # not one document: json's own error
        "",
    ],
)
def test_json_loads_matches_json(text: str) -> None:
    try:
        expected = json.loads(text)
    except ValueError as error:
        with pytest.raises(type(error)):
            unpickle.json_loads(text)
        return
    got = unpickle.json_loads(text)
    assert json.dumps(got, sort_keys=True) == json.dumps(expected, sort_keys=True)
