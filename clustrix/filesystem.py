"""The seed's ``clustrix.filesystem`` module: `ClusterFilesystem` and the helpers.

Thin aliases of `clustrix.fs` (one implementation): each method of
``ClusterFilesystem(config)`` is the ``cluster_*`` function of the same name with
that config.
"""

from __future__ import annotations

from ._config import ClusterConfig, get_config
from .fs import (
    DiskUsage,
    FileInfo,
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


class ClusterFilesystem:
    """The filesystem of the cluster `config` describes (the global config by default)."""

    def __init__(self, config: ClusterConfig | None = None) -> None:
        self.config = config if config is not None else get_config()

    def ls(self, path: str = ".") -> list[str]:
        """Sorted names of the entries in directory `path`."""
        return cluster_ls(path, self.config)

    def find(self, pattern: str, path: str = ".") -> list[str]:
        """Files below `path` whose name matches `pattern`, relative to `path`, sorted."""
        return cluster_find(pattern, path, self.config)

    def stat(self, path: str) -> FileInfo:
        """A `FileInfo` for `path`."""
        return cluster_stat(path, self.config)

    def exists(self, path: str) -> bool:
        """True if `path` exists."""
        return cluster_exists(path, self.config)

    def isdir(self, path: str) -> bool:
        """True if `path` is a directory."""
        return cluster_isdir(path, self.config)

    def isfile(self, path: str) -> bool:
        """True if `path` is a regular file."""
        return cluster_isfile(path, self.config)

    def glob(self, pattern: str, path: str = ".") -> list[str]:
        """Names in directory `path` matching `pattern`, sorted."""
        return cluster_glob(pattern, path, self.config)

    def du(self, path: str = ".") -> DiskUsage:
        """Total size and number of files below `path`."""
        return cluster_du(path, self.config)

    def count_files(self, path: str = ".", pattern: str = "*") -> int:
        """How many files below `path` match `pattern`."""
        return cluster_count_files(path, pattern, self.config)

    def __repr__(self) -> str:
        return f"<ClusterFilesystem {self.config.cluster_type} {self.config.cluster_host or ''}>"


__all__ = [
    "ClusterFilesystem",
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
]
