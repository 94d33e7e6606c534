"""``clustrix clean`` through the console script, against the lab's sshd.

The remote work area is laid out by hand as the lab user (run directories and
environment files), some made old with ``touch -d``, then cleaned."""

from __future__ import annotations

import asyncio
import shlex
import time
from pathlib import Path
from typing import Any

import pytest

from clustrix._records import JobUpdate, RecordStore, Target
from clustrix._states import JobState

from ..remote.conftest import as_lab_user
from .conftest import Cli
from .test_config_commands import lab_fields, lab_work, write_config

__all__ = ["lab_work"]

DAY = 86400.0
# Made on the lab host as the lab user: $1 is the work dir.
_LAYOUT = r"""
set -e
w=$1
mkdir -p "$w/runs/cxoldrun00001/tasks" "$w/runs/cxnewrun00001" "$w/runs/cxbusyrun0001" \
    "$w/envs/oldhash/bin" "$w/envs/oldhash.src" "$w/envs/usedhash/bin" "$w/envs/newhash/bin"
echo result >"$w/runs/cxoldrun00001/tasks/0.result"
echo fresh >"$w/runs/cxnewrun00001/spec.json"
echo "exec $w/envs/usedhash/bin/python runner" >"$w/runs/cxbusyrun0001/job.sh"
echo pip >"$w/envs/oldhash.log"
for e in oldhash usedhash newhash; do touch "$w/envs/$e/READY"; done
old() { find "$@" -exec touch -h -d '40 days ago' {} +; }
old "$w/runs/cxoldrun00001" "$w/runs/cxbusyrun0001" "$w/envs/oldhash" "$w/envs/oldhash.src" \
    "$w/envs/oldhash.log" "$w/envs/usedhash"
"""


def _records(path: Path, target: Target) -> None:
    """cxoldrun00001 ended 40 days ago; cxbusyrun0001 (old too) is still RUNNING."""
    store = RecordStore(path)
    then = time.time() - 40 * DAY

    async def fill() -> None:
        for key in ("cxoldrun00001", "cxbusyrun0001"):
            await store.record_submission(
                key, function="f", target=target, job_keys=[key], sweep=False, submitted_at=then
            )
        await store.update_states(
            [
                JobUpdate("cxoldrun00001", JobState.COMPLETED, exit_code=0, ended_at=then),
                JobUpdate("cxbusyrun0001", JobState.RUNNING, native_id="4242"),
            ]
        )
        await store.aclose()

    asyncio.run(fill())


def _table(text: str) -> list[list[str]]:
    """The cells of each row of a rich table (kind, name, age, size, action)."""
    return [[c.strip() for c in line.split("│")[1:-1]] for line in text.splitlines()
            if line.startswith("│")]  # fmt: skip


def _remote(lab: dict[str, Any], work: str) -> set[str]:
    root = Path(lab["home"]) / work
    return {f"{d}/{p.name}" for d in ("runs", "envs") for p in (root / d).iterdir()}


@pytest.mark.lab
def test_clean_dry_run_then_clean(
    cli: Cli, isolated_config: Path, records: Path, lab: dict[str, Any], lab_work: str
) -> None:
    fields = lab_fields(lab, "slurm", f"~/{lab_work}")
    write_config(isolated_config, fields)
    work = f"{lab['home']}/{lab_work}"
    made = as_lab_user(lab, f"sh -c {shlex.quote(_LAYOUT)} sh {shlex.quote(work)}")
    assert made.returncode == 0, made.stderr
    _records(records, Target("slurm", lab["host"], lab["ports"]["slurm"], lab["user"]))
    before = _remote(lab, lab_work)
    assert "runs/cxoldrun00001" in before and "envs/oldhash.log" in before

    dry = cli("clean", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    listed = {(cells[0], cells[1]): cells[4] for cells in _table(dry.stdout)}
    assert listed == {("run", "cxoldrun00001"): "would remove", ("env", "oldhash"): "would remove"}
    for young_or_busy in ("cxnewrun00001", "cxbusyrun0001", "usedhash", "newhash"):
        assert young_or_busy not in dry.stdout
    assert "would remove 1 run(s) and 1 environment(s)" in dry.stdout
    assert _remote(lab, lab_work) == before  # nothing removed
    assert RecordStore(records).get("cxoldrun00001") is not None

    everything = cli("clean", "--dry-run", "--all")
    assert "kept (in use)" in everything.stdout and "kept (young)" in everything.stdout
    rows = {cells[1]: cells[4] for cells in _table(everything.stdout)}
    assert rows["cxbusyrun0001"] == rows["usedhash"] == "kept (in use)"
    assert rows["cxnewrun00001"] == rows["newhash"] == "kept (young)"

    done = cli("clean")
    assert done.returncode == 0, done.stderr
    assert "removed 1 run(s) and 1 environment(s)" in done.stdout
    assert "pruned 1 finished submission(s)" in done.stdout
    after = _remote(lab, lab_work)
    assert after == before - {"runs/cxoldrun00001", "envs/oldhash", "envs/oldhash.src",
                              "envs/oldhash.log"}  # fmt: skip
    store = RecordStore(records)
    assert store.get("cxoldrun00001") is None and store.get("cxbusyrun0001") is not None

    # with a shorter retention the young run goes as well (the busy one never does)
    shorter = cli("clean", "--older-than", "0")
    assert shorter.returncode == 0, shorter.stderr
    left = _remote(lab, lab_work)
    assert "runs/cxnewrun00001" not in left and "runs/cxbusyrun0001" in left
    assert "envs/usedhash" in left  # the busy run's job script uses it


def test_clean_on_local_has_nothing_to_do(cli: Cli) -> None:
    done = cli("clean", "--dry-run")
    assert done.returncode == 0, done.stderr
    assert "no remote_work_dir to clean" in done.stdout


def test_clean_bad_usage(cli: Cli) -> None:
    done = cli("clean", "--older-than", "soon")
    assert done.returncode == 2 and "older-than" in done.stderr
