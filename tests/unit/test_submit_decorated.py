"""`@cluster`-decorated functions given to Client.submit/map and ClientView.submit/map.

What is pickled must be the user's own function: each entry point's payload is
unpickled and called in ``python -I -S`` with only cloudpickle on its path, where
clustrix cannot be imported (the wrapper would fail there with ModuleNotFoundError).
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import cloudpickle
import pytest

from clustrix import Client, ClusterConfig, ConfigError, cluster
from clustrix._job import JobControl
from clustrix._units import parse_memory
from clustrix.backends.base import Backend, Stream, Submission

GB = parse_memory("1GB")


@cluster(cores=2, memory="1GB", extra={"qos": "low", "comment": "deco"})
def square(x: int) -> int:
    return x * x


@cluster(config=ClusterConfig(cluster_type="ssh", cluster_host="192.0.2.9"), cores=3)
def bound_square(x: int) -> int:
    return x * x


class Recorder(Backend):
    """Takes submissions and keeps them (nothing runs)."""

    detaches = False

    def __init__(self) -> None:
        self.submissions: list[Submission] = []

    async def submit(self, submission: Submission) -> None:
        self.submissions.append(submission)

    async def cancel(self, jobs: Sequence[JobControl[Any]]) -> None:
        for job in jobs:
            job.cancelled_before_start()

    async def read_output(self, job: JobControl[Any], stream: Stream) -> str:
        return ""

    async def aclose(self, *, cancel_running: bool) -> None:
        for submission in self.submissions:
            for job in submission.jobs:
                job.cancelled_before_start()


def run_without_clustrix(submission: Submission, tmp_path: Path) -> list[Any]:
    """Call the payload's function on each task's arguments where clustrix is absent."""
    lib = tmp_path / "lib"
    if not lib.exists():
        shutil.copytree(Path(cloudpickle.__file__).parent, lib / "cloudpickle")
    (tmp_path / "fn.pkl").write_bytes(submission.payload.function)
    args = []
    for i, blob in enumerate(submission.payload.arguments):
        (tmp_path / f"args{i}.pkl").write_bytes(blob)
        args.append(f"args{i}.pkl")
    code = textwrap.dedent(
        """
        import importlib.util, sys
        sys.path.insert(0, sys.argv[1])
        assert importlib.util.find_spec("clustrix") is None, "clustrix is importable"
        import cloudpickle
        fn = cloudpickle.loads(open(sys.argv[2], "rb").read())
        out = []
        for path in sys.argv[3:]:
            args, kwargs = cloudpickle.loads(open(path, "rb").read())
            out.append(fn(*args, **kwargs))
        sys.stdout.buffer.write(cloudpickle.dumps(out))
        """
    )
    done = subprocess.run(
        [sys.executable, "-I", "-S", "-c", code, str(lib), "fn.pkl", *args],
        cwd=tmp_path,
        capture_output=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()
    result: list[Any] = cloudpickle.loads(done.stdout)
    return result


async def submitted(client: Client, start: Callable[[Client], object]) -> Submission:
    recorder = Recorder()
    client._backend_for = lambda config: recorder  # type: ignore[method-assign]
    start(client)
    for _ in range(1000):
        if recorder.submissions:
            return recorder.submissions[0]
        await asyncio.sleep(0.001)
    raise AssertionError("nothing was submitted")


ENTRY_POINTS: dict[str, Callable[[Client], object]] = {
    "Client.submit": lambda c: c.submit(square, 3),
    "Client.map": lambda c: c.map(square, [1, 2, 3], progress=False),
    "ClientView.submit": lambda c: c.options(cores=4).submit(square, 3),
    "ClientView.map": lambda c: c.options(cores=4).map(square, [1, 2, 3], progress=False),
}


@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
async def test_each_entry_point_sends_the_plain_function(entry: str, tmp_path: Path) -> None:
    async with Client(cluster_type="local") as client:
        submission = await submitted(client, ENTRY_POINTS[entry])
    expected = [9] if entry.endswith("submit") else [1, 4, 9]
    assert run_without_clustrix(submission, tmp_path) == expected
    # the decorator's options apply under the call's
    assert submission.resources.cores == (4 if entry.startswith("ClientView") else 2)
    assert submission.resources.memory == GB
    assert submission.resources.extra == {"qos": "low", "comment": "deco"}


async def test_the_views_options_win_and_extra_is_merged() -> None:
    async with Client(cluster_type="local") as client:
        view = client.options(memory="2GB", extra={"qos": "high"})
        submission = await submitted(client, lambda c: view.submit(square, 1))
    assert submission.resources.memory == 2 * GB
    assert submission.resources.cores == 2
    assert submission.resources.extra == {"qos": "high", "comment": "deco"}


async def test_an_explicit_client_decides_where_a_bound_function_runs(tmp_path: Path) -> None:
    async with Client(cluster_type="local") as client:
        submission = await submitted(client, lambda c: c.submit(bound_square, 5))
    assert submission.config.cluster_type == "local"  # not the decorator's ssh host
    assert submission.resources.cores == 3
    assert run_without_clustrix(submission, tmp_path) == [25]


async def test_decorating_a_decorated_function_keeps_one_wrapper(tmp_path: Path) -> None:
    twice = cluster(cores=6)(square)
    assert twice.__wrapped__ is square.__wrapped__
    assert twice.cluster_options.cores == 6
    assert twice.cluster_options.memory == GB
    async with Client(cluster_type="local") as client:
        submission = await submitted(client, lambda c: twice.options(cores=1)(7))
    assert run_without_clustrix(submission, tmp_path) == [49]


@cluster(cores=2)
def doubled(xs: list[int]) -> list[int]:
    out = []
    for x in xs:
        out.append(2 * x)
    return out


@pytest.mark.parametrize(
    "entry",
    ["call", "RemoteFunction.map", "Client.submit", "Client.map", "ClientView.submit"],
)
async def test_every_entry_point_ships_the_loop_parallelized_function(entry: str) -> None:
    starts: dict[str, Callable[[Client], object]] = {
        "call": lambda c: doubled([1, 2]),
        "RemoteFunction.map": lambda c: doubled.map([[1, 2]], progress=False),
        "Client.submit": lambda c: c.submit(doubled, [1, 2]),
        "Client.map": lambda c: c.map(doubled, [[1, 2]], progress=False),
        "ClientView.submit": lambda c: c.options(memory="1GB").submit(doubled, [1, 2]),
    }
    async with Client(cluster_type="local") as client:
        submission = await submitted(client, starts[entry])
    shipped = cloudpickle.loads(submission.payload.function)
    plain = doubled.__wrapped__
    assert shipped.__qualname__ == "doubled"
    assert shipped.__code__.co_code != plain.__code__.co_code  # the loop was rewritten
    assert submission.resources.cores == 2


async def test_the_views_parallel_false_sends_the_function_as_it_is() -> None:
    async with Client(cluster_type="local") as client:
        view = client.options(parallel=False)
        submission = await submitted(client, lambda c: view.submit(doubled, [1, 2]))
    shipped = cloudpickle.loads(submission.payload.function)
    assert shipped.__code__.co_code == doubled.__wrapped__.__code__.co_code


@pytest.mark.parametrize("entry", ["RemoteFunction.map", "Client.map", "ClientView.map"])
async def test_every_map_checks_its_arguments_before_submitting(entry: str) -> None:
    recorder = Recorder()
    async with Client(cluster_type="local") as client:
        client._backend_for = lambda config: recorder  # type: ignore[method-assign]
        maps: dict[str, Callable[..., object]] = {
            "RemoteFunction.map": square.map,
            "Client.map": lambda *a, **k: client.map(square, *a, **k),
            "ClientView.map": lambda *a, **k: client.options(cores=1).map(square, *a, **k),
        }
        start = maps[entry]
        with pytest.raises(TypeError, match="at least one iterable"):
            start()
        with pytest.raises(TypeError, match="chunksize=0 must be a positive integer"):
            start([1], chunksize=0)
        with pytest.raises(ConfigError, match="max_concurrent"):
            start([1], max_concurrent=0)
        assert recorder.submissions == []  # nothing was submitted by the bad calls
        sweep = start([1, 2], max_concurrent=1, chunksize=2, progress=False)
        for _ in range(1000):
            if recorder.submissions:
                break
            await asyncio.sleep(0.001)
        assert len(recorder.submissions) == 1 and len(sweep) == 2  # type: ignore[arg-type]
        assert recorder.submissions[0].resources.max_concurrent == 1
        assert recorder.submissions[0].chunksize == 2
