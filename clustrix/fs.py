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
import os
import posixpath
import stat as stat_module
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from ._config import ClusterConfig, get_config
from ._exceptions import ConfigError
from ._local_fs import (
    DiskUsage,
    FileInfo,
    count_files_local,
    du_local,
    find_local,
    glob_local,
    ls_local,
    stat_local,
)
from ._remote_fs import RemoteTree, remote_tree
from .oncluster.runner import IN_JOB_ENV

__all__ = [
    "DiskUsage",
    "FileInfo",
    "cluster_count_files",
    "cluster_du",
    "cluster_exists",
    "cluster_find",
    "cluster_glob",
    "cluster_isdir",
    "cluster_isfile",
    "cluster_ls",
    "cluster_stat",
    "count_files",
    "du",
    "exists",
    "find",
    "glob",
    "isdir",
    "isfile",
    "ls",
    "stat",
]

T = TypeVar("T")


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


# -- async API (primary) -----------------------------------------------------------------
async def ls(path: str = ".", config: ClusterConfig | None = None) -> list[str]:
    """Sorted names of the entries in directory `path`.

    Args:
        path: a directory; relative paths start at `remote_work_dir` (the working
            directory for the local backend).
        config: the cluster; the global configuration (`clustrix.configure`) if None.

    Raises:
        FileNotFoundError: `path` does not exist.
        NotADirectoryError: `path` is not a directory.
        ConfigError: `config` is a Kubernetes configuration (no filesystem to reach).
        ClusterConnectionError: the cluster cannot be reached (also AuthenticationError,
            HostKeyError).
    """
    return await _act(config, path, ls_local, lambda tree, p: tree.ls(p))


async def find(pattern: str, path: str = ".", config: ClusterConfig | None = None) -> list[str]:
    """Files below `path` (recursively) whose name matches `pattern`, relative, sorted.

    Args:
        pattern: a shell-style pattern (`fnmatch`, case-sensitive) for file names.
        path: a directory; relative paths start at `remote_work_dir` (the working
            directory for the local backend).
        config: the cluster; the global configuration (`clustrix.configure`) if None.

    Raises:
        FileNotFoundError: `path` does not exist.
        NotADirectoryError: `path` is not a directory.
        ConfigError: `config` is a Kubernetes configuration (no filesystem to reach).
        ClusterConnectionError: the cluster cannot be reached (also AuthenticationError,
            HostKeyError).
    """
    return await _act(
        config, path, lambda p: find_local(pattern, p), lambda tree, p: tree.find(pattern, p)
    )


async def stat(path: str, config: ClusterConfig | None = None) -> FileInfo:
    """A `FileInfo` for `path` (a symbolic link is described, not followed).

    Args:
        path: a file or directory; relative paths start at `remote_work_dir` (the working
            directory for the local backend).
        config: the cluster; the global configuration (`clustrix.configure`) if None.

    Raises:
        FileNotFoundError: `path` does not exist.
        ConfigError: `config` is a Kubernetes configuration (no filesystem to reach).
        ClusterConnectionError: the cluster cannot be reached (also AuthenticationError,
            HostKeyError).
    """

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

    return await _act(config, path, stat_local, remote)


async def exists(path: str, config: ClusterConfig | None = None) -> bool:
    """True if `path` exists.

    Args:
        path: a file or directory; relative paths start at `remote_work_dir` (the working
            directory for the local backend).
        config: the cluster; the global configuration (`clustrix.configure`) if None.

    Raises:
        ConfigError: `config` is a Kubernetes configuration (no filesystem to reach).
        ClusterConnectionError: the cluster cannot be reached (also AuthenticationError,
            HostKeyError).
    """
    return await _act(config, path, os.path.lexists, lambda tree, p: tree.exists(p))


async def isdir(path: str, config: ClusterConfig | None = None) -> bool:
    """True if `path` is a directory.

    Args:
        path: any path; relative paths start at `remote_work_dir` (the working
            directory for the local backend).
        config: the cluster; the global configuration (`clustrix.configure`) if None.

    Raises:
        ConfigError: `config` is a Kubernetes configuration (no filesystem to reach).
        ClusterConnectionError: the cluster cannot be reached (also AuthenticationError,
            HostKeyError).
    """

    async def remote(tree: RemoteTree, target: str) -> bool:
        return stat_module.S_ISDIR(await tree.mode(target) or 0)

    return await _act(config, path, os.path.isdir, remote)


async def isfile(path: str, config: ClusterConfig | None = None) -> bool:
    """True if `path` is a regular file.

    Args:
        path: any path; relative paths start at `remote_work_dir` (the working
            directory for the local backend).
        config: the cluster; the global configuration (`clustrix.configure`) if None.

    Raises:
        ConfigError: `config` is a Kubernetes configuration (no filesystem to reach).
        ClusterConnectionError: the cluster cannot be reached (also AuthenticationError,
            HostKeyError).
    """

    async def remote(tree: RemoteTree, target: str) -> bool:
        return stat_module.S_ISREG(await tree.mode(target) or 0)

    return await _act(config, path, os.path.isfile, remote)


async def glob(pattern: str, path: str = ".", config: ClusterConfig | None = None) -> list[str]:
    """Names in directory `path` itself that match `pattern`, sorted.

    Args:
        pattern: a shell-style pattern (`fnmatch`, case-sensitive) for entry names.
        path: a directory; relative paths start at `remote_work_dir` (the working
            directory for the local backend).
        config: the cluster; the global configuration (`clustrix.configure`) if None.

    Raises:
        FileNotFoundError: `path` does not exist.
        NotADirectoryError: `path` is not a directory.
        ConfigError: `config` is a Kubernetes configuration (no filesystem to reach).
        ClusterConnectionError: the cluster cannot be reached (also AuthenticationError,
            HostKeyError).
    """
    return await _act(
        config, path, lambda p: glob_local(pattern, p), lambda tree, p: tree.glob(pattern, p)
    )


async def du(path: str = ".", config: ClusterConfig | None = None) -> DiskUsage:
    """Total size (apparent bytes) and number of files below `path`, as a `DiskUsage`.

    Args:
        path: a directory; relative paths start at `remote_work_dir` (the working
            directory for the local backend).
        config: the cluster; the global configuration (`clustrix.configure`) if None.

    Raises:
        FileNotFoundError: `path` does not exist.
        NotADirectoryError: `path` is not a directory.
        ConfigError: `config` is a Kubernetes configuration (no filesystem to reach).
        ClusterConnectionError: the cluster cannot be reached (also AuthenticationError,
            HostKeyError).
    """

    async def remote(tree: RemoteTree, target: str) -> DiskUsage:
        files = await tree.walk(target)
        return DiskUsage(sum(size for _, size in files), len(files))

    return await _act(config, path, du_local, remote)


async def count_files(
    path: str = ".", pattern: str = "*", config: ClusterConfig | None = None
) -> int:
    """How many files below `path` have a name matching `pattern`.

    Args:
        path: a directory; relative paths start at `remote_work_dir` (the working
            directory for the local backend).
        pattern: a shell-style pattern (`fnmatch`, case-sensitive) for file names.
        config: the cluster; the global configuration (`clustrix.configure`) if None.

    Raises:
        FileNotFoundError: `path` does not exist.
        NotADirectoryError: `path` is not a directory.
        ConfigError: `config` is a Kubernetes configuration (no filesystem to reach).
        ClusterConnectionError: the cluster cannot be reached (also AuthenticationError,
            HostKeyError).
    """

    async def remote(tree: RemoteTree, target: str) -> int:
        return len(await tree.find(pattern, target))

    return await _act(config, path, lambda p: count_files_local(p, pattern), remote)


from ._fs_sync import (  # noqa: E402  (the sync names wrap the functions above)
    cluster_count_files,
    cluster_du,
    cluster_exists,
    cluster_find,
    cluster_glob,
    cluster_isdir,
    cluster_isfile,
    cluster_ls,
    cluster_stat,
)
