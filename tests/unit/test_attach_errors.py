"""`Client.attach` and `clustrix.attach` refuse clearly, before touching any cluster."""

from __future__ import annotations

from pathlib import Path

import pytest

import clustrix
from clustrix import AttachError, Client, ClusterMismatchError, UnknownKeyError
from clustrix._record_types import Target
from clustrix._records import RecordStore


async def record(path: Path, key: str, target: Target, tasks: int = 1) -> None:
    keys = [f"{key}.{i}" for i in range(tasks)] if tasks > 1 else [key]
    store = RecordStore(path)
    await store.record_submission(
        key, function="f", target=target, job_keys=keys, sweep=tasks > 1, run_dir="~/r"
    )
    await store.aclose()


async def test_an_unknown_key_is_a_lookup_error(tmp_path: Path) -> None:
    async with Client(cluster_type="local", records_path=tmp_path / "r.db") as client:
        with pytest.raises(UnknownKeyError, match="cxnothing"):
            await client.attach("cxnothing")
        with pytest.raises(LookupError):
            await client.attach("cxnothing.3")


async def test_another_cluster_is_named_in_the_error(tmp_path: Path) -> None:
    path = tmp_path / "r.db"
    await record(path, "cxslurm", Target("slurm", "login1", 22, "alice", profile="hpc"), 3)
    config = {"cluster_type": "slurm", "cluster_host": "login2", "username": "alice"}
    async with Client(records_path=path, **config) as client:
        with pytest.raises(ClusterMismatchError, match=r"cluster_host='login1'") as caught:
            await client.attach("cxslurm")
        assert "login2" in str(caught.value) and "profile 'hpc'" in str(caught.value)
        assert "username" not in str(caught.value)  # only what differs is named
        with pytest.raises(ClusterMismatchError):  # a task's key names its sweep
            await client.attach("cxslurm.1")


async def test_local_jobs_cannot_be_reattached(tmp_path: Path) -> None:
    path = tmp_path / "r.db"
    await record(path, "cxlocal", Target("local"))
    async with Client(cluster_type="local", records_path=path) as client:
        with pytest.raises(AttachError, match="ended with the process"):
            await client.attach("cxlocal")


def test_the_sync_twin_refuses_on_a_running_loop_and_unknown_keys(tmp_path: Path) -> None:
    config = clustrix.ClusterConfig(cluster_type="local", records_path=tmp_path / "r.db")
    with pytest.raises(UnknownKeyError):
        clustrix.attach("cxmissing", config=config)
    with pytest.raises(clustrix.UsageError, match="not both"):
        clustrix.attach("cxmissing", config=config, profile="p")
