"""The SQLite file behind `RecordStore`: opening, journal mode, schema versions, locking.

Everything here is synchronous and runs in a worker thread (never on the event
loop's thread). Several processes may write the same file at once: every write is
one ``BEGIN IMMEDIATE`` transaction; one that meets ``SQLITE_BUSY``/``SQLITE_LOCKED``
is rolled back and run again after a short jittered backoff (0.5 to 20 ms; SQLite's
own busy handler, ``busy_timeout``, sleeps in much coarser steps and is off by
default), until a deadline, then a `ConfigError` names the file.

WAL is faster but needs shared memory between the processes, which network
filesystems do not provide (NFS, SMB, sshfs, Lustre, GPFS, BeeGFS...): there the
rollback journal (``journal_mode=DELETE``) is used instead. The schema version lives
in ``PRAGMA user_version``; see `_records` for the schema itself.
"""

from __future__ import annotations

import logging
import os
import random
import re
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from ._exceptions import ConfigError

logger = logging.getLogger("clustrix.records")

T = TypeVar("T")

#: The schema version this clustrix writes (``PRAGMA user_version``).
SCHEMA_VERSION = 1

SCHEMA_V1 = """
CREATE TABLE submissions (
    key           TEXT PRIMARY KEY,
    function      TEXT NOT NULL,
    backend       TEXT NOT NULL,
    sweep         INTEGER NOT NULL,
    task_count    INTEGER NOT NULL,
    submitted_at  REAL NOT NULL,
    run_dir       TEXT,
    host          TEXT,
    port          INTEGER,
    username      TEXT,
    k8s_context   TEXT,
    k8s_namespace TEXT,
    profile       TEXT,
    submitted_by  TEXT NOT NULL
);
CREATE TABLE jobs (
    key            TEXT PRIMARY KEY,
    submission_key TEXT NOT NULL REFERENCES submissions(key) ON DELETE CASCADE,
    sweep_index    INTEGER,
    native_id      TEXT,
    state          TEXT NOT NULL,
    reason         TEXT,
    exit_code      INTEGER,
    error          TEXT,
    stdout_tail    TEXT,
    stderr_tail    TEXT,
    started_at     REAL,
    ended_at       REAL,
    attempt        INTEGER NOT NULL DEFAULT 1,
    collected_at   REAL,
    collected_by   TEXT,
    updated_at     REAL NOT NULL
);
CREATE INDEX jobs_by_submission ON jobs(submission_key, sweep_index);
CREATE INDEX jobs_by_state ON jobs(state);
CREATE INDEX submissions_by_time ON submissions(submitted_at);
"""


def _create_v1(conn: sqlite3.Connection) -> None:
    for statement in SCHEMA_V1.split(";"):
        if statement.strip():
            conn.execute(statement)


#: ``MIGRATIONS[n]`` turns a version-*n* store into version *n + 1*, inside the
#: caller's transaction. Version 0 is an empty file (a store never written).
MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {0: _create_v1}

# Filesystems where WAL's shared-memory index cannot work across processes/hosts.
NETWORK_FILESYSTEMS = frozenset(
    {
        "nfs", "nfs4", "cifs", "smb", "smb2", "smb3", "smbfs", "sshfs", "fuse.sshfs",
        "lustre", "gpfs", "beegfs", "ceph", "fuse.ceph", "cephfs", "glusterfs",
        "fuse.glusterfs", "afs", "9p", "panfs", "davfs", "fuse.davfs2", "fuse.rclone",
        "fuse.s3fs", "fuse.gcsfuse", "fuse.juicefs", "ocfs2", "gfs2", "webdav",
        "fuse.gvfsd-fuse", "orangefs", "pvfs2", "quobyte", "fuse.quobyte",
    }
)  # fmt: skip
_LOCAL_FUSE = frozenset({"fuse-overlayfs", "fuse.fuse-overlayfs", "fuse.lxcfs", "fuseblk"})
_BSD_MOUNT = re.compile(r"^.* on (?P<point>/.*?) \((?P<type>[^,)]+)")
_BUSY_CODES = frozenset({5, 6})  # SQLITE_BUSY, SQLITE_LOCKED (primary codes)


def _unescape(field: str) -> str:
    """Undo /proc/mounts' octal escapes (``\\040`` is a space)."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def parse_mounts(text: str) -> list[tuple[str, str]]:
    """(mount point, filesystem type) pairs from /proc/mounts text or BSD ``mount`` output."""
    mounts = []
    for line in text.splitlines():
        bsd = _BSD_MOUNT.match(line)
        if bsd:
            mounts.append((bsd["point"], bsd["type"].strip()))
            continue
        fields = line.split()
        if len(fields) >= 3 and fields[1].startswith("/"):
            mounts.append((_unescape(fields[1]), fields[2]))
    return mounts


def filesystem_type(path: str, mounts_text: str) -> str | None:
    """The type of the filesystem holding the absolute `path` (the longest mount point
    that contains it; the last one mounted wins on equal points), or None."""
    best: tuple[int, str] | None = None
    for point, fstype in parse_mounts(mounts_text):
        inside = path == point or path.startswith(point.rstrip("/") + "/")
        if inside and (best is None or len(point) >= best[0]):
            best = (len(point), fstype)
    return best[1] if best else None


def is_network_filesystem(fstype: str | None) -> bool:
    """True for a filesystem type on which SQLite's WAL mode is unsafe.

    Unknown FUSE filesystems count as network ones: the rollback journal is safe
    everywhere, WAL is only a speed-up.
    """
    if fstype is None:
        return False
    fstype = fstype.lower()
    if fstype in NETWORK_FILESYSTEMS:
        return True
    return fstype.startswith("fuse") and fstype not in _LOCAL_FUSE


def _mounts_text() -> str:
    try:
        return Path("/proc/mounts").read_text(encoding="utf-8", errors="replace")
    except OSError:
        pass
    if sys.platform == "win32":
        return ""
    try:  # macOS / BSD: "dev on /point (type, options)"
        out = subprocess.run(["mount"], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout


def detect_filesystem(path: Path) -> str | None:
    """The filesystem type holding `path` (which must exist), or None if unknown."""
    return filesystem_type(os.path.realpath(path), _mounts_text())


def is_busy(exc: sqlite3.Error) -> bool:
    """True if `exc` means another process holds the lock (worth retrying)."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in _BUSY_CODES
    message = str(exc).lower()
    return "locked" in message or "busy" in message


def with_retries(path: Path, deadline: float, action: Callable[[], T]) -> T:
    """Run `action`, again with backoff while the database is busy, up to `deadline` s."""
    start, delay = time.monotonic(), 0.0005
    while True:
        try:
            return action()
        except sqlite3.OperationalError as exc:
            if not is_busy(exc):
                raise
            if time.monotonic() - start > deadline:
                raise ConfigError(
                    f"the clustrix records store {path} stayed locked by another process "
                    f"for {deadline:g} s; check for a hung clustrix process, or set "
                    "records_path to another file"
                ) from None
        # a worker thread, never the event loop's; jitter keeps writers out of lockstep
        time.sleep(delay * random.uniform(0.5, 1.5))  # noqa: S311
        delay = min(delay * 1.5, 0.02)


def transaction(
    conn: sqlite3.Connection, path: Path, deadline: float, body: Callable[[sqlite3.Connection], T]
) -> T:
    """Run `body` in one ``BEGIN IMMEDIATE`` transaction, retried whole when busy."""

    def attempt() -> T:
        try:
            conn.execute("BEGIN IMMEDIATE")
            result = body(conn)
            conn.execute("COMMIT")
            return result
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    return with_retries(path, deadline, attempt)


def open_database(path: Path, busy_timeout: float, deadline: float) -> sqlite3.Connection:
    """Open (creating it, mode 0600 in a 0700 directory) and migrate the store at `path`."""
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
        conn = sqlite3.connect(
            path, timeout=busy_timeout, isolation_level=None, check_same_thread=False
        )
    except (OSError, sqlite3.Error) as exc:
        raise ConfigError(
            f"cannot open the clustrix records store {path}: {exc}; set records_path to a "
            "writable file"
        ) from None
    try:
        fstype = detect_filesystem(path.parent)
        if is_network_filesystem(fstype):
            logger.info("records store %s is on %s: using journal_mode=DELETE", path, fstype)
            mode = "DELETE"
        else:
            mode = "WAL"
        with_retries(path, deadline, lambda: conn.execute(f"PRAGMA journal_mode={mode}"))
        conn.execute("PRAGMA synchronous=NORMAL" if mode == "WAL" else "PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        transaction(conn, path, deadline, lambda c: migrate(c, path))
    except BaseException as exc:
        conn.close()
        if isinstance(exc, sqlite3.DatabaseError):
            raise ConfigError(
                f"{path} is not a usable clustrix records store ({exc}); move it away "
                "or set records_path to another file"
            ) from None
        raise
    return conn


def migrate(conn: sqlite3.Connection, path: Path) -> None:
    """Bring the store to `SCHEMA_VERSION` (inside the caller's write transaction),
    or refuse a store this clustrix cannot read."""
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if version > SCHEMA_VERSION:
        raise ConfigError(
            f"the clustrix records store {path} has schema version {version}, written by a "
            f"newer clustrix (this one reads up to version {SCHEMA_VERSION}): upgrade "
            "clustrix, or set records_path to another file for this version"
        )
    if version == 0:
        tables = conn.execute("SELECT name FROM sqlite_master WHERE type='table'").fetchall()
        if tables:
            raise ConfigError(
                f"{path} is an SQLite file but not a clustrix records store (it has tables "
                f"{', '.join(sorted(t[0] for t in tables))} and no schema version); set "
                "records_path to another file"
            )
    while version < SCHEMA_VERSION:
        step = MIGRATIONS.get(version)
        if step is None:
            raise ConfigError(
                f"the clustrix records store {path} has schema version {version}, which this "
                "clustrix cannot migrate; move the file away to start a new store"
            )
        step(conn)
        version += 1
        conn.execute(f"PRAGMA user_version={version}")
        if version > 1:
            logger.info("migrated records store %s to schema version %d", path, version)
