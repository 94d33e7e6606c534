"""Filesystem helpers for the cluster (the seed's API: names and signatures kept).

The async functions here (``await clustrix.fs.ls(...)``) are the implementation;
``cluster_ls`` and friends are thin synchronous wrappers. They act on this machine
for ``cluster_type="local"``, on the login node's files for a scheduler without
`cluster_host`, and when called inside a running clustrix job (the runner marks the
environment), so a job can look at its own cluster's files. Otherwise they go over
the pooled SSH connection (`clustrix._remote_fs`). Relative paths start from
`remote_work_dir` for a cluster configuration, on the client and inside a job alike
(so ``cluster_glob("*.csv", "input/", config)`` names the same files on both sides),
and from the working directory for ``cluster_type="local"``.

Calling a helper inside a job needs clustrix importable on the cluster:
``environment="replicate"`` ships it (with the rest of the local environment).

"Files" are everything that is not a directory; symbolic links are reported as
they are, never followed.
"""

from __future__ import annotations

import asyncio
import datetime
import fnmatch
import os
import posixpath
import stat as stat_module
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from ._config import ClusterConfig, get_config
from ._exceptions import ConfigError
from ._portal import PORTAL
from ._remote_fs import RemoteTree, remote_tree
from .oncluster.runner import IN_JOB_ENV

T = TypeVar("T")


@dataclass(frozen=True)
class FileInfo:
    """What `cluster_stat` reports about one path (a symbolic link is not followed).

    `name` is the last component of the path, `size` its size in bytes, `modified` its
    modification time as a Unix time, `is_dir` whether it is a directory and
    `permissions` its mode bits as three octal digits (e.g. ``"755"``).
    """

    name: str
    size: int
    modified: float  # Unix time
    is_dir: bool
    permissions: str  # three octal digits, e.g. "755"

    @property
    def is_file(self) -> bool:
        """True for everything that is not a directory (as the seed's `FileInfo`)."""
        return not self.is_dir

    @property
    def modified_datetime(self) -> datetime.datetime:
        """`modified` as a naive local `datetime.datetime`."""
        return datetime.datetime.fromtimestamp(self.modified)


@dataclass(frozen=True)
class DiskUsage:
    """Bytes and number of files below a directory (`cluster_du`).

    `total_bytes` sums the sizes of every non-directory below it (links not followed);
    `file_count` counts them.
    """

    total_bytes: int
    file_count: int

    @property
    def total_mb(self) -> float:
        """`total_bytes` in MiB (1024²)."""
        return self.total_bytes / 1024**2

    @property
    def total_gb(self) -> float:
        """`total_bytes` in GiB (1024³)."""
        return self.total_bytes / 1024**3


# -- the local implementation (pure functions over this machine's files) ----------------
def _ls(path: Path) -> list[str]:
    return sorted(os.listdir(path))


def _walk_files(path: Path) -> list[tuple[str, os.stat_result]]:
    """(relative path, lstat) of every non-directory below `path`; links not followed."""
    if not path.is_dir():
        os.stat(path)  # raises FileNotFoundError / PermissionError as appropriate
        raise NotADirectoryError(f"not a directory: {path}")
    found = []
    for root, dirs, files in os.walk(path, onerror=_raise, followlinks=False):
        for name in files + [d for d in dirs if os.path.islink(os.path.join(root, d))]:
            full = os.path.join(root, name)
            found.append((os.path.relpath(full, path), os.lstat(full)))
    return found


def _raise(error: OSError) -> None:
    raise error


def _find(pattern: str, path: Path) -> list[str]:
    return sorted(
        rel for rel, _ in _walk_files(path) if fnmatch.fnmatchcase(os.path.basename(rel), pattern)
    )


def _stat(path: Path) -> FileInfo:
    info = os.lstat(path)
    return FileInfo(
        name=path.name,
        size=info.st_size,
        modified=info.st_mtime,
        is_dir=stat_module.S_ISDIR(info.st_mode),
        permissions=f"{stat_module.S_IMODE(info.st_mode) & 0o777:03o}",
    )


def _glob(pattern: str, path: Path) -> list[str]:
    if not path.is_dir():
        os.stat(path)
        raise NotADirectoryError(f"not a directory: {path}")
    return sorted(name for name in os.listdir(path) if fnmatch.fnmatchcase(name, pattern))


def _du(path: Path) -> DiskUsage:
    files = _walk_files(path)
    return DiskUsage(sum(info.st_size for _, info in files), len(files))


def _count_files(path: Path, pattern: str) -> int:
    return len(_find(pattern, path))


# -- choosing where to act ---------------------------------------------------------------
def _is_local(config: ClusterConfig) -> bool:
    """True where the helpers act on this machine's files."""
    if os.environ.get(IN_JOB_ENV) == "1" or config.cluster_type == "local":
        return True
    if config.cluster_type == "kubernetes":
        raise ConfigError(
            "the filesystem helpers need a filesystem to reach; cluster_type='kubernetes' "
            "has none (read files inside the job instead)"
        )
    return not config.cluster_host  # a scheduler with no host: we are on the login node


def _local_path(path: str | os.PathLike[str], config: ClusterConfig) -> Path:
    """`path` on this machine, a relative one resolved as the client resolves it.

    For a cluster configuration that is against `remote_work_dir`, also inside a job
    (whatever the job's working directory), its ``~`` expanded on this machine.
    """
    expanded = Path(path).expanduser()
    if config.cluster_type == "local" or expanded.is_absolute():
        return expanded
    return Path(config.remote_work_dir).expanduser() / expanded


async def _act(
    config: ClusterConfig | None,
    path: str,
    local: Callable[[Path], T],
    remote: Callable[[RemoteTree, str], Awaitable[T]],
) -> T:
    config = config or get_config()
    if _is_local(config):
        return await asyncio.to_thread(local, _local_path(path, config))
    return await remote(await remote_tree(config), path)


def _sync(coroutine: Coroutine[Any, Any, T]) -> T:
    return PORTAL.run(coroutine)


# -- async API (primary) -----------------------------------------------------------------
async def ls(path: str = ".", config: ClusterConfig | None = None) -> list[str]:
    """Sorted names of the entries in directory `path`."""
    return await _act(config, path, _ls, lambda tree, p: tree.ls(p))


async def find(pattern: str, path: str = ".", config: ClusterConfig | None = None) -> list[str]:
    """Files below `path` (recursively) whose name matches `pattern`, relative, sorted."""
    return await _act(
        config, path, lambda p: _find(pattern, p), lambda tree, p: tree.find(pattern, p)
    )


async def stat(path: str, config: ClusterConfig | None = None) -> FileInfo:
    """A `FileInfo` for `path` (a symbolic link is described, not followed)."""

    async def remote(tree: RemoteTree, target: str) -> FileInfo:
        full = await tree.path(target)
        attrs = await tree.transport.lstat(full)
        mode = attrs.permissions or 0
        return FileInfo(
            name=posixpath.basename(full.rstrip("/")) or full,
            size=attrs.size or 0,
            modified=float(attrs.mtime or 0),
            is_dir=stat_module.S_ISDIR(mode),
            permissions=f"{stat_module.S_IMODE(mode) & 0o777:03o}",
        )

    return await _act(config, path, _stat, remote)


async def exists(path: str, config: ClusterConfig | None = None) -> bool:
    """True if `path` exists."""
    return await _act(config, path, os.path.lexists, lambda tree, p: tree.exists(p))


async def isdir(path: str, config: ClusterConfig | None = None) -> bool:
    """True if `path` is a directory."""

    async def remote(tree: RemoteTree, target: str) -> bool:
        return stat_module.S_ISDIR(await tree.mode(target) or 0)

    return await _act(config, path, os.path.isdir, remote)


async def isfile(path: str, config: ClusterConfig | None = None) -> bool:
    """True if `path` is a regular file."""

    async def remote(tree: RemoteTree, target: str) -> bool:
        return stat_module.S_ISREG(await tree.mode(target) or 0)

    return await _act(config, path, os.path.isfile, remote)


async def glob(pattern: str, path: str = ".", config: ClusterConfig | None = None) -> list[str]:
    """Names in directory `path` itself that match `pattern`, sorted."""
    return await _act(
        config, path, lambda p: _glob(pattern, p), lambda tree, p: tree.glob(pattern, p)
    )


async def du(path: str = ".", config: ClusterConfig | None = None) -> DiskUsage:
    """Total size (apparent bytes) and number of files below `path`."""

    async def remote(tree: RemoteTree, target: str) -> DiskUsage:
        files = await tree.walk(target)
        return DiskUsage(sum(size for _, size in files), len(files))

    return await _act(config, path, _du, remote)


async def count_files(
    path: str = ".", pattern: str = "*", config: ClusterConfig | None = None
) -> int:
    """How many files below `path` have a name matching `pattern`."""

    async def remote(tree: RemoteTree, target: str) -> int:
        return len(await tree.find(pattern, target))

    return await _act(config, path, lambda p: _count_files(p, pattern), remote)


# -- the seed's synchronous names (thin wrappers) ----------------------------------------
def cluster_ls(path: str = ".", config: ClusterConfig | None = None) -> list[str]:
    """Sorted names of the entries in directory `path` on the cluster."""
    return _sync(ls(path, config))


def cluster_find(pattern: str, path: str = ".", config: ClusterConfig | None = None) -> list[str]:
    """Files below `path` whose name matches `pattern`, relative to `path`, sorted."""
    return _sync(find(pattern, path, config))


def cluster_stat(path: str, config: ClusterConfig | None = None) -> FileInfo:
    """A `FileInfo` for `path` on the cluster."""
    return _sync(stat(path, config))


def cluster_exists(path: str, config: ClusterConfig | None = None) -> bool:
    """True if `path` exists on the cluster."""
    return _sync(exists(path, config))


def cluster_isdir(path: str, config: ClusterConfig | None = None) -> bool:
    """True if `path` is a directory on the cluster."""
    return _sync(isdir(path, config))


def cluster_isfile(path: str, config: ClusterConfig | None = None) -> bool:
    """True if `path` is a regular file on the cluster."""
    return _sync(isfile(path, config))


def cluster_glob(pattern: str, path: str = ".", config: ClusterConfig | None = None) -> list[str]:
    """Names in directory `path` matching `pattern`, sorted."""
    return _sync(glob(pattern, path, config))


def cluster_du(path: str = ".", config: ClusterConfig | None = None) -> DiskUsage:
    """Total size and number of files below `path` on the cluster."""
    return _sync(du(path, config))


def cluster_count_files(
    path: str = ".", pattern: str = "*", config: ClusterConfig | None = None
) -> int:
    """How many files below `path` match `pattern` on the cluster."""
    return _sync(count_files(path, pattern, config))
