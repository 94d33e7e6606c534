"""``logs``, ``cancel`` and ``result`` where the records alone answer (no cluster)."""

from __future__ import annotations

import asyncio

from clustrix._records import RecordStore

from .conftest import Cli


def _collect(store: RecordStore, *keys: str, by: str) -> None:
    async def mark() -> None:
        await store.mark_collected(keys, by=by)
        await store.aclose()

    asyncio.run(mark())


def test_result_of_a_collected_task(cli: Cli, filled: RecordStore) -> None:
    _collect(filled, "cxsweep000001.0", "cxsweep000001.3", by="4242@laptop")
    done = cli("result", "cxsweep000001.0")
    assert done.returncode == 0, done.stderr
    assert "COMPLETED" in done.stdout and "already collected by process 4242@laptop" in done.stdout
    failed = cli("result", "cxsweep000001.3")
    assert failed.returncode == 1
    assert "FAILED" in failed.stdout and "JobFailedError: exit 3" in failed.stderr


def test_logs_index_needs_a_sweep(cli: Cli, filled: RecordStore) -> None:
    single = cli("logs", "cxsweep000001.3", "--index", "1")
    assert single.returncode == 1 and "not a sweep" in single.stderr
    outside = cli("logs", "cxsweep000001", "--index", "4")
    assert outside.returncode == 1 and "has tasks 0 to 3, not 4" in outside.stderr


def test_cancel_of_an_ended_job(cli: Cli, filled: RecordStore) -> None:
    done = cli("cancel", "cxsweep000001")
    assert done.returncode == 0, done.stderr
    assert "already ended (3 COMPLETED, 1 FAILED): nothing to cancel" in done.stdout


def test_a_configuration_for_another_cluster_is_refused(cli: Cli, filled: RecordStore) -> None:
    # cxjob00000001 runs on slurm at ada@login.example.org; the configuration is local
    for command in ("logs", "cancel", "result"):
        done = cli(command, "cxjob00000001")
        assert done.returncode == 1, done.stderr
        assert "runs on slurm at ada@login.example.org:22" in done.stderr
        assert "pass --profile" in done.stderr and "Traceback" not in done.stderr
