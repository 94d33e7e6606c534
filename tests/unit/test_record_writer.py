"""The Client records every submission and state change through its `RecordWriter`."""

from __future__ import annotations

import asyncio
import logging
import threading
from pathlib import Path
from typing import Any

import pytest

from clustrix import Client, JobState
from clustrix._record_types import JobUpdate, Target
from clustrix._record_writer import NewSubmission, RecordWriter
from clustrix._records import RecordStore
from clustrix.backends.local import LocalBackend


def square(x: int) -> int:
    return x * x


def explode(x: int) -> int:
    raise ValueError(f"bad {x}")


async def test_a_sweep_is_recorded_before_it_is_submitted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "records.db"
    seen: list[Any] = []
    real_submit = LocalBackend.submit

    async def submit(self: LocalBackend, submission: Any) -> None:
        # What another process would read at the moment the submission is sent.
        seen.append(await asyncio.to_thread(RecordStore(path).sweep, submission.key))
        await real_submit(self, submission)

    monkeypatch.setattr(LocalBackend, "submit", submit)
    async with Client(cluster_type="local", records_path=path) as client:
        sweep = client.map(square, range(5), progress=False)
        assert await sweep == [0, 1, 4, 9, 16]
        failing = client.submit(explode, 7)
        with pytest.raises(ValueError, match="bad 7"):
            await failing
    before = seen[0]
    assert before is not None and before.counts() == {"PENDING": 5}
    assert before.submission.function == "square" and before.submission.sweep
    after = RecordStore(path).sweep(sweep.key)
    assert after is not None and after.counts() == {"COMPLETED": 5}
    assert after.collected  # marked collected by this process
    assert [job.native_id for job in after.jobs] == [job.job_id for job in sweep]
    failed = RecordStore(path).get(failing.key)
    assert failed is not None and failed.state is JobState.FAILED
    assert failed.error is not None and "ValueError: bad 7" in failed.error
    assert failed.started_at is not None and failed.ended_at is not None


async def test_a_broken_store_never_fails_a_job(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    caplog.set_level(logging.WARNING, logger="clustrix")
    async with Client(cluster_type="local", records_path=blocker / "records.db") as client:
        assert await client.map(square, range(3), progress=False) == [0, 1, 4]
        assert await client.submit(square, 4) == 16
    warnings = [r for r in caplog.records if "cannot write its job records" in r.message]
    assert len(warnings) == 1


async def test_ten_thousand_changes_are_one_transaction_off_the_loop(tmp_path: Path) -> None:
    store = RecordStore(tmp_path / "records.db")
    writer = RecordWriter(store, interval=60.0)  # only explicit flushes write
    keys = [f"cxsweep.{i}" for i in range(10_000)]
    assert await writer.record_submission(
        NewSubmission("cxsweep", "f", Target("slurm", "h", 22, "u"), keys, True, "~/r")
    )
    threads: list[threading.Thread] = []
    real_write = store._write

    def write(body: Any) -> Any:
        threads.append(threading.current_thread())
        return real_write(body)

    store._write = write  # type: ignore[method-assign]
    for i, key in enumerate(keys):  # what a poll tick of 10,000 live jobs appends
        writer.changed(key, JobState.QUEUED, f"1_{i}", None)
        writer.changed(key, JobState.RUNNING, f"1_{i}", None)
    before = store.transactions
    assert await writer.flush()
    assert store.transactions == before + 1
    assert threads and threading.main_thread() not in threads  # written off the loop
    writer.update(JobUpdate(keys[0], JobState.COMPLETED))
    writer.collected(keys[0])
    await writer.aclose()
    sweep = store.sweep("cxsweep")
    assert sweep is not None and sweep.counts() == {"RUNNING": 9_999, "COMPLETED": 1}
    assert sweep.jobs[0].collected and sweep.jobs[9_999].native_id == "1_9999"
