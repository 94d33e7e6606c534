"""Helpers of the example tests: run an example as a user would, in a fresh directory.

An example runs as a subprocess in its own working directory with its own HOME, no
`CLUSTRIX_*` variables and, for a cluster, a `clustrix.yml` written there from the lab's
description (/var/lib/clustrix-lab/lab.json, through the `lab` fixture).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from ..remote.conftest import lab, remote_dir

__all__ = ["lab", "remote_dir"]

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


def example_env(work: Path, **extra: str) -> dict[str, str]:
    """The environment of an example: this one without CLUSTRIX_*, HOME inside `work`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLUSTRIX_")}
    home = work / "home"
    home.mkdir(exist_ok=True)
    env.update(HOME=str(home), PYTHONPATH=str(ROOT), COLUMNS="200", **extra)
    return env


def run_example(
    work: Path, *argv: str, timeout: float = 240, **env: str
) -> subprocess.CompletedProcess[str]:
    """`python <argv>` in `work`; a failure shows the example's own output."""
    process = subprocess.Popen(
        [sys.executable, *argv],
        cwd=work,
        env=example_env(work, **env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGINT)  # asyncio.run cancels, and with it the jobs
        try:
            stdout, stderr = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            stdout, stderr = process.communicate()
        raise AssertionError(f"{argv} did not finish in {timeout} s:\n{stdout}\n{stderr}") from None
    done = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
    assert done.returncode == 0, f"{argv} failed ({done.returncode}):\n{stdout}\n{stderr}"
    return done


def write_lab_config(work: Path, lab: dict[str, Any], remote_dir: str, flavour: str) -> Path:
    """`work/clustrix.yml` for one of the lab's clusters, as a user would write it."""
    fields: dict[str, Any] = {
        "cluster_type": flavour,
        "cluster_host": lab["host"],
        "cluster_port": lab["ports"][flavour],
        "username": lab["user"],
        "key_file": lab["key_file"],
        "known_hosts": lab["known_hosts"],
        "remote_work_dir": remote_dir,
        "job_poll_interval": 2,
    }
    if flavour == "slurm":
        fields["default_partition"] = lab["slurm"]["partition"]
        fields["default_account"] = lab["slurm"]["account"]
    path = work / "clustrix.yml"
    path.write_text(yaml.safe_dump(fields), encoding="utf-8")
    return path


def cancel_slurm_jobs_below(remote_dir: str) -> None:
    """scancel what a failed run left in the queue under `remote_dir`."""
    name = remote_dir.removeprefix("~/")
    listed = subprocess.run(
        ["squeue", "-h", "-o", "%A %o"], capture_output=True, text=True, check=False
    )
    stale = [line.split()[0] for line in listed.stdout.splitlines() if f"/{name}/" in line]
    if stale:
        subprocess.run(["scancel", *stale], check=False)


def table_rows(text: str) -> list[list[str]]:
    """The body rows of a rich table printed in `text` (cells stripped)."""
    return [
        [cell.strip() for cell in line.strip().strip("│").split("│")]
        for line in text.splitlines()
        if line.strip().startswith("│")
    ]
