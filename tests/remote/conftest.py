"""Fixtures for tests against the real lab (tests/lab/up.sh): OpenSSH, Slurm, SGE, PBS."""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from clustrix import ClusterConfig

LAB_JSON = Path("/var/lib/clustrix-lab/lab.json")


@pytest.fixture(scope="session")
def lab() -> dict[str, Any]:
    """The lab's description; a FAILURE in CI when the lab is missing, else a skip."""
    status = os.environ.get("CLUSTRIX_LAB_STATUS")
    if LAB_JSON.is_file() and status in (None, "up"):
        data: dict[str, Any] = json.loads(LAB_JSON.read_text())
        if data.get("ok"):
            return data
    message = (
        "needs the real test lab (sshd, Slurm, Grid Engine): run `bash scripts/test.sh` as "
        "root on Debian 12, which brings it up with tests/lab/up.sh"
    )
    if os.environ.get("CI") == "true":
        pytest.fail(f"lab not available in CI: {message}")
    pytest.skip(message)


@pytest.fixture
def remote_dir(lab: dict[str, Any]) -> Iterator[str]:
    """A fresh remote_work_dir below the lab user's home, removed afterwards."""
    name = f".clustrix-test-{secrets.token_hex(4)}"
    yield f"~/{name}"
    directory = Path(lab["home"]) / name
    stop_jobs_in(lab, str(directory))
    shutil.rmtree(directory, ignore_errors=True)


def stop_jobs_in(lab: dict[str, Any], directory: str) -> None:
    """End whatever a test left running in `directory`: Slurm jobs working there (also
    pending ones) and every process of the lab user started from there (a test that
    failed midway must not leave a job holding the lab's CPUs with no time limit)."""
    listing = subprocess.run(
        ["squeue", "-h", "-u", lab["user"], "-o", "%A %Z"], capture_output=True, text=True
    )
    ids = [
        line.split()[0]
        for line in listing.stdout.splitlines()
        if len(line.split()) == 2 and line.split()[1].startswith(directory)
    ]
    if ids:
        subprocess.run(["scancel", *ids], capture_output=True)
    subprocess.run(["pkill", "-KILL", "-u", lab["user"], "-f", directory], capture_output=True)


def ssh_config(lab: dict[str, Any], remote_dir: str, **fields: Any) -> ClusterConfig:
    """A ClusterConfig for the lab's sshd as the lab user (key auth)."""
    values: dict[str, Any] = {
        "cluster_type": "ssh",
        "cluster_host": lab["host"],
        "cluster_port": lab["ports"]["ssh"],
        "username": lab["user"],
        "key_file": lab["key_file"],
        "known_hosts": lab["known_hosts"],
        "remote_work_dir": remote_dir,
        "job_poll_interval": 2,
    }
    values.update(fields)
    return ClusterConfig(**values)


@pytest.fixture
def lab_ssh(lab: dict[str, Any], remote_dir: str) -> ClusterConfig:
    return ssh_config(lab, remote_dir)


class LoginCounter:
    """Counts sshd's accepted logins in the lab's log (OpenSSH's own record)."""

    def __init__(self, lab: dict[str, Any]) -> None:
        self._path = Path(lab["sshd_log"])
        self._pattern = re.compile(lab["sshd_login_regex"])
        self._start = self._path.stat().st_size

    def count(self, user: str | None = None, ports: list[int] | None = None) -> int:
        """Logins since this counter was made (of `user`, from these client `ports`)."""
        with open(self._path, "rb") as handle:
            handle.seek(self._start)
            text = handle.read().decode(errors="replace")
        lines = [line for line in text.splitlines() if self._pattern.search(_message(line))]
        if user is not None:
            lines = [line for line in lines if f" for {user} from " in line]
        if ports is not None:  # other programs may log in meanwhile: count ours only
            lines = [line for line in lines if any(f" port {p} " in line for p in ports)]
        return len(lines)


def _message(line: str) -> str:
    # sshd -E writes bare messages; syslog would prefix them with "... sshd[PID]: "
    return re.sub(r"^.*?sshd\[\d+\]: ", "", line)


@pytest.fixture
def logins(lab: dict[str, Any]) -> LoginCounter:
    return LoginCounter(lab)


def as_lab_user(lab: dict[str, Any], *argv: str) -> subprocess.CompletedProcess[str]:
    """Run a command on the lab host as the lab user, through OpenSSH itself."""
    return subprocess.run(
        ["ssh", "-F", lab["ssh_config"], "clustrix-lab", *argv],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
