"""``clustrix logs``, ``cancel`` and ``result`` through the console script, on the lab's
Slurm: a child process submits (and records) jobs and leaves, the CLI attaches."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ..remote.conftest import as_lab_user
from .conftest import Cli
from .test_config_commands import lab_fields, lab_work, write_config

__all__ = ["lab_work"]

SUBMIT = textwrap.dedent(
    """
    import asyncio, json, os, sys
    from clustrix import Client, cluster

    @cluster(time="00:10:00")
    def talk(lines, pause, fail=False):
        import sys, time
        for i in range(lines):
            print(f"out {i}", flush=True)
            print(f"err {i}", file=sys.stderr, flush=True)
            time.sleep(pause)
        if fail:
            raise ValueError(f"bad seed {lines}")
        return {"lines": lines}

    @cluster(time="00:10:00")
    def square(x):
        print(f"task {x} says {x * x}")
        return x * x

    MODES = {"quick": (2, 0.0), "slow": (4, 1.5), "long": (1, 600.0), "fail": (1, 0.0)}

    async def main(mode):
        async with Client():
            if mode == "sweep":
                handle = square.map(range(3))
            else:
                lines, pause = MODES.get(mode, (2, 0.0))
                handle = talk(lines, pause, fail=mode == "fail")
            jobs = list(handle) if mode == "sweep" else [handle]
            if mode == "collected":
                await handle
            while any(job.job_id is None for job in jobs):
                await asyncio.sleep(0.1)
            print(json.dumps({"key": handle.key, "pid": os.getpid()}))
        # leaving the client detaches: the jobs keep running, recorded

    asyncio.run(main(sys.argv[1]))
    """
)


@pytest.fixture
def submit(
    cli: Cli, isolated_config: Path, lab: dict[str, Any], lab_work: str
) -> Callable[[str], dict[str, Any]]:
    fields = lab_fields(lab, "slurm", f"~/{lab_work}")
    write_config(isolated_config, {**fields, "job_poll_interval": 2})
    script = isolated_config / "submit_for_cli.py"
    script.write_text(SUBMIT)

    def run(mode: str) -> dict[str, Any]:
        done = subprocess.run(
            [sys.executable, str(script), mode],
            capture_output=True,
            text=True,
            env=cli.env,
            cwd=isolated_config,
            timeout=300,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        data: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
        return data

    return run


def status(cli: Cli, key: str) -> dict[str, Any]:
    done = cli("status", key, "--json")
    assert done.returncode == 0, done.stderr
    data: dict[str, Any] = json.loads(done.stdout)
    return data


def until(what: Callable[[], Any], deadline: float = 180.0) -> Any:
    """Poll `what` until it returns something true; fail after `deadline` seconds."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        value = what()
        if value:
            return value
        time.sleep(1.0)
    pytest.fail(f"condition not met within {deadline} s")


@pytest.mark.lab
def test_logs_of_a_running_job_then_cancel(
    cli: Cli, submit: Callable[[str], dict[str, Any]], lab: dict[str, Any]
) -> None:
    key = submit("long")["key"]
    out = until(lambda: (d := cli("logs", key)).returncode == 0 and "out 0" in d.stdout and d)
    assert "err 0" not in out.stdout
    err = cli("logs", key, "--stderr")
    assert err.returncode == 0, err.stderr
    assert "err 0" in err.stdout and "out 0" not in err.stdout
    native = status(cli, key)["native_id"]
    assert native

    done = cli("cancel", key)
    assert done.returncode == 0, done.stderr
    assert f"cancelled {key}: 1 CANCELLED" in done.stdout
    assert status(cli, key)["state"] == "CANCELLED"
    queue = as_lab_user(lab, "squeue", "-h", "-j", native, "-o", "%T")
    assert "RUNNING" not in queue.stdout and "PENDING" not in queue.stdout
    accounting = until(
        lambda: (
            (a := as_lab_user(lab, "sacct", "-n", "-X", "-j", native, "-o", "State"))
            and "CANCELLED" in a.stdout
            and a
        )
    )
    assert "CANCELLED" in accounting.stdout
    again = cli("cancel", key)
    assert again.returncode == 0 and "already ended" in again.stdout


@pytest.mark.lab
def test_logs_follow_ends_when_the_job_ends(
    cli: Cli, submit: Callable[[str], dict[str, Any]]
) -> None:
    key = submit("slow")["key"]  # four lines, 1.5 s apart
    done = cli("logs", key, "--follow", "--interval", "0.5")
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stdout.splitlines() if line.startswith("out ")]
    assert lines == ["out 0", "out 1", "out 2", "out 3"]  # each once: only what is new
    assert status(cli, key)["state"] == "COMPLETED"  # it returned because the job ended


@pytest.mark.lab
def test_sweep_logs_headed_by_index_and_results(
    cli: Cli, submit: Callable[[str], dict[str, Any]]
) -> None:
    key = submit("sweep")["key"]
    one = cli("logs", key, "--index", "1", "--follow")
    assert one.returncode == 0, one.stderr
    assert one.stdout.strip() == "task 1 says 1"  # one task, no heading
    every = cli("logs", key, "--follow")
    assert every.returncode == 0, every.stderr
    text = every.stdout
    for i in range(3):
        heading = f"==> task {i} <=="
        assert heading in text, text
        assert text.split(heading, 1)[1].lstrip().startswith(f"task {i} says {i * i}")
    bad = cli("logs", key, "--index", "7")
    assert bad.returncode == 1 and "has tasks 0 to 2, not 7" in bad.stderr


@pytest.mark.lab
def test_result_of_a_finished_job(cli: Cli, submit: Callable[[str], dict[str, Any]]) -> None:
    key = submit("quick")["key"]
    done = cli("result", key)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "{'lines': 2}"
    assert status(cli, key)["collected"] is True


@pytest.mark.lab
def test_result_of_a_sweep(cli: Cli, submit: Callable[[str], dict[str, Any]]) -> None:
    key = submit("sweep")["key"]
    done = cli("result", key)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["[0] 0", "[1] 1", "[2] 4"]


@pytest.mark.lab
def test_result_of_a_failed_job(cli: Cli, submit: Callable[[str], dict[str, Any]]) -> None:
    key = submit("fail")["key"]
    done = cli("result", key)
    assert done.returncode == 1
    assert "ValueError: bad seed 1" in done.stderr
    assert "remote traceback" in done.stderr and "talk" in done.stderr  # the remote frame
    assert "clustrix/cli" not in done.stderr  # no traceback of the command itself
    assert done.stdout == ""


@pytest.mark.lab
def test_result_of_an_already_collected_job(
    cli: Cli, submit: Callable[[str], dict[str, Any]]
) -> None:
    submitted = submit("collected")  # the submitting process awaited the result
    done = cli("result", submitted["key"])
    assert done.returncode == 0, done.stderr
    assert "COMPLETED" in done.stdout and "already collected" in done.stdout
    assert f"process {submitted['pid']}@" in done.stdout


def test_unknown_key_and_bad_usage(cli: Cli) -> None:
    for command in ("logs", "cancel", "result"):
        done = cli(command, "cxnosuchkey00")
        assert done.returncode == 1, (command, done.stderr)
        assert "no recorded job or sweep has the key 'cxnosuchkey00'" in done.stderr
        assert "Traceback" not in done.stderr
        assert cli(command).returncode == 2  # the key is missing
        helped = cli(command, "--help")
        assert helped.returncode == 0 and "Usage: clustrix" in helped.stdout
    assert cli("logs", "k", "--index", "-1").returncode == 2
    assert cli("result", "k", "--bogus").returncode == 2
