"""Run the installed ``clustrix`` console script in a subprocess, with a temporary
record store (``CLUSTRIX_RECORDS_PATH``) filled through `RecordStore`'s own API."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from clustrix._records import JobUpdate, RecordStore, Target
from clustrix._states import JobState

from ..remote.conftest import lab

__all__ = ["lab"]  # the lab fixture, for the lab-marked config checks

CLUSTRIX = Path(sys.executable).parent / "clustrix"


@dataclass
class Cli:
    """The console script, run with this test's environment and working directory."""

    env: dict[str, str]
    cwd: Path

    def __call__(self, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(CLUSTRIX), *args],
            capture_output=True,
            text=True,
            env=self.env,
            cwd=cwd or self.cwd,
            timeout=120,
            check=False,
        )


@pytest.fixture
def records(tmp_path: Path) -> Path:
    return tmp_path / "records" / "records.db"


@pytest.fixture
def cli(records: Path, isolated_config: Path) -> Cli:
    assert CLUSTRIX.is_file(), "install the package: pip install -e '.[dev]'"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLUSTRIX_")}
    env.update(CLUSTRIX_RECORDS_PATH=str(records), COLUMNS="200", NO_COLOR="1")
    return Cli(env, isolated_config)


SLURM = Target("slurm", host="login.example.org", port=22, username="ada")
SSH = Target("ssh", host="box.example.org", port=2222, username="bob")


@pytest.fixture
def filled(records: Path) -> RecordStore:
    """Three submissions: an old finished ssh job, a slurm sweep of 4 (3 COMPLETED,
    1 FAILED), a queued slurm job of another function."""
    store = RecordStore(records)
    now = time.time()

    async def fill() -> None:
        await store.record_submission(
            "cxold00000001",
            function="prepare",
            target=SSH,
            job_keys=["cxold00000001"],
            sweep=False,
            run_dir="/home/bob/.clustrix/runs/cxold00000001",
            submitted_at=now - 5 * 86400,
        )
        keys = [f"cxsweep000001.{i}" for i in range(4)]
        await store.record_submission(
            "cxsweep000001",
            function="simulate",
            target=SLURM,
            job_keys=keys,
            sweep=True,
            run_dir="/home/ada/.clustrix/runs/cxsweep000001",
            submitted_at=now - 3600,
        )
        await store.record_submission(
            "cxjob00000001",
            function="train",
            target=SLURM,
            job_keys=["cxjob00000001"],
            sweep=False,
            run_dir="/home/ada/.clustrix/runs/cxjob00000001",
            submitted_at=now - 60,
        )
        await store.update_states(
            [JobUpdate("cxold00000001", JobState.COMPLETED, native_id="box:4242", exit_code=0)]
            + [
                JobUpdate(k, JobState.COMPLETED, native_id=f"777_{i}", exit_code=0)
                for i, k in enumerate(keys[:3])
            ]
            + [
                JobUpdate(
                    keys[3],
                    JobState.FAILED,
                    native_id="777_3",
                    exit_code=3,
                    reason="NonZeroExitCode",
                    error="JobFailedError: exit 3",
                    stdout_tail="hello from task 3\n",
                    stderr_tail="Traceback ...\nValueError: bad seed\n",
                ),
                JobUpdate("cxjob00000001", JobState.QUEUED, native_id="778", reason="Priority"),
            ]
        )
        await store.aclose()

    asyncio.run(fill())
    return store
