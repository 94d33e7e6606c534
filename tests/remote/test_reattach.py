"""Reattach after a crash, through real processes, on the real lab (Slurm, SGE, PBS, ssh).

A child process submits a sweep of one task per element (200 on Slurm, 50 on the ssh
backend) and dies by
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

import clustrix
from clustrix import Client, ClusterConfig, JobLostError, Sweep
from clustrix._records import RecordStore
from clustrix.transport.ssh import SSHTransport

from .conftest import ssh_config
from .test_conformance import submissions_recorded

pytestmark = pytest.mark.lab

# One element per task: 200 on Slurm (the figure); on the ssh backend, where the
# lab's 2 CPUs run the elements a few at a time, 50 show the same and keep the suite short.
TASKS = {"slurm": 200, "ssh": 50}
CHILD = """
import asyncio, json, sys
from clustrix import Client, ClusterConfig

def work(x, log):
    import os, time
    with open(os.path.expanduser(log), "a") as out:  # one line per run of a task
        out.write(f"{x}\\n")
    time.sleep(1 + x % 2)
    return x * x + 1

async def main():
    async with Client(ClusterConfig(**json.loads(sys.argv[1]))) as client:
        tasks = int(sys.argv[2])
        sweep = client.map(work, range(tasks), [sys.argv[3]] * tasks, chunksize=1, progress=False)
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


def start_child(config: ClusterConfig, tmp_path: Path, crash: str | None) -> tuple[Any, str]:
    kind = config.cluster_type
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env = dict(os.environ)
    if crash:
        env["CLUSTRIX_TEST_CRASH"] = crash
    fields = json.loads(config.model_dump_json(exclude_unset=True))
    child = subprocess.Popen(
        [sys.executable, str(script), json.dumps(fields), str(TASKS[kind]), ran_log(config)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert child.stdout is not None
    key = child.stdout.readline().strip()
    assert key.startswith("cx"), key
    return child, key


def ran_log(config: ClusterConfig) -> str:
    return f"{config.remote_work_dir}/ran.log"


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
    count = TASKS[kind]
    child, key = start_child(config, tmp_path, "submitted" if crash else None)
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
    assert recorded is not None and len(recorded.jobs) == count
    if crash:  # the answer never reached the records: attach must find the job by name
        assert not any(j.native_id for j in recorded.jobs)
    async with Client(config) as client:
        sweep = await client.attach(key)
        assert isinstance(sweep, Sweep) and len(sweep) == count
        results = await asyncio.wait_for(asyncio.ensure_future(_gather(sweep)), 600)
    done = store.sweep(key)
    assert done is not None and done.collected and done.counts() == {"COMPLETED": count}
    submitted: set[str] = set()
    if kind != "ssh":
        for _ in range(100):  # accounting may lag a moment behind
            submitted = submissions_recorded(kind, lab, key)
            if submitted:
                break
            await asyncio.sleep(0.3)
    ran = (Path(lab["home"]) / ran_log(config).removeprefix("~/")).read_text().split()
    assert sorted(map(int, ran)) == list(range(count))  # every task ran exactly once
    return results, submitted


@pytest.mark.parametrize("crash", [False, True], ids=["killed-after-ids", "killed-mid-submit"])
@pytest.mark.parametrize("kind", ["slurm", "ssh"])
async def test_a_new_process_collects_a_crashed_sweep(
    kind: str, crash: bool, lab: dict[str, Any], remote_dir: str, tmp_path: Path
) -> None:
    results, submitted = await crash_and_attach(kind, lab, remote_dir, tmp_path, crash)
    assert results == [x * x + 1 for x in range(TASKS[kind])]
    if kind == "slurm":
        assert len(submitted) == 1, submitted
    print(f"{kind} crash={crash}: {len(results)} results, submissions {sorted(submitted)}")


async def test_a_sweep_that_never_reached_the_scheduler_ends_lost(
    lab: dict[str, Any], remote_dir: str, tmp_path: Path
) -> None:
    """Killed after the record, before sbatch was sent: attach says so, never hangs."""
    config = lab_config("slurm", lab, remote_dir, tmp_path / "records.db")
    child, key = start_child(config, tmp_path, "submitting")
    child.wait(180)
    assert child.returncode == -signal.SIGKILL
    async with Client(config) as client:
        sweep = await client.attach(key)
        assert isinstance(sweep, Sweep)
        sweep.return_exceptions = True
        outcomes = await asyncio.wait_for(_gather(sweep), 120)
    assert len(outcomes) == TASKS["slurm"]
    assert all(isinstance(o, JobLostError) for o in outcomes)
    assert "not known to the cluster" in str(outcomes[0])
    assert submissions_recorded("slurm", lab, key) == set()


async def test_a_collected_and_cleaned_job_says_who_collected_it(
    lab: dict[str, Any], remote_dir: str, tmp_path: Path
) -> None:
    config = lab_config("ssh", lab, remote_dir, tmp_path / "records.db")
    async with Client(config) as first:
        job = first.submit(pow, 3, 4)
        assert await job == 81
    async with Client(config) as second:
        attached = await second.attach(job.key)
        with pytest.raises(JobLostError, match=r"is gone from the cluster \(removed after \d+@"):
            await asyncio.wait_for(attached._wait(), 60)
    # the later attach did not rewrite how the collected task ended
    record = RecordStore(tmp_path / "records.db").get(job.key)
    assert record is not None and record.state.value == "COMPLETED" and record.collected


async def test_the_sync_twin_blocks_in_result(
    lab: dict[str, Any], remote_dir: str, tmp_path: Path
) -> None:
    """`clustrix.attach` from plain code; the earlier client detached from the job."""
    config = lab_config("ssh", lab, remote_dir, tmp_path / "records.db")
    gate = f"{config.remote_work_dir}/gate"
    async with Client(config) as first:
        job = first.submit(_wait_for_gate, gate)
        await wait_for(lambda: job.job_id is not None and job.state.value == "RUNNING", 120,
                       "the job to run")  # fmt: skip
    (Path(lab["home"]) / gate.removeprefix("~/")).touch()
    attached = await asyncio.to_thread(clustrix.attach, job.key, config=config)
    assert await asyncio.to_thread(attached.result, 120) == "through"


def _wait_for_gate(path: str) -> str:
    import os
    import time

    while not os.path.exists(os.path.expanduser(path)):
        time.sleep(0.1)
    return "through"


async def test_the_run_directory_goes_only_after_the_collection_is_recorded(
    lab: dict[str, Any], remote_dir: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    records = tmp_path / "records.db"
    config = lab_config("ssh", lab, remote_dir, records)
    seen: list[Any] = []
    real_remove = SSHTransport.remove_tree

    async def remove_tree(self: SSHTransport, path: str) -> None:
        # What a process reattaching at this moment would read in the records.
        key = path.rstrip("/").rsplit("/", 1)[-1]
        seen.append(await asyncio.to_thread(RecordStore(records).sweep, key))
        await real_remove(self, path)

    monkeypatch.setattr(SSHTransport, "remove_tree", remove_tree)
    async with Client(config) as client:
        sweep = client.map(pow, [2, 3, 4], [2, 2, 2], progress=False)
        assert await sweep == [4, 9, 16]
    (before,) = [s for s in seen if s is not None and s.submission.key == sweep.key]
    assert before.collected and before.counts() == {"COMPLETED": 3}


def _slow_square(x: int) -> int:
    import time

    time.sleep(3)
    return x * x


@pytest.mark.parametrize("kind", ["sge", "pbs"])
async def test_a_fresh_client_attaches_on_sge_and_pbs(
    kind: str, lab: dict[str, Any], remote_dir: str, tmp_path: Path
) -> None:
    config = lab_config(kind, lab, remote_dir, tmp_path / "records.db")
    async with Client(config) as first:  # leaving it detaches from the running sweep
        sweep = first.map(_slow_square, range(6), chunksize=1, progress=False)
        await wait_for(lambda: all(j.job_id for j in sweep), 180, "the native ids")
    async with Client(config) as second:
        attached = await second.attach(sweep.key)
        assert isinstance(attached, Sweep)
        assert await asyncio.wait_for(_gather(attached), 600) == [x * x for x in range(6)]
    for _ in range(100):  # accounting may lag a moment behind
        submitted = submissions_recorded(kind, lab, sweep.key)
        if submitted:
            break
        await asyncio.sleep(0.3)
    assert len(submitted) == 1, submitted


async def test_each_call_of_a_micro_batch_is_attached_by_its_own_key(
    lab: dict[str, Any], remote_dir: str, tmp_path: Path
) -> None:
    """Single calls batched into one array keep their own keys in the records: a fresh
    Client attaches each call by its key and gets that call's own result."""
    config = lab_config("slurm", lab, remote_dir, tmp_path / "records.db")
    async with Client(config.model_copy(update={"batch_window": 5.0})) as first:
        jobs = [first.submit(_slow_square, x) for x in range(4)]
        await wait_for(lambda: all(j.job_id for j in jobs), 180, "the native ids")
        masters = {j.job_id.split("_")[0] for j in jobs if j.job_id}
        assert len(masters) == 1, masters  # one array: the calls were batched
    async with Client(config) as second:
        attached = [await second.attach(j.key) for j in reversed(jobs)]
        assert [a.key for a in attached] == [j.key for j in reversed(jobs)]
        results = await asyncio.wait_for(asyncio.gather(*attached), 600)
    assert results == [x * x for x in reversed(range(4))]
