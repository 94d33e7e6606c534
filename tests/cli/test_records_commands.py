"""``clustrix jobs`` and ``clustrix status`` through the installed console script."""

from __future__ import annotations

import json

from clustrix._records import RecordStore

from .conftest import Cli


def test_jobs_table(cli: Cli, filled: RecordStore) -> None:
    done = cli("jobs")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    rows = {
        key: next(line for line in lines if key in line)
        for key in ("cxold00000001", "cxsweep000001", "cxjob00000001")
    }
    assert "3 COMPLETED, 1 FAILED" in rows["cxsweep000001"]
    assert "simulate" in rows["cxsweep000001"] and "slurm" in rows["cxsweep000001"]
    assert "1 QUEUED" in rows["cxjob00000001"] and "train" in rows["cxjob00000001"]
    assert "1 COMPLETED" in rows["cxold00000001"] and "5d" in rows["cxold00000001"]
    # newest first
    assert lines.index(rows["cxjob00000001"]) < lines.index(rows["cxsweep000001"])
    assert lines.index(rows["cxsweep000001"]) < lines.index(rows["cxold00000001"])


def test_jobs_json_and_filters(cli: Cli, filled: RecordStore) -> None:
    def keys(*args: str) -> list[str]:
        done = cli("jobs", "--json", *args)
        assert done.returncode == 0, done.stderr
        return [row["key"] for row in json.loads(done.stdout)]

    everything = json.loads(cli("jobs", "--json").stdout)
    sweep = next(row for row in everything if row["key"] == "cxsweep000001")
    assert sweep["counts"] == {"COMPLETED": 3, "FAILED": 1}
    assert sweep["task_count"] == 4 and sweep["sweep"] is True and sweep["final"] is True
    assert sweep["host"] == "login.example.org" and sweep["backend"] == "slurm"
    assert keys() == ["cxjob00000001", "cxsweep000001", "cxold00000001"]
    assert keys("--state", "failed") == ["cxsweep000001"]
    assert keys("--state", "QUEUED", "--state", "FAILED") == ["cxjob00000001", "cxsweep000001"]
    assert keys("--since", "2h") == ["cxjob00000001", "cxsweep000001"]
    assert keys("--since", "1d", "--function", "simulate") == ["cxsweep000001"]
    assert keys("--backend", "ssh") == ["cxold00000001"]
    assert keys("--limit", "1") == ["cxjob00000001"]
    assert keys("--since", "2000-01-01") == keys()
    assert keys("--since", "2999-01-01T00:00") == []


def test_jobs_on_an_empty_store(cli: Cli) -> None:
    done = cli("jobs")
    assert done.returncode == 0 and "no recorded jobs" in done.stdout
    assert json.loads(cli("jobs", "--json").stdout) == []


def test_status_of_a_job(cli: Cli, filled: RecordStore) -> None:
    done = cli("status", "cxsweep000001.3")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    for text in (
        "FAILED",
        "NonZeroExitCode",
        "777_3",
        "ada@login.example.org:22",
        "/home/ada/.clustrix/runs/cxsweep000001",
        "task 3 of cxsweep000001",
        "JobFailedError: exit 3",
        "hello from task 3",
        "ValueError: bad seed",
    ):
        assert text in out, text
    assert "exit code" in out and " 3" in out.split("exit code", 1)[1].splitlines()[0]
    data = json.loads(cli("status", "cxjob00000001", "--json").stdout)
    assert data["state"] == "QUEUED" and data["reason"] == "Priority"
    assert data["native_id"] == "778" and data["collected"] is False


def test_status_of_a_sweep(cli: Cli, filled: RecordStore) -> None:
    done = cli("status", "cxsweep000001")
    assert done.returncode == 0, done.stderr
    assert "3 COMPLETED, 1 FAILED" in done.stdout
    task_lines = [line for line in done.stdout.splitlines() if "cxsweep000001." in line]
    assert len(task_lines) == 4
    assert "777_3" in task_lines[3] and "FAILED" in task_lines[3]
    data = json.loads(cli("status", "cxsweep000001", "--json").stdout)
    assert [t["index"] for t in data["tasks"]] == [0, 1, 2, 3]
    assert [t["exit_code"] for t in data["tasks"]] == [0, 0, 0, 3]


def test_status_of_an_unknown_key(cli: Cli, filled: RecordStore) -> None:
    done = cli("status", "cxnosuchkey00")
    assert done.returncode == 1
    assert "no recorded job or sweep has the key 'cxnosuchkey00'" in done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
