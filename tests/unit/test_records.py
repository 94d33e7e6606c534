"""The local job-record store (clustrix._records): schema, batching, locking, versions."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import sqlite3
import stat
import subprocess
import sys
import textwrap
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from clustrix import ClusterConfig, ConfigError, JobState
from clustrix import _records_db as db
from clustrix._exceptions import UsageError
from clustrix._record_types import TAIL_CHARS
from clustrix._records import (
    JobUpdate,
    RecordStore,
    Target,
    default_records_path,
    process_id,
)

SLURM = Target("slurm", host="login.example.org", port=2222, username="alice")
DAY = 86400.0


@pytest.fixture
def store(tmp_path: Path) -> RecordStore:
    s = RecordStore(tmp_path / "records.db")
    yield s  # type: ignore[misc]
    s.close()


def trace(store: RecordStore) -> list[tuple[str, int]]:
    """Every SQL statement the store's connection runs from now on, with its thread."""
    seen: list[tuple[str, int]] = []
    assert store._conn is not None
    store._conn.set_trace_callback(lambda sql: seen.append((sql, threading.get_ident())))
    return seen


def journal_mode(path: Path) -> str:
    with sqlite3.connect(path) as conn:
        return str(conn.execute("PRAGMA journal_mode").fetchone()[0])


# -- recording and reading back ------------------------------------------------------
async def test_sweep_is_recorded_with_its_tasks_in_order(store: RecordStore) -> None:
    keys = [f"cxsweep.{i}" for i in range(3)]
    await store.record_submission(
        "cxsweep",
        function="simulate",
        target=SLURM,
        job_keys=keys,
        sweep=True,
        run_dir="~/.clustrix/runs/cxsweep",
    )
    sweep = store.sweep("cxsweep")
    assert sweep is not None
    assert sweep.submission.task_count == 3 and sweep.submission.sweep
    assert sweep.submission.submitted_by == process_id()
    assert [j.key for j in sweep.jobs] == keys
    assert [j.index for j in sweep.jobs] == [0, 1, 2]
    job = sweep.jobs[1]
    assert (job.sweep_key, job.submission_key, job.function, job.backend) == (
        "cxsweep",
        "cxsweep",
        "simulate",
        "slurm",
    )
    assert (job.host, job.port, job.username) == ("login.example.org", 2222, "alice")
    assert job.run_dir == "~/.clustrix/runs/cxsweep"
    assert job.state is JobState.PENDING and job.attempt == 1 and not job.collected
    assert job.submitted_at.tzinfo is UTC
    assert sweep.counts() == {"PENDING": 3} and not sweep.final
    with pytest.raises(dataclasses.FrozenInstanceError):
        job.state = JobState.RUNNING  # type: ignore[misc]


async def test_single_call_has_no_sweep_key(store: RecordStore) -> None:
    await store.record_submission(
        "cxone", function="f", target=SLURM, job_keys=["cxone"], sweep=False
    )
    job = store.get("cxone")
    assert job is not None and job.sweep_key is None and job.index is None
    assert store.get("missing") is None and store.sweep("missing") is None


async def test_a_key_is_recorded_once(store: RecordStore) -> None:
    await store.record_submission("cxk", function="f", target=SLURM, job_keys=["cxk"], sweep=False)
    with pytest.raises(UsageError, match="already recorded"):
        await store.record_submission(
            "cxk", function="f", target=SLURM, job_keys=["cxk"], sweep=False
        )


async def test_no_secret_reaches_the_file(tmp_path: Path) -> None:
    config = ClusterConfig(
        cluster_type="slurm",
        cluster_host="login",
        username="bob",
        password="hunter2-secret",
        key_file="/keys/id_secret",
    )
    target = Target.from_config(config)
    assert target == Target("slurm", host="login", port=22, username="bob")
    store = RecordStore(tmp_path / "r.db")
    await store.record_submission("cxs", function="f", target=target, job_keys=["cxs"], sweep=False)
    store.close()
    stored = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    assert b"login" in stored
    assert b"hunter2" not in stored and b"id_secret" not in stored


def test_kubernetes_target_names_context_and_namespace() -> None:
    config = ClusterConfig(cluster_type="kubernetes", k8s_context="lab", k8s_namespace="ns1")
    assert Target.from_config(config) == Target(
        "kubernetes", k8s_context="lab", k8s_namespace="ns1"
    )


# -- state updates ----------------------------------------------------------------------
async def test_state_lifecycle(store: RecordStore) -> None:
    await store.record_submission("cxl", function="f", target=SLURM, job_keys=["cxl"], sweep=False)
    changed = await store.update_states(
        [
            JobUpdate("cxl", JobState.QUEUED, native_id="77", reason="Priority"),
            JobUpdate("nobody", JobState.RUNNING),
        ]
    )
    assert changed == 1
    job = store.get("cxl")
    assert job and (job.state, job.native_id, job.reason) == (JobState.QUEUED, "77", "Priority")
    assert job.started_at is None
    await store.update_states([JobUpdate("cxl", JobState.RUNNING)])
    job = store.get("cxl")
    assert job and job.state is JobState.RUNNING and job.reason is None  # reason went with state
    assert job.started_at is not None and job.native_id == "77"
    big = "x" * (TAIL_CHARS + 100) + "END"
    await store.update_states(
        [JobUpdate("cxl", JobState.FAILED, exit_code=3, stderr_tail=big, error="boom")]
    )
    # a late poll that still saw the task running does not undo its end
    late = JobUpdate("cxl", JobState.RUNNING, reason="stale", stdout_tail="late", exit_code=9)
    assert await store.update_states([late]) == 0
    job = store.get("cxl")
    assert job and job.state is JobState.FAILED and job.exit_code == 3 and job.error == "boom"
    assert job.reason is None and job.stdout_tail is None
    assert job.ended_at is not None and job.ended_at >= job.started_at  # type: ignore[operator]
    assert job.stderr_tail is not None and len(job.stderr_tail) == TAIL_CHARS
    assert job.stderr_tail.endswith("END")


async def test_new_attempt_starts_afresh_and_older_attempts_are_ignored(
    store: RecordStore,
) -> None:
    await store.record_submission("cxr", function="f", target=SLURM, job_keys=["cxr"], sweep=False)
    await store.update_states([JobUpdate("cxr", JobState.NODE_FAIL, native_id="1", exit_code=1)])
    await store.update_states([JobUpdate("cxr", JobState.QUEUED, native_id="2", attempt=2)])
    job = store.get("cxr")
    assert job and (job.attempt, job.state, job.native_id) == (2, JobState.QUEUED, "2")
    assert job.exit_code is None and job.ended_at is None
    await store.update_states([JobUpdate("cxr", JobState.COMPLETED, attempt=1)])  # stale
    job = store.get("cxr")
    assert job and job.state is JobState.QUEUED and job.attempt == 2


async def test_a_sweep_of_10000_tasks_is_one_transaction_per_call(store: RecordStore) -> None:
    await store.record_submission("cxw", function="f", target=SLURM, job_keys=["cxw"], sweep=False)
    statements = trace(store)
    keys = [f"cxbig.{i}" for i in range(10_000)]
    await store.record_submission("cxbig", function="f", target=SLURM, job_keys=keys, sweep=True)
    await store.update_states(
        JobUpdate(k, JobState.RUNNING, native_id=f"9_{i}") for i, k in enumerate(keys)
    )
    marked = await store.mark_collected(keys)
    begins = [sql for sql, _ in statements if sql.startswith("BEGIN")]
    commits = [sql for sql, _ in statements if sql == "COMMIT"]
    assert len(begins) == len(commits) == 3  # one per call, not one per task
    assert marked == set(keys)
    sweep = store.sweep("cxbig")
    assert sweep and sweep.counts() == {"RUNNING": 10_000} and sweep.collected
    assert sweep.jobs[9_999].native_id == "9_9999"


async def test_sqlite_never_runs_on_the_event_loops_thread(store: RecordStore) -> None:
    await store.record_submission("cxt", function="f", target=SLURM, job_keys=["cxt"], sweep=False)
    statements = trace(store)
    await store.update_states([JobUpdate("cxt", JobState.RUNNING)])
    await store.mark_collected(["cxt"])
    await store.prune(0)
    await store.aclose()
    assert statements
    assert threading.get_ident() not in {thread for _, thread in statements}


# -- collection, queries, retention ---------------------------------------------------
async def test_first_collector_wins(store: RecordStore) -> None:
    keys = ["cxc.0", "cxc.1"]
    await store.record_submission("cxc", function="f", target=SLURM, job_keys=keys, sweep=True)
    assert await store.mark_collected(["cxc.0"], by="111@laptop") == {"cxc.0"}
    assert await store.mark_collected(keys, by="222@server") == {"cxc.1"}
    assert store.collected_by("cxc.0") == "111@laptop"
    assert store.collected_by("cxc.1") == "222@server"
    assert store.collected_by("nope") is None
    assert await store.mark_collected(["cxc.0"]) == set()
    sweep = store.sweep("cxc")
    assert sweep and sweep.collected


async def test_jobs_filters(store: RecordStore) -> None:
    now = time.time()
    ssh = Target("ssh", host="h", port=22, username="u")
    await store.record_submission(
        "cxold",
        function="train",
        target=SLURM,
        job_keys=["cxold"],
        sweep=False,
        submitted_at=now - 3 * DAY,
    )
    await store.record_submission(
        "cxnew",
        function="train",
        target=ssh,
        job_keys=["cxnew"],
        sweep=False,
        submitted_at=now - 60,
    )
    await store.record_submission(
        "cxm",
        function="score",
        target=SLURM,
        job_keys=["cxm.0", "cxm.1"],
        sweep=True,
        submitted_at=now,
    )
    await store.update_states(
        [JobUpdate("cxm.1", JobState.COMPLETED), JobUpdate("cxold", JobState.FAILED)]
    )

    def keys(**filters: object) -> list[str]:
        return [j.key for j in store.jobs(**filters)]  # type: ignore[arg-type]

    assert keys() == ["cxm.0", "cxm.1", "cxnew", "cxold"]  # newest first, sweep in order
    assert keys(state=JobState.COMPLETED) == ["cxm.1"]
    assert keys(state="PENDING") == ["cxm.0", "cxnew"]
    assert keys(state=[JobState.FAILED, "COMPLETED"]) == ["cxm.1", "cxold"]
    assert keys(since=timedelta(days=1)) == ["cxm.0", "cxm.1", "cxnew"]
    assert keys(since=datetime.fromtimestamp(now - 30, UTC)) == ["cxm.0", "cxm.1"]
    assert keys(function="train") == ["cxnew", "cxold"]
    assert keys(backend="ssh") == ["cxnew"]
    assert keys(function="train", backend="slurm", state="FAILED") == ["cxold"]
    assert keys(limit=1) == ["cxm.0"]
    assert [s.key for s in store.submissions(function="train")] == ["cxnew", "cxold"]
    with pytest.raises(ValueError, match="SLEEPING"):
        store.jobs(state="SLEEPING")


async def test_prune_deletes_only_finished_submissions_past_retention(
    store: RecordStore,
) -> None:
    long_ago = time.time() - 40 * DAY
    for key in ("cxdone", "cxlive", "cxrecent"):
        await store.record_submission(
            key,
            function="f",
            target=SLURM,
            sweep=True,
            job_keys=[f"{key}.0", f"{key}.1"],
            submitted_at=long_ago,
        )
    await store.update_states(
        [
            JobUpdate("cxdone.0", JobState.COMPLETED, ended_at=long_ago),
            JobUpdate("cxdone.1", JobState.FAILED, ended_at=long_ago),
            JobUpdate("cxlive.0", JobState.COMPLETED, ended_at=long_ago),  # .1 still pending
            JobUpdate("cxrecent.0", JobState.COMPLETED, ended_at=long_ago),
            JobUpdate("cxrecent.1", JobState.COMPLETED),  # ended just now
        ]
    )
    assert await store.prune(45) == 0
    assert await store.prune() == 1  # the store's retention: 30 days
    assert store.submission("cxdone") is None and store.get("cxdone.0") is None
    assert store.sweep("cxlive") is not None and store.sweep("cxrecent") is not None
    assert await store.prune(0) == 1  # cxrecent has ended too; cxlive never prunes while live
    assert [s.key for s in store.submissions()] == ["cxlive"]


def test_reads_on_a_missing_store_create_nothing(tmp_path: Path) -> None:
    store = RecordStore(tmp_path / "sub" / "records.db")
    assert store.jobs() == [] and store.get("x") is None and store.submissions() == []
    assert not (tmp_path / "sub").exists()


# -- configuration ----------------------------------------------------------------------
def test_config_fields_name_the_store(tmp_path: Path) -> None:
    config = ClusterConfig()
    assert config.records_path is None and config.records_retention_days == 30
    default = RecordStore.for_config(config)
    assert default.path == default_records_path() == Path.home() / ".clustrix" / "records.db"
    custom = RecordStore.for_config(
        ClusterConfig(records_path=tmp_path / "x.db", records_retention_days=7)
    )
    assert (custom.path, custom.retention_days) == (tmp_path / "x.db", 7)
    with pytest.raises(ConfigError, match="records_retention_days"):
        ClusterConfig(records_retention_days=-1)


async def test_store_file_is_private_and_uses_wal_on_a_local_disk(tmp_path: Path) -> None:
    assert not db.is_network_filesystem(db.detect_filesystem(tmp_path))  # precondition
    store = RecordStore(tmp_path / "private" / "records.db")
    await store.record_submission("cxp", function="f", target=SLURM, job_keys=["cxp"], sweep=False)
    await store.aclose()
    assert journal_mode(store.path) == "wal"
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(store.path.parent.stat().st_mode) == 0o700


async def test_network_filesystem_gets_the_rollback_journal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    mounts = f"/dev/sda1 / ext4 rw 0 0\nserver:/export {tmp_path} nfs4 rw,vers=4.2 0 0\n"
    monkeypatch.setattr(db, "_mounts_text", lambda: mounts)
    store = RecordStore(tmp_path / "records.db")
    with caplog.at_level(logging.INFO, logger="clustrix.records"):
        await store.record_submission(
            "cxn", function="f", target=SLURM, job_keys=["cxn"], sweep=False
        )
    await store.aclose()
    assert journal_mode(store.path) == "delete"
    assert any("nfs4" in r.getMessage() and "DELETE" in r.getMessage() for r in caplog.records)


PROC_MOUNTS = textwrap.dedent(
    r"""
    sysfs /sys sysfs rw,nosuid 0 0
    /dev/nvme0n1p2 / ext4 rw,relatime 0 0
    fileserver:/home /home nfs4 rw,relatime,vers=4.2 0 0
    /dev/nvme0n1p3 /home/alice/local\040disk xfs rw 0 0
    //nas/share /mnt/nas cifs rw 0 0
    alice@login:/scratch /mnt/scratch fuse.sshfs rw,nosuid 0 0
    lustre@tcp:/fs /lustre lustre rw 0 0
    tmpfs /homework tmpfs rw 0 0
    """
)


@pytest.mark.parametrize(
    ("path", "fstype", "network"),
    [
        ("/var/lib/x.db", "ext4", False),
        ("/home/alice/.clustrix/records.db", "nfs4", True),
        ("/home", "nfs4", True),
        ("/home/alice/local disk/records.db", "xfs", False),  # escaped space, nested mount
        ("/homework/records.db", "tmpfs", False),  # a prefix of the string, not a parent
        ("/mnt/nas/r.db", "cifs", True),
        ("/mnt/scratch/r.db", "fuse.sshfs", True),
        ("/lustre/project/r.db", "lustre", True),
    ],
)
def test_filesystem_detection_from_proc_mounts(path: str, fstype: str, network: bool) -> None:
    assert db.filesystem_type(path, PROC_MOUNTS) == fstype
    assert db.is_network_filesystem(fstype) is network


def test_filesystem_detection_from_bsd_mount_output() -> None:
    text = (
        "/dev/disk3s1s1 on / (apfs, sealed, local, read-only, journaled)\n"
        "/dev/disk3s5 on /System/Volumes/Data (apfs, local, journaled)\n"
        "nas:/vol/home on /Users/alice/net (nfs, nodev, nosuid)\n"
        "//bob@smb/share on /Volumes/share (smbfs, nodev, nosuid, mounted by bob)\n"
    )
    assert db.filesystem_type("/Users/alice/net/r.db", text) == "nfs"
    assert db.filesystem_type("/Volumes/share/r.db", text) == "smbfs"
    assert db.filesystem_type("/Users/alice/r.db", text) == "apfs"
    assert db.is_network_filesystem("smbfs") and not db.is_network_filesystem("apfs")
    assert db.is_network_filesystem("fuse.unknownfs")  # unknown FUSE: rollback journal
    assert not db.is_network_filesystem("fuse-overlayfs")
    assert db.filesystem_type("/x", "") is None and not db.is_network_filesystem(None)


# -- schema versions --------------------------------------------------------------------
def make_db(path: Path, *statements: str) -> None:
    with sqlite3.connect(path) as conn:
        for sql in statements:
            conn.execute(sql)


def test_store_written_by_a_newer_clustrix_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "records.db"
    make_db(path, "CREATE TABLE jobs (key TEXT)", "PRAGMA user_version = 7")
    with pytest.raises(ConfigError) as info:
        RecordStore(path).jobs()
    message = str(info.value)
    assert "schema version 7" in message and f"up to version {db.SCHEMA_VERSION}" in message
    assert "upgrade clustrix" in message and "records_path" in message


def test_foreign_or_corrupt_files_are_refused(tmp_path: Path) -> None:
    foreign = tmp_path / "foreign.db"
    make_db(foreign, "CREATE TABLE recipes (name TEXT)")
    with pytest.raises(ConfigError, match=r"not a clustrix records store.*recipes"):
        RecordStore(foreign).jobs()
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not an sqlite file at all" * 100)
    with pytest.raises(ConfigError, match="not a usable clustrix records store"):
        RecordStore(garbage).jobs()


async def test_older_store_is_migrated_in_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "records.db"
    # a version-0 store as an older clustrix left it: an empty SQLite file
    make_db(path, "PRAGMA user_version = 0")
    old = RecordStore(path)
    await old.record_submission("cxv", function="f", target=SLURM, job_keys=["cxv"], sweep=False)
    await old.update_states([JobUpdate("cxv", JobState.COMPLETED, exit_code=0)])
    await old.aclose()

    def to_v2(conn: sqlite3.Connection) -> None:
        conn.execute("ALTER TABLE jobs ADD COLUMN note TEXT DEFAULT 'migrated'")

    monkeypatch.setattr(db, "SCHEMA_VERSION", 2)
    monkeypatch.setitem(db.MIGRATIONS, 1, to_v2)
    new = RecordStore(path)
    job = new.get("cxv")  # opening migrates
    assert job and job.state is JobState.COMPLETED and job.exit_code == 0
    new.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 2
        assert conn.execute("SELECT note FROM jobs WHERE key = 'cxv'").fetchone()[0] == "migrated"

    monkeypatch.setattr(db, "SCHEMA_VERSION", 3)  # no step from 2 to 3
    with pytest.raises(ConfigError, match="version 2, which this clustrix cannot migrate"):
        RecordStore(path).jobs()


# -- several processes at once ----------------------------------------------------------
CHILD = textwrap.dedent(
    """
    import asyncio, json, os, sys, time
    from pathlib import Path
    from clustrix import JobState
    from clustrix import _records_db as db
    from clustrix._records import JobUpdate, RecordStore, Target

    path, me, network, go = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1", Path(sys.argv[4])
    count = int(sys.argv[5])
    if network:
        db._mounts_text = lambda: f"srv:/x {Path(path).parent} nfs4 rw 0 0"
    target = Target("slurm", host="login", port=22, username="u")

    async def main():
        store = RecordStore(path)
        Path(f"{go}.ready{me}").touch()
        deadline = time.monotonic() + 60
        while not go.exists():
            assert time.monotonic() < deadline, "never told to go"
            await asyncio.sleep(0.01)
        keys = [f"cxp{me}_{i}" for i in range(count)]
        for key in keys:  # one transaction each, to contend for the lock
            await store.record_submission(key, function="f", target=target, job_keys=[key],
                                          sweep=False)
        collected = set()
        for i, key in enumerate(keys):
            await store.update_states([JobUpdate(key, JobState.QUEUED, native_id=f"{me}.{i}")])
            await store.update_states([JobUpdate(key, JobState.RUNNING)])
            await store.update_states([JobUpdate(key, JobState.COMPLETED, exit_code=i)])
            collected |= await store.mark_collected([f"cxshared.{(i + me * 50) % 200}"])
        await store.aclose()
        print(json.dumps({"by": f"{os.getpid()}", "collected": sorted(collected)}))

    asyncio.run(main())
    """
)


# The rollback journal fsyncs every commit (~30 ms here), so that variant runs fewer jobs.
@pytest.mark.parametrize(("network", "count"), [(False, 200), (True, 60)], ids=["wal", "delete"])
async def test_four_processes_write_at_once(
    tmp_path: Path, network: bool, count: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """4 processes each record `count` jobs one transaction at a time and move them
    through their states, while all race to mark the same 200 sweep tasks collected."""
    path, go = tmp_path / "records.db", tmp_path / "go"
    if network:  # the parent must agree with the children on the journal mode
        monkeypatch.setattr(db, "_mounts_text", lambda: f"srv:/x {tmp_path} nfs4 rw 0 0")
    store = RecordStore(path)
    shared = [f"cxshared.{i}" for i in range(200)]
    await store.record_submission(
        "cxshared", function="g", target=SLURM, job_keys=shared, sweep=True
    )
    children = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                CHILD,
                str(path),
                str(n),
                str(int(network)),
                str(go),
                str(count),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(4)
    ]
    deadline = time.monotonic() + 60
    while not all(Path(f"{go}.ready{n}").exists() for n in range(4)):  # all started
        assert all(c.poll() is None for c in children), "a child died before starting"
        assert time.monotonic() < deadline, "children did not start"
        await asyncio.sleep(0.02)
    go.touch()
    outputs = [await asyncio.to_thread(c.communicate, timeout=240) for c in children]
    for child, (_, err) in zip(children, outputs, strict=True):
        assert child.returncode == 0, err
    reports = [json.loads(out) for out, _ in outputs]

    assert journal_mode(path) == ("delete" if network else "wal")
    jobs = {j.key: j for j in store.jobs()}
    assert len(jobs) == 4 * count + 200
    for n in range(4):
        for i in range(count):
            job = jobs[f"cxp{n}_{i}"]
            assert job.state is JobState.COMPLETED and job.exit_code == i
            assert job.native_id == f"{n}.{i}" and job.started_at and job.ended_at
    # every shared task was collected by exactly one process, the one that says so
    claims = [set(r["collected"]) for r in reports]
    assert set().union(*claims) == set(shared)
    assert sum(len(c) for c in claims) == 200
    for report, claim in zip(reports, claims, strict=True):
        for key in claim:
            assert jobs[key].collected_by == f"{report['by']}@{os.uname().nodename}"
    store.close()


async def test_a_writer_waits_for_the_lock_then_gives_up_clearly(tmp_path: Path) -> None:
    path = tmp_path / "records.db"
    store = RecordStore(path, lock_deadline=0.5)
    await store.record_submission("cxa", function="f", target=SLURM, job_keys=["cxa"], sweep=False)
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")  # another writer holds the lock
    with pytest.raises(ConfigError, match=r"stayed locked by another process"):
        await store.update_states([JobUpdate("cxa", JobState.RUNNING)])
    release = threading.Timer(0.2, lambda: other.execute("COMMIT"))
    release.start()
    assert await store.update_states([JobUpdate("cxa", JobState.RUNNING)]) == 1
    release.join()
    other.close()
    job = store.get("cxa")
    assert job and job.state is JobState.RUNNING
    store.close()
