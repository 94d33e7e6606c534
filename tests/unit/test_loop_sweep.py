"""parallel="sweep": a loop fanned out from the client as an array sweep (local backend)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path

import pytest

import clustrix
from clustrix import Client, JobCancelledError, JobState

from . import sweep_loops as loops


def sweep(fn):  # type: ignore[no-untyped-def]
    return clustrix.cluster(parallel="sweep")(fn)


def test_explain_says_which_loop_is_fanned_out_and_why_others_are_not() -> None:
    report = clustrix.explain(sweep(loops.collect))
    assert [(loop.parallel, loop.mode) for loop in report.loops] == [(True, "sweep")]
    assert "array sweep" in report.loops[0].reason
    busy = clustrix.explain(sweep(loops.busy_prefix)).loops[0]
    assert (busy.parallel, busy.mode) == (True, "cores")
    assert "may do more than bind a simple value" in busy.reason
    local = clustrix.explain(sweep(loops.from_a_local)).loops
    assert [(loop.mode) for loop in local] == ["sweep", None]  # the second reads `out`
    # without parallel="sweep" the same loop runs across cores
    assert clustrix.explain(clustrix.cluster(loops.collect)).loops[0].mode == "cores"


async def test_each_iteration_runs_as_its_own_task_and_the_result_is_sequential() -> None:
    async with Client(cluster_type="local"):
        seen, total, by_name, text = await sweep(loops.collect)(9)
    plain_seen, plain_total, plain_names, plain_text = loops.collect(9)
    # one task per iteration: iteration i ran as task i of the fan-out sweep
    assert seen == [(i, str(i)) for i in range(9)]
    assert [i for i, _ in plain_seen] == list(range(9))
    assert total == plain_total  # float sum in the same order: bit for bit
    assert list(by_name.items()) == list(plain_names.items())  # same insertion order
    assert text == plain_text


async def test_code_after_the_loop_runs_on_the_replayed_accumulators() -> None:
    words = ["a", "bc", "d"]
    async with Client(cluster_type="local"):
        assert await sweep(loops.after_loop)(words) == loops.after_loop(words)
        assert await sweep(loops.collect)(0) == loops.collect(0)  # no iteration at all


async def test_the_lowest_failing_iteration_is_raised() -> None:
    async with Client(cluster_type="local"):
        with pytest.raises(KeyError, match="iteration 2") as info:
            await sweep(loops.fails_at)(6, (4, 2))
    assert any("iteration 2 of the loop" in note for note in info.value.__notes__)


def test_sync_call_from_a_script_fans_out_too() -> None:
    job = sweep(loops.collect)(3)
    seen, *_ = job.result(timeout=120)
    assert seen == [(0, "0"), (1, "1"), (2, "2")]


async def test_cancelling_the_call_cancels_its_iterations(tmp_path: Path) -> None:
    async with Client(cluster_type="local"):
        job = sweep(loops.wait_for)(2, str(tmp_path))  # this machine may have 2 CPUs
        pids = [tmp_path / f"{i}.pid" for i in range(2)]
        # (the local backend may queue both tasks at one worker: one runs at a time)
        await until(lambda: any(p.exists() for p in pids))
        await job.cancel()
        assert job.state is JobState.CANCELLED
        with pytest.raises(JobCancelledError):
            await job
        running = [int(p.read_text()) for p in pids if p.exists()]
        await until(lambda: not any(alive(pid) for pid in running))


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"


async def until(condition: Callable[[], bool], timeout: float = 60) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(0.05)
