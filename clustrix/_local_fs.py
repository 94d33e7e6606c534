"""The filesystem helpers' local implementation: pure functions over this machine's
files (also what a running job uses for its own cluster), and the records they return.
"""

from __future__ import annotations

import datetime
import fnmatch
import os
import stat as stat_module
from dataclasses import dataclass
from pathlib import Path


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


def ls_local(path: Path) -> list[str]:
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


def find_local(pattern: str, path: Path) -> list[str]:
    return sorted(
        rel for rel, _ in _walk_files(path) if fnmatch.fnmatchcase(os.path.basename(rel), pattern)
    )


def stat_local(path: Path) -> FileInfo:
    info = os.lstat(path)
    return FileInfo(
        name=path.name,
        size=info.st_size,
        modified=info.st_mtime,
        is_dir=stat_module.S_ISDIR(info.st_mode),
        permissions=f"{stat_module.S_IMODE(info.st_mode) & 0o777:03o}",
    )


def glob_local(pattern: str, path: Path) -> list[str]:
    if not path.is_dir():
        os.stat(path)
        raise NotADirectoryError(f"not a directory: {path}")
    return sorted(name for name in os.listdir(path) if fnmatch.fnmatchcase(name, pattern))


def du_local(path: Path) -> DiskUsage:
    files = _walk_files(path)
    return DiskUsage(sum(info.st_size for _, info in files), len(files))


def count_files_local(path: Path, pattern: str) -> int:
    return len(find_local(pattern, path))
