"""Pickling calls and decoding results, without any backend."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import traceback
from pathlib import Path

import cloudpickle
import pytest

from clustrix import RemoteError, ResultIntegrityError, SerializationError
from clustrix._payload import decode_result, serialize_call
from clustrix.oncluster.runner import _encode, _outcome, frame_result

BIG = 1 << 30


def run_remotely(payload_function: bytes, args: bytes, cwd: Path) -> object:
    """Unpickle and call in a fresh interpreter that has not imported the test modules."""
    code = textwrap.dedent(
        """
        import sys, cloudpickle
        fn = cloudpickle.loads(open(sys.argv[1], "rb").read())
        args, kwargs = cloudpickle.loads(open(sys.argv[2], "rb").read())
        sys.stdout.buffer.write(cloudpickle.dumps(fn(*args, **kwargs)))
        """
    )
    (cwd / "fn.pkl").write_bytes(payload_function)
    (cwd / "args.pkl").write_bytes(args)
    out = subprocess.run(
        [sys.executable, "-I", "-c", code, "fn.pkl", "args.pkl"],
        cwd=cwd,
        capture_output=True,
        check=True,
    )
    return cloudpickle.loads(out.stdout)


def test_closures_and_lambdas_round_trip(tmp_path: Path) -> None:
    factor = 7

    def scaled(x: int) -> int:
        return x * factor

    payload = serialize_call(scaled, [((6,), {})], max_size=BIG)
    assert run_remotely(payload.function, payload.arguments[0], tmp_path) == 42
    payload = serialize_call(lambda a, b=1: a + b, [((1,), {"b": 2})], max_size=BIG)
    assert run_remotely(payload.function, payload.arguments[0], tmp_path) == 3


def test_function_defined_by_exec_like_a_repl(tmp_path: Path) -> None:
    namespace: dict[str, object] = {"__name__": "__main__"}
    exec("def repl_fn(x):\n    return [x, x]\n", namespace)
    payload = serialize_call(namespace["repl_fn"], [((5,), {})], max_size=BIG)  # type: ignore[arg-type]
    assert run_remotely(payload.function, payload.arguments[0], tmp_path) == [5, 5]


def test_users_own_module_outside_site_packages_is_pickled_by_value(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "helpers_for_clustrix_test.py").write_text(
        "from dataclasses import dataclass\n"
        "@dataclass\nclass Point:\n    x: int\n    y: int\n"
        "def norm1(p):\n    return abs(p.x) + abs(p.y)\n"
    )
    monkeypatch.syspath_prepend(str(project))
    import helpers_for_clustrix_test as helpers  # type: ignore[import-not-found]

    payload = serialize_call(helpers.norm1, [((helpers.Point(3, -4),), {})], max_size=BIG)
    remote = tmp_path / "remote"  # cannot import helpers_for_clustrix_test
    remote.mkdir()
    assert run_remotely(payload.function, payload.arguments[0], remote) == 7


def test_unpicklable_argument_is_named() -> None:
    with pytest.raises(SerializationError, match=r"argument 1 \(a _thread.lock"):
        serialize_call(print, [((1, threading.Lock()), {})], max_size=BIG)
    with pytest.raises(SerializationError, match="keyword argument 'lock'"):
        serialize_call(print, [((), {"lock": threading.Lock()})], max_size=BIG)
    with pytest.raises(SerializationError, match="task 2, argument 0"):
        serialize_call(print, [((1,), {}), ((2,), {}), ((threading.Lock(),), {})], max_size=BIG)


def test_unpicklable_global_of_the_function_is_named() -> None:
    lock = threading.Lock()

    def uses_lock() -> None:
        with lock:
            pass

    with pytest.raises(
        SerializationError, match="uses_lock' cannot be pickled: it refers to the variable 'lock'"
    ):
        serialize_call(uses_lock, [((), {})], max_size=BIG)


def test_payload_size_guard() -> None:
    with pytest.raises(SerializationError, match="max_payload_size"):
        serialize_call(len, [((b"x" * 5000,), {})], max_size=1024)
    payload = serialize_call(len, [((b"x" * 500,), {})], max_size=4096)
    assert payload.size < 4096


def framed(outcome: dict[str, object]) -> bytes:
    return frame_result(_encode(outcome))


def test_value_round_trip() -> None:
    assert decode_result(framed(_outcome(sum, ([1, 2, 3],), {}))) == 6


def test_tampered_or_truncated_result_is_never_unpickled() -> None:
    data = framed(_outcome(sum, ([1, 2],), {}))
    with pytest.raises(ResultIntegrityError, match="digest"):
        decode_result(data[:-1] + bytes([data[-1] ^ 1]))
    with pytest.raises(ResultIntegrityError, match="truncated"):
        decode_result(data[:-3])
    with pytest.raises(ResultIntegrityError, match="header"):
        decode_result(b"garbage")


class CustomError(Exception):
    pass


def failing(x: int) -> None:
    raise CustomError(f"bad input {x}")


def test_user_exception_is_reraised_as_itself_with_remote_traceback() -> None:
    data = framed(_outcome(failing, (3,), {}))
    with pytest.raises(CustomError, match="bad input 3") as info:
        decode_result(data, job_id="local:1")
    error = info.value
    notes = "\n".join(getattr(error, "__notes__", []))
    assert "Remote traceback" in notes and "failing" in notes
    assert "raise CustomError" in str(error.__cause__)
    assert "Remote traceback" in "".join(traceback.format_exception(error))


class Unpicklable(Exception):
    def __reduce__(self):  # type: ignore[no-untyped-def]
        raise TypeError("nope")


def test_exception_that_cannot_travel_becomes_remote_error() -> None:
    def raise_it() -> None:
        raise Unpicklable("deep")

    with pytest.raises(RemoteError) as info:
        decode_result(framed(_outcome(raise_it, (), {})))
    assert info.value.type_name.endswith("Unpicklable")
    assert "raise_it" in info.value.traceback


def test_unpicklable_result_is_a_serialization_error() -> None:
    with pytest.raises(SerializationError, match="return value"):
        decode_result(framed(_outcome(threading.Lock, (), {})))


def test_replicate_scope_payload_and_all() -> None:
    import pickle

    from clustrix._environment import environment_spec

    spec = environment_spec([pickle.dumps("rich")])
    names = {line.split("==")[0].lower() for line in spec.requirements}
    assert {"rich", "pygments", "markdown-it-py", "mdurl"} <= names  # with its requirements
    assert "pytest" not in names
    everything = environment_spec([], scope="all")
    assert "pytest" in {line.split("==")[0].lower() for line in everything.requirements}
    assert spec.digest != everything.digest


def test_replicate_sees_imports_inside_the_function_body() -> None:
    """`import mdurl` inside a function is found from the pickled code's names, though
    nothing here has imported mdurl (an installed distribution) yet."""
    import sys

    import cloudpickle

    from clustrix._environment import mentioned_modules

    def uses_it() -> None:
        import mdurl  # noqa: F401

    assert "mdurl" not in sys.modules
    assert "mdurl" in mentioned_modules([cloudpickle.dumps(uses_it)])
