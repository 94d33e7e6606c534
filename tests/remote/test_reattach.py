"""Reattach after a crash, through real processes, on the real lab (Slurm, SGE, PBS, ssh).

A child process submits a 200-task sweep (one task per array element) and dies by
SIGKILL: either once the scheduler's ids are recorded, or right after the submission
command reached the cluster but before the child read the answer
(``CLUSTRIX_TEST_CRASH=submitted``). A fresh Client attaches by the key the child
printed and collects every result; the scheduler's accounting shows one submission.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from clustrix import (
    Client,
    ClusterConfig,
    ClusterMismatchError,
    JobLostError,
    Sweep,
    UnknownKeyError,
)
from clustrix._records import RecordStore

from .conftest import ssh_config
from .test_conformance import submissions_recorded

pytestmark = pytest.mark.lab

TASKS = 200
CHILD = """
import asyncio, json, sys
from clustrix import Client, ClusterConfig

def work(x):
    import time
    time.sleep(1 + x % 3)
    return x * x + 1

async def main():
    async with Client(ClusterConfig(**json.loads(sys.argv[1]))) as client:
        sweep = client.map(work, range(int(sys.argv[2])), chunksize=1, progress=False)
        print(sweep.key, flush=True)
        await asyncio.Event().wait()  # until killed

asyncio.run(main())
"""


def lab_config(kind: str, lab: dict[str, Any], remote_dir: str, records: Path) -> ClusterConfig:
    return ssh_config(
        lab,
        remote_dir,
        cluster_type=kind,
        cluster_port=lab["ports"][kind],
        job_poll_interval=2,
        records_path=records,
    )


def start_child(config: ClusterConfig, tmp_path: Path, crash: bool) -> tuple[Any, str]:
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env = dict(os.environ)
    if crash:
        env["CLUSTRIX_TEST_CRASH"] = "submitted"
    fields = json.loads(config.model_dump_json(exclude_unset=True))
    child = subprocess.Popen(
        [sys.executable, str(script), json.dumps(fields), str(TASKS)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert child.stdout is not None
    key = child.stdout.readline().strip()
    assert key.startswith("cx"), key
    return child, key


async def _gather(sweep: Sweep[Any]) -> list[int]:
    return list(await sweep)


async def wait_for(condition: Any, deadline: float, what: str) -> None:
    end = time.monotonic() + deadline
    while not await asyncio.to_thread(condition):
        assert time.monotonic() < end, f"timed out waiting for {what}"
        await asyncio.sleep(0.2)


async def crash_and_attach(kind: str, lab: dict[str, Any], remote_dir: str, tmp_path: Path,
                           crash: bool) -> tuple[list[int], set[str]]:  # fmt: skip
    records = tmp_path / "records.db"
    config = lab_config(kind, lab, remote_dir, records)
    child, key = start_child(config, tmp_path, crash)
    store = RecordStore(records)
    try:
        if crash:  # it kills itself once the cluster has the submission
            await asyncio.wait_for(asyncio.to_thread(child.wait), 180)
        else:

            def ids_recorded() -> bool:
                sweep = store.sweep(key)
                return sweep is not None and all(j.native_id for j in sweep.jobs)

            await wait_for(ids_recorded, 180, "the native ids in the records")
            child.send_signal(signal.SIGKILL)
            child.wait(30)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == -signal.SIGKILL
    recorded = store.sweep(key)
    assert recorded is not None and len(recorded.jobs) == TASKS
    if crash:  # the answer never reached the records: attach must find the job by name
        assert not any(j.native_id for j in recorded.jobs)
    async with Client(config) as client:
        sweep = await client.attach(key)
        assert isinstance(sweep, Sweep) and len(sweep) == TASKS
        results = await asyncio.wait_for(asyncio.ensure_future(_gather(sweep)), 600)
    done = store.sweep(key)
    assert done is not None and done.collected and done.counts() == {"COMPLETED": TASKS}
    submitted: set[str] = set()
    if kind != "ssh":
        for _ in range(100):  # accounting may lag a moment behind
            submitted = submissions_recorded(kind, lab, key)
            if submitted:
                break
            await asyncio.sleep(0.3)
    return results, submitted


@pytest.mark.parametrize("crash", [False, True], ids=["killed-after-ids", "killed-mid-submit"])
@pytest.mark.parametrize("kind", ["slurm", "ssh"])
async def test_a_new_process_collects_a_crashed_sweep(
    kind: str, crash: bool, lab: dict[str, Any], remote_dir: str, tmp_path: Path
) -> None:
    results, submitted = await crash_and_attach(kind, lab, remote_dir, tmp_path, crash)
    assert results == [x * x + 1 for x in range(TASKS)]
    if kind == "slurm":
        assert len(submitted) == 1, submitted
    print(f"{kind} crash={crash}: {len(results)} results, submissions {sorted(submitted)}")
