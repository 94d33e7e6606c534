"""The `ssh` backend's driver: runs a run's elements as forked processes.

Shipped beside the runner (as ``clustrix_drive.py``) and started by ``driver.sh``
after the job's environment is set up, as ``python _runner.py drive RUN_DIR COUNT
PARALLEL``. An element costs a fork instead of a new interpreter and its imports
(about 30 ms of CPU each: most of a tiny task's cost on a busy host).

Each element is what ``job.sh`` is on a scheduler, in two processes: a session leader
that records its pid (and node), checks the cancel marker, and records the exit status
of its child, which runs the element's tasks (`run_element`). Cancelling kills the
session's process group: both go, and no exit status is recorded, exactly as when a
scheduler's job script is killed. A task that kills itself leaves the leader to record
how it died.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

if __package__:
    from .layout import CANCEL, ERR, EXIT, OUT, PID, RunLayout
else:  # on a cluster: shipped beside this file
    from clustrix_layout import (  # type: ignore[import-not-found,no-redef]
        CANCEL,
        ERR,
        EXIT,
        OUT,
        PID,
        RunLayout,
    )

CANCELLED_EXIT = 130


def drive(run_element: Callable[[int], int], run_dir: str, count: int, parallel: int) -> int:
    """Run elements 0..count-1, at most `parallel` at a time; return when all ended."""
    layout = RunLayout(run_dir)
    node = _node()
    running: set[int] = set()
    element = 0
    while element < count or running:
        while element < count and len(running) < max(1, parallel):
            running.add(_start(run_element, layout, element, node))
            element += 1
        try:
            pid, _ = os.wait()
        except ChildProcessError:
            running.clear()
            continue
        running.discard(pid)
    return 0


def _node() -> str:
    try:
        with open("/proc/sys/kernel/hostname") as handle:
            return handle.read().strip()
    except OSError:
        return os.uname().nodename


def _start(run_element: Callable[[int], int], layout: RunLayout, element: int, node: str) -> int:
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:
        code = _leader(run_element, layout, element, node)
    finally:
        os._exit(code)


def _leader(run_element: Callable[[int], int], layout: RunLayout, element: int, node: str) -> int:
    """The element's session leader (job.sh's part): pid, cancel marker, exit status."""
    os.setsid()
    for fd, stream in ((1, OUT), (2, ERR)):
        target = os.open(layout.log(element, stream), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(target, fd)
        os.close(target)
    with open(layout.element(element, PID), "w") as handle:
        handle.write(f"{os.getpid()} {node}\n")
    if os.path.exists(layout.element(element, CANCEL)):
        return _record(layout, element, CANCELLED_EXIT)
    child = os.fork()
    if child == 0:
        code = 1
        try:
            code = run_element(element)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except BaseException:
            import traceback

            traceback.print_exc()
        finally:
            _exit_like_python(code)
    _, status = os.waitpid(child, 0)
    code = os.waitstatus_to_exitcode(status)
    code = 128 - code if code < 0 else code  # killed by a signal: as a shell reports it
    # On success the runner recorded exit 0 itself (as under a scheduler).
    return 0 if code == 0 else _record(layout, element, code)


def _exit_like_python(code: int) -> None:
    """End the forked runner as an interpreter ends: atexit handlers, flushed streams."""
    try:
        import atexit

        atexit._run_exitfuncs()
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(code)


def _record(layout: RunLayout, element: int, code: int) -> int:
    """Write the element's exit status (temp file + rename: it appears whole)."""
    path = layout.element(element, EXIT)
    temporary = f"{path}.tmp.{os.getpid()}"
    with open(temporary, "w") as handle:
        handle.write(f"{code}\n")
    os.replace(temporary, path)
    return code
