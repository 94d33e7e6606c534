"""Reattach to a Kubernetes Job by its key, against the fake API server + cluster: a
fresh Client (the first one gone) finds the Job by its name and key label, collects
the pods that ended meanwhile from their logs and follows those still running."""

from __future__ import annotations

from pathlib import Path

import pytest

from clustrix import Client, JobLostError, JobState, Sweep

from .conftest import Kube
from .test_kubernetes import created_jobs, wait_for_file, wait_until

TASKS = 10


async def test_a_fresh_client_attaches_to_a_sweep_by_its_key(
    fake_kube: Kube, tmp_path: Path
) -> None:
    server = fake_kube.server
    assert server is not None
    config = fake_kube.config(records_path=tmp_path / "records.db")
    ready, later = tmp_path / "ready", tmp_path / "later"
    ready.touch()
    paths = [str(ready if i % 2 == 0 else later) for i in range(TASKS)]
    async with Client(config) as first:
        sweep = first.map(wait_for_file, paths, range(TASKS), progress=False)
        evens = sweep[::2]
        await wait_until(lambda: all(job.done() for job in evens), timeout=120)
        await wait_until(lambda: all(j.state is JobState.RUNNING for j in sweep[1::2]), 120)
    # The first client detached: the odd tasks still run on the cluster.
    async with Client(config) as second:
        attached = await second.attach(sweep.key)
        assert isinstance(attached, Sweep) and attached.key == sweep.key
        assert [job.key for job in attached] == [job.key for job in sweep]
        later.touch()
        assert await attached == list(range(TASKS))
        assert [job.job_id for job in attached] == [job.job_id for job in sweep]
        records = await second.jobs(function="wait_for_file")
        assert {r.state for r in records} == {JobState.COMPLETED}
        assert all(r.collected and r.native_id for r in records)
    assert len(created_jobs(server)) == 1  # attaching created nothing


async def test_attaching_to_a_deleted_job_ends_lost(fake_kube: Kube, tmp_path: Path) -> None:
    server = fake_kube.server
    assert server is not None
    config = fake_kube.config(records_path=tmp_path / "records.db")
    async with Client(config) as first:
        job = first.submit(wait_for_file, str(tmp_path / "never"), 1)
        await wait_until(lambda: job.state is JobState.RUNNING, timeout=120)
    (manifest,) = server.items("jobs")
    server.delete("jobs", "default", manifest["metadata"]["name"], "Foreground")
    async with Client(config) as second:
        attached = await second.attach(job.key)
        with pytest.raises(JobLostError, match="is gone"):
            await attached
