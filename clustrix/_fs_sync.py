"""The seed's synchronous filesystem helpers: ``cluster_ls`` and friends.

Each blocks until the async function of the same name in `clustrix.fs` is done (it
runs on clustrix's own event loop thread, so it also works inside a running loop's
thread-pool worker and in a notebook).
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any, TypeVar

from . import fs
from ._config import ClusterConfig
from ._local_fs import DiskUsage, FileInfo
from ._portal import PORTAL

T = TypeVar("T")


def _sync(coroutine: Coroutine[Any, Any, T]) -> T:
    return PORTAL.run(coroutine)


def cluster_ls(path: str = ".", config: ClusterConfig | None = None) -> list[str]:
    """Sorted names of the entries in directory `path` on the cluster.

    The synchronous form of `clustrix.fs.ls` (it blocks until done).

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
    return _sync(fs.ls(path, config))


def cluster_find(pattern: str, path: str = ".", config: ClusterConfig | None = None) -> list[str]:
    """Files below `path` on the cluster whose name matches `pattern`, relative, sorted.

    The synchronous form of `clustrix.fs.find` (it blocks until done).

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
    return _sync(fs.find(pattern, path, config))


def cluster_stat(path: str, config: ClusterConfig | None = None) -> FileInfo:
    """A `FileInfo` for `path` on the cluster (a link is described, not followed).

    The synchronous form of `clustrix.fs.stat` (it blocks until done).

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
    return _sync(fs.stat(path, config))


def cluster_exists(path: str, config: ClusterConfig | None = None) -> bool:
    """True if `path` exists on the cluster.

    The synchronous form of `clustrix.fs.exists` (it blocks until done).

    Args:
        path: a file or directory; relative paths start at `remote_work_dir` (the working
            directory for the local backend).
        config: the cluster; the global configuration (`clustrix.configure`) if None.

    Raises:
        ConfigError: `config` is a Kubernetes configuration (no filesystem to reach).
        ClusterConnectionError: the cluster cannot be reached (also AuthenticationError,
            HostKeyError).
    """
    return _sync(fs.exists(path, config))


def cluster_isdir(path: str, config: ClusterConfig | None = None) -> bool:
    """True if `path` is a directory on the cluster.

    The synchronous form of `clustrix.fs.isdir` (it blocks until done).

    Args:
        path: any path; relative paths start at `remote_work_dir` (the working
            directory for the local backend).
        config: the cluster; the global configuration (`clustrix.configure`) if None.

    Raises:
        ConfigError: `config` is a Kubernetes configuration (no filesystem to reach).
        ClusterConnectionError: the cluster cannot be reached (also AuthenticationError,
            HostKeyError).
    """
    return _sync(fs.isdir(path, config))


def cluster_isfile(path: str, config: ClusterConfig | None = None) -> bool:
    """True if `path` is a regular file on the cluster.

    The synchronous form of `clustrix.fs.isfile` (it blocks until done).

    Args:
        path: any path; relative paths start at `remote_work_dir` (the working
            directory for the local backend).
        config: the cluster; the global configuration (`clustrix.configure`) if None.

    Raises:
        ConfigError: `config` is a Kubernetes configuration (no filesystem to reach).
        ClusterConnectionError: the cluster cannot be reached (also AuthenticationError,
            HostKeyError).
    """
    return _sync(fs.isfile(path, config))


def cluster_glob(pattern: str, path: str = ".", config: ClusterConfig | None = None) -> list[str]:
    """Names in directory `path` itself that match `pattern`, sorted on the cluster.

    The synchronous form of `clustrix.fs.glob` (it blocks until done).

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
    return _sync(fs.glob(pattern, path, config))


def cluster_du(path: str = ".", config: ClusterConfig | None = None) -> DiskUsage:
    """Total size and number of files below `path` on the cluster, as a `DiskUsage`.

    The synchronous form of `clustrix.fs.du` (it blocks until done).

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
    return _sync(fs.du(path, config))


def cluster_count_files(
    path: str = ".", pattern: str = "*", config: ClusterConfig | None = None
) -> int:
    """How many files below `path` have a name matching `pattern` on the cluster.

    The synchronous form of `clustrix.fs.count_files` (it blocks until done).

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
    return _sync(fs.count_files(path, pattern, config))
