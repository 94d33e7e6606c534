"""The filesystem helpers over SSH against the lab's sshd, checked against the local
computation on the very same tree (the lab host is this machine)."""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import clustrix
from clustrix import ClusterConfig
from clustrix import fs as cfs
from clustrix.transport.ssh import SSHTransport

from .conftest import ssh_config

LOCAL = ClusterConfig(cluster_type="local")


WORK_DIR = f"~/.clustrix-fs-test-{os.getpid()}"


@pytest.fixture
def remote(lab: dict[str, Any]) -> ClusterConfig:
    return ssh_config(lab, WORK_DIR)


@pytest.fixture(scope="module")
def tree(lab: dict[str, Any]) -> Iterator[tuple[str, Path]]:
    """10,000 files below `remote_work_dir/data tree` (name relative to it, local path),
    made once for this module."""
    root = Path(lab["home"]) / WORK_DIR.removeprefix("~/") / "data tree 'q'"
    for d in range(100):
        folder = root / f"dir {d:02d}" / ("deep" if d % 3 == 0 else "")
        folder.mkdir(parents=True, exist_ok=True)
        for f in range(100):
            suffix = ".csv" if f % 4 == 0 else ".txt"
            (folder / f"f{f:03d}{suffix}").write_bytes(b"x" * (f % 17))
    (root / "ünï cødé $(x).txt").write_text("u")
    (root / "link.txt").symlink_to(root / "dir 00")
    subprocess.run(["chown", "-R", f"{lab['user']}:{lab['user']}", str(root.parent)], check=True)
    yield "data tree 'q'", root
    shutil.rmtree(root.parent, ignore_errors=True)


class Counter:
    """Counts the transport's remote operations (commands and SFTP requests)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        for name in ("run", "_sftp_call"):
            original = getattr(SSHTransport, name)

            async def counted(self_: SSHTransport, *a: Any, _o: Any = original, **k: Any) -> Any:
                self.calls += 1
                return await _o(self_, *a, **k)

            monkeypatch.setattr(SSHTransport, name, counted)


async def test_every_helper_matches_the_local_computation(
    remote: ClusterConfig, tree: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    name, root = tree
    await cfs.ls(".", remote)  # warm up: login and home directory
    counter = Counter(monkeypatch)
    checks: list[tuple[str, Any, Any]] = [
        ("ls", await cfs.ls(name, remote), clustrix.cluster_ls(str(root), LOCAL)),
        (
            "find",
            await cfs.find("*.csv", name, remote),
            clustrix.cluster_find("*.csv", str(root), LOCAL),
        ),
        (
            "glob",
            await cfs.glob("*.txt", name, remote),
            clustrix.cluster_glob("*.txt", str(root), LOCAL),
        ),
        ("du", await cfs.du(name, remote), clustrix.cluster_du(str(root), LOCAL)),
        (
            "count",
            await cfs.count_files(name, "*", remote),
            clustrix.cluster_count_files(str(root), "*", LOCAL),
        ),
        (
            "stat",
            await cfs.stat(f"{name}/dir 05/f003.txt", remote),
            clustrix.cluster_stat(str(root / "dir 05" / "f003.txt"), LOCAL),
        ),
        (
            "stat-link",
            await cfs.stat(f"{name}/link.txt", remote),
            clustrix.cluster_stat(str(root / "link.txt"), LOCAL),
        ),
        ("exists", await cfs.exists(f"{name}/ünï cødé $(x).txt", remote), True),
        ("missing", await cfs.exists(f"{name}/nope", remote), False),
        ("isdir", await cfs.isdir(f"{name}/dir 01", remote), True),
        ("isfile", await cfs.isfile(f"{name}/dir 01", remote), False),
        ("isfile2", await cfs.isfile(f"{name}/dir 01/f001.txt", remote), True),
    ]
    for what, got, expected in checks:
        if what.startswith("stat"):  # SFTP (version 3) carries whole seconds
            expected = dataclasses.replace(expected, modified=float(int(expected.modified)))
        assert got == expected, what
    assert len(await cfs.find("*", name, remote)) == 10_002  # every file, links not followed
    # whole trees are one command each, single paths a request or two: never per file
    assert counter.calls <= 2 * (len(checks) + 1), counter.calls


def test_sync_names_work_over_ssh(remote: ClusterConfig, tree: tuple[str, Path]) -> None:
    name, root = tree
    assert clustrix.cluster_count_files(name, "*.csv", remote) == 2500
    usage = clustrix.cluster_du(name, remote)
    assert usage == clustrix.cluster_du(str(root), LOCAL)
    assert usage.file_count == 10_002


async def test_errors_are_the_builtin_ones(
    remote: ClusterConfig, tree: tuple[str, Path], lab: dict[str, Any]
) -> None:
    name, root = tree
    with pytest.raises(FileNotFoundError):
        await cfs.ls(f"{name}/missing", remote)
    with pytest.raises(FileNotFoundError):
        await cfs.du(f"{name}/missing", remote)
    with pytest.raises(FileNotFoundError):
        await cfs.stat(f"{name}/missing", remote)
    with pytest.raises(NotADirectoryError):
        await cfs.find("*", f"{name}/dir 01/f001.txt", remote)
    locked = root.parent / "locked"
    locked.mkdir()
    (locked / "secret").write_text("s")
    os.chmod(locked, 0o700)  # owned by root: the lab user may not enter
    try:
        with pytest.raises(PermissionError):
            await cfs.ls("locked", remote)
        with pytest.raises(PermissionError):
            await cfs.du(".", remote)
    finally:
        shutil.rmtree(locked)


async def test_absolute_and_home_paths(
    remote: ClusterConfig, tree: tuple[str, Path], lab: dict[str, Any]
) -> None:
    _, root = tree
    assert await cfs.ls(str(root), remote) == clustrix.cluster_ls(str(root), LOCAL)
    assert await cfs.isdir("~/" + str(root.relative_to(lab["home"])), remote)
