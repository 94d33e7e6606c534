"""Wait until one of some files exists: inotify where it sees every write, else a stat loop.

Shipped to clusters beside the agent (as ``clustrix_watch.py``), so it imports only the
standard library (inotify is reached through ctypes, on Linux). inotify reports only
what this machine's kernel writes: on a network filesystem (NFS home directories,
Lustre, GPFS...), where compute nodes write the results, it would miss them. So it is
used only on filesystems known to be local, and a short stat loop serves everywhere
else (or when asked for with ``watch="stat"``).
"""

from __future__ import annotations

import ctypes
import errno
import os
import re
import select
import struct
import time
from collections.abc import Iterable, Mapping, Set

STAT_STEP = 0.025  # seconds between two looks of the stat loop
RELIST = 0.5  # the stat loop lists its folders at least this often, changed or not
RECHECK = 1.0  # with inotify: look anyway this often (a safety net, never needed)
#: filesystems where every write goes through this kernel, so inotify sees it
LOCAL_FILESYSTEMS = frozenset(
    {"ext2", "ext3", "ext4", "xfs", "btrfs", "tmpfs", "overlay", "zfs", "f2fs", "jfs"}
    | {"reiserfs", "ramfs", "bcachefs", "nilfs2"}
)
_IN_CLOSE_WRITE, _IN_MOVED_TO, _IN_CREATE, _IN_Q_OVERFLOW = 0x8, 0x80, 0x100, 0x4000
_EVENT = struct.Struct("iIII")  # struct inotify_event: wd, mask, cookie, len (then the name)


class CallerGone(Exception):
    """The caller closed its end of the agent's stdout: nobody waits for the answer."""


def filesystem(path: str, mountinfo: str | None = None) -> str:
    """The type of the filesystem that holds `path` ("" where it cannot be told), from
    `mountinfo` (by default this process's ``/proc/self/mountinfo``)."""
    if mountinfo is None:
        try:
            with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as handle:
                mountinfo = handle.read()
        except OSError:
            return ""
    target, best, kind = os.path.realpath(path), -1, ""
    for line in mountinfo.splitlines():
        left, sep, right = line.partition(" - ")
        fields = left.split()
        if not sep or len(fields) < 5 or not right.split():
            continue
        mount = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), fields[4])
        inside = target == mount or target.startswith(mount.rstrip("/") + "/")
        if inside and len(mount) >= best:  # the deepest (and latest) mount wins
            best, kind = len(mount), right.split()[0]
    return kind


class Inotify:
    """An inotify instance watching folders for files created or renamed into them."""

    def __init__(self, folders: Iterable[str]) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        self.fd: int = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1 failed")
        self.folders: dict[int, str] = {}
        mask = _IN_CLOSE_WRITE | _IN_MOVED_TO | _IN_CREATE
        try:
            for folder in folders:
                wd = libc.inotify_add_watch(self.fd, os.fsencode(folder), mask)
                if wd >= 0:
                    self.folders[wd] = folder
                elif ctypes.get_errno() != errno.ENOENT:  # a folder gone gets nothing new
                    raise OSError(ctypes.get_errno(), f"inotify_add_watch {folder} failed")
        except BaseException:
            os.close(self.fd)
            raise

    def events(self) -> tuple[list[tuple[str, str]], bool]:
        """The (folder, name) of each event waiting, and whether some were lost."""
        found: list[tuple[str, str]] = []
        overflow = False
        while True:
            try:
                data = os.read(self.fd, 1 << 16)
            except BlockingIOError:
                return found, overflow
            offset = 0
            while offset + _EVENT.size <= len(data):
                wd, mask, _, length = _EVENT.unpack_from(data, offset)
                start = offset + _EVENT.size
                name = data[start : start + length].split(b"\0", 1)[0]
                offset = start + length
                overflow = overflow or bool(mask & _IN_Q_OVERFLOW)
                if wd in self.folders and name:
                    found.append((self.folders[wd], os.fsdecode(name)))

    def close(self) -> None:
        os.close(self.fd)


def present(wanted: Mapping[str, Set[str]]) -> bool:
    """Whether one of the `wanted` names exists in its folder."""
    for folder, names in wanted.items():
        try:
            if not names.isdisjoint(os.listdir(folder)):
                return True
        except OSError:
            continue
    return False


def _mtime(folder: str) -> int:
    try:
        return os.stat(folder).st_mtime_ns
    except OSError:
        return 0


def wait_for(
    wanted: Mapping[str, Set[str]],
    timeout: float,
    watch: str = "auto",
    hangup: int | None = None,
    interrupt: int | None = None,
) -> tuple[bool, str]:
    """Wait until one of `wanted` (folder -> file names) exists, at most `timeout` s.

    Returns (whether one does, "inotify" or "stat": how it watched). `watch="stat"`
    forces the stat loop. `hangup`: a file descriptor (the agent's stdout) whose
    reader going away raises `CallerGone` at once. `interrupt`: a file descriptor
    (the agent's stdin) whose having something to read ends the wait early.
    """
    deadline = time.monotonic() + timeout
    watcher = None
    if watch == "auto" and wanted and all(filesystem(f) in LOCAL_FILESYSTEMS for f in wanted):
        try:
            watcher = Inotify(wanted)
        except (OSError, AttributeError):  # no inotify here (or no watches left)
            watcher = None
    how = "stat" if watcher is None else "inotify"
    try:
        if present(wanted):  # (after the watches are set: nothing written later is missed)
            return True, how
        poller = select.poll()
        if hangup is not None:
            poller.register(hangup, 0)  # POLLERR/POLLHUP: the reading end was closed
        if interrupt is not None:
            poller.register(interrupt, select.POLLIN)
        if watcher is not None:
            poller.register(watcher.fd, select.POLLIN)
        seen = {folder: _mtime(folder) for folder in wanted}
        listed = time.monotonic()
        while (left := deadline - time.monotonic()) > 0:
            step = STAT_STEP if watcher is None else RECHECK
            ready = {fd for fd, _ in poller.poll(max(1, int(min(left, step) * 1000)))}
            if hangup is not None and hangup in ready:
                raise CallerGone("the caller closed the agent's stdout")
            if interrupt is not None and interrupt in ready:
                return present(wanted), how
            now = time.monotonic()
            if watcher is not None:
                events, overflow = watcher.events()
                if any(name in wanted.get(folder, ()) for folder, name in events):
                    return True, how
                if overflow or now - listed >= RECHECK:
                    listed = now
                    if present(wanted):
                        return True, how
                continue
            stamps = {folder: _mtime(folder) for folder in wanted}
            if stamps != seen or now - listed >= RELIST:
                seen, listed = stamps, now
                if present(wanted):
                    return True, how
        return present(wanted), how
    finally:
        if watcher is not None:
            watcher.close()
