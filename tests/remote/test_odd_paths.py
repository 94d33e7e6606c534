"""A remote_work_dir with a space, an apostrophe, `$b` and command substitutions, on
every remote backend of the lab (issue 9, item 5).

Nothing is created by hand: clustrix makes the whole directory chain (mode 0700),
the schedulers write their logs into it, the results come back, and the command
substitutions in the name never run (their canary files never appear).
"""

from __future__ import annotations

import os
import secrets
import stat
import sys
from pathlib import Path
from typing import Any

import pytest

from clustrix import Client, ConfigError

from .test_conformance import config_for

pytestmark = pytest.mark.lab


def loud_square(x: int) -> tuple[int, str]:
    print(f"stderr of {x}", file=sys.stderr)
    return x * x, os.getcwd()


def odd_dir(remote_dir: str, canary: Path) -> str:
    """``~/.clustrix-test-XXXX/My Project/it's a$b $(touch CANARY) `touch CANARY-bt```."""
    return f"{remote_dir}/My Project/it's a$b $(touch {canary}) `touch {canary}-bt`"


@pytest.mark.parametrize("kind", ["slurm", "sge", "pbs", "ssh"])
async def test_a_sweep_runs_in_a_directory_with_spaces_quotes_and_dollars(
    kind: str, lab: dict[str, Any], remote_dir: str
) -> None:
    canary = Path(f"/tmp/clx-pwned-{secrets.token_hex(4)}")
    work_dir = odd_dir(remote_dir, canary)
    config = config_for(kind, lab, work_dir, cleanup_remote_files=False)
    async with Client(config) as client:
        sweep = client.map(loud_square, range(3), progress=False)
        results = await sweep
        # chunked tasks share an element (and its log); every task's stderr is there
        stderr = [await job.stderr() for job in sweep]

    home = Path(lab["home"])
    top = home / remote_dir.removeprefix("~/")
    local_work_dir = home / work_dir.removeprefix("~/")
    run_dir = local_work_dir / "runs" / sweep.key
    assert [square for square, _ in results] == [0, 1, 4]
    assert {cwd for _, cwd in results} == {str(run_dir)}  # the job ran in its run dir
    assert run_dir.is_dir() and len(list((run_dir / "tasks").glob("*.result"))) == 3
    if kind != "pbs":  # Slurm's Torque wrappers put a sweep's output in one shared file
        assert all(f"stderr of {i}" in text for i, text in enumerate(stderr))
    logs = list((run_dir / "logs").iterdir())
    assert logs, "the scheduler wrote no log file into the run directory"
    # clustrix made every directory of the chain, private, as the lab user
    path = local_work_dir
    while True:
        info = path.stat()
        assert stat.S_IMODE(info.st_mode) == 0o700, path
        assert info.st_uid == lab["uid"], path
        if path == top:
            break
        path = path.parent
    assert not canary.exists() and not Path(f"{canary}-bt").exists()


@pytest.mark.parametrize(
    ("kind", "name", "message"),
    [
        ("slurm", "back\\slash", "Slurm cannot take .* backslash"),
        ("sge", "x$HOME", r"Grid Engine cannot take .*\$HOME"),
        ("pbs", "100%", "Slurm's Torque wrappers.* '%'"),
    ],
)
async def test_what_a_scheduler_cannot_take_is_refused_before_submission(
    kind: str, name: str, message: str, lab: dict[str, Any], remote_dir: str
) -> None:
    config = config_for(kind, lab, f"{remote_dir}/{name}")
    async with Client(config) as client:
        with pytest.raises(ConfigError, match=message):
            await client.submit(loud_square, 1)
    runs = Path(lab["home"]) / remote_dir.removeprefix("~/") / name / "runs"
    assert list(runs.iterdir()) == []  # nothing half-submitted is left behind
