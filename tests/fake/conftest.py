"""Fixtures for the batch path against the fake schedulers (no lab, no root).

clustrix runs with ``cluster_host=None``, so its local transport runs the fake
``sbatch``/``qsub``/... found first on PATH; they run the job scripts on this machine.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import clustrix
from clustrix import ClusterConfig

from ..fakesched.control import FakeScheduler
from ..fakesched.sshd import FakeSSHServer


@pytest.fixture(scope="session")
def remote_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One work area for the session, as on a real login node (the bundle is cached)."""
    return tmp_path_factory.mktemp("remote")


def link_bundle(root: Path) -> None:
    """Make the cached runner and agent symlinks to clustrix's own files (same bytes).

    Behaviour is unchanged; coverage then attributes the lines those processes run
    to clustrix's sources.
    """
    package = Path(clustrix.__file__).resolve().parent
    sources = {path.read_bytes(): path for path in package.rglob("*.py")}
    for cached in root.glob("cache/*/*.py"):
        if cached.is_symlink():
            continue
        source = sources.get(cached.read_bytes())
        if source is not None:
            cached.unlink()
            cached.symlink_to(source)


FakeFactory = Callable[[str], FakeScheduler]


@pytest.fixture
def fake_factory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, remote_root: Path
) -> Iterator[FakeFactory]:
    made: list[FakeScheduler] = []
    link_bundle(remote_root)

    def make(kind: str) -> FakeScheduler:
        fake = FakeScheduler(kind, tmp_path / f"fakesched-{kind}")
        for name, value in fake.environ().items():
            monkeypatch.setenv(name, value)
        made.append(fake)
        return fake

    yield make
    for fake in made:
        fake.shutdown()


def config_for(kind: str, remote_root: Path, **fields: Any) -> ClusterConfig:
    """A config that runs the scheduler commands here, with short poll intervals."""
    values: dict[str, Any] = {
        "cluster_type": kind,
        "cluster_host": None,
        "remote_work_dir": str(remote_root),
        "python_executable": sys.executable,
        "job_poll_interval": 0.3,
    }
    values.update(fields)
    return ClusterConfig(**values)


async def until(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    """Poll `condition` until it holds; fail after `timeout` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(0.02)


@pytest.fixture
def fake_modules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A `module` command on PATH that logs its arguments (and fails for 'nosuch')."""
    bin_dir = tmp_path / "modules-bin"
    bin_dir.mkdir()
    log = tmp_path / "module.log"
    script = bin_dir / "module"
    script.write_text(
        "#!/bin/sh\n"
        f'echo "$*" >> {log}\n'
        'case "$2" in nosuch*) echo "ERROR: Unable to locate a modulefile for \'$2\'" >&2;'
        " exit 1;; esac\n"
    )
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    return log


def group_alive(pgid: int) -> bool:
    """Is any process of this process group still running (zombies do not count)?"""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


async def bookkeeping_done(fake: FakeScheduler) -> None:
    """Until the fake recorded the end of every task it ran: results reach the client
    before the scheduler's bookkeeping (the result waiter), as on a real cluster."""
    await until(
        lambda: all(t.get("end") is not None for j in fake.jobs() for t in j["tasks"].values())
    )


def overlap(spans: list[tuple[float, float]]) -> int:
    """The most spans that were open at the same moment."""
    return max(sum(1 for s, e in spans if s <= start < e) for start, _ in spans)


@pytest.fixture
async def sshd(tmp_path: Path) -> AsyncIterator[FakeSSHServer]:
    """An SSH server on 127.0.0.1 for this test (see tests/fakesched/sshd.py)."""
    server = await FakeSSHServer.start(tmp_path)
    yield server
    await server.close()


def ssh_config_for(
    kind: str, sshd: FakeSSHServer, remote_root: Path, **fields: Any
) -> ClusterConfig:
    """A config that reaches this machine through the fake SSH server."""
    values: dict[str, Any] = {
        "cluster_host": "127.0.0.1",
        "cluster_port": sshd.port,
        "key_file": str(sshd.key_file),
        "known_hosts": str(sshd.known_hosts),
    }
    return config_for(kind, remote_root, **{**values, **fields})
