"""The entry point of a clustrix pod (copied into the payload Secret as ``entry.py``).

It runs inside the container with only the standard library: it puts the shipped
cloudpickle first on the path, links the read-only payload into the writable work
directory, runs its element's tasks with the clustrix runner and prints each framed
result to stdout, base64 between marker lines, for the client to read from the pod
log::

    ::clustrix:: task I begin
    <the task's own output>
    ::clustrix:: task I result <bytes>
    <base64 of the framed, digest-checked result>
    ::clustrix:: task I end

A result larger than ``CLUSTRIX_K8S_RESULT_LIMIT`` is replaced by
``::clustrix:: task I too-large <bytes> <limit>``; a Python whose major.minor differs
from the client's prints ``::clustrix:: python-mismatch <here> <expected>``. With
``CLUSTRIX_K8S_TASK_TIME`` (chunked elements) a task running longer prints
``::clustrix:: task I timeout <seconds>`` and the container exits 124.
"""

from __future__ import annotations

import base64
import json
import os
import stat
import sys
import threading

MARK = "::clustrix::"
MISMATCH_EXIT = 3
TIMEOUT_EXIT = 124  # as the runner's own time limit exits


def _expire(out: int, index: int, seconds: int) -> None:
    _say(out, f"\n{MARK} task {index} timeout {seconds}\n")
    os._exit(TIMEOUT_EXIT)  # the whole container ends; its exit code says why


def _say(fd: int, text: str) -> None:
    data = text.encode()
    while data:
        data = data[os.write(fd, data) :]


def _streams_by_path(out: int, err: int) -> bool:
    """True if the task can write to our stdout/stderr through /proc/self/fd links.

    Then its output reaches the pod log live (and survives an OOM kill); only pipes,
    FIFOs and terminals qualify, since opening a regular file there would truncate it.
    """
    for fd in (out, err):
        try:
            mode = os.fstat(fd).st_mode
        except OSError:
            return False
        if not (stat.S_ISFIFO(mode) or stat.S_ISCHR(mode)):
            return False
        if not os.path.exists(f"/proc/self/fd/{fd}"):
            return False
    return True


def main() -> int:
    out, err = os.dup(1), os.dup(2)
    here = f"{sys.version_info[0]}.{sys.version_info[1]}"
    expected = os.environ.get("CLUSTRIX_K8S_PYTHON", here)
    if here != expected:
        _say(out, f"{MARK} python-mismatch {here} {expected}\n")
        return MISMATCH_EXIT
    payload = os.environ["CLUSTRIX_K8S_PAYLOAD"]
    lib = os.path.join(payload, "lib")
    sys.path[:0] = [lib, payload]
    inherited = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = lib + (os.pathsep + inherited if inherited else "")
    import clustrix_runner as runner  # type: ignore[import-not-found]  # shipped beside this

    layout = runner.RunLayout(os.path.join(os.environ["CLUSTRIX_K8S_WORK"], "run"))
    os.makedirs(layout.tasks, mode=0o700, exist_ok=True)
    for target in (layout.function, layout.args, layout.spec):
        if not os.path.lexists(target):
            os.symlink(os.path.join(payload, os.path.basename(target)), target)
    with open(layout.spec) as handle:
        spec = json.load(handle)
    os.environ[runner.IN_JOB_ENV] = "1"
    run = runner.Run(layout.dir)
    element = int(os.environ.get("JOB_COMPLETION_INDEX", "0"))
    size, count = spec["chunksize"], spec["count"]
    limit = int(os.environ.get("CLUSTRIX_K8S_RESULT_LIMIT", "4194304"))
    live = _streams_by_path(out, err)
    task_time = int(os.environ.get("CLUSTRIX_K8S_TASK_TIME", "0"))  # set for chunked runs
    for index in range(element * size, min((element + 1) * size, count)):
        streams = layout.task(index, runner.OUT), layout.task(index, runner.ERR)
        if live:
            os.symlink(f"/proc/self/fd/{out}", streams[0])
            os.symlink(f"/proc/self/fd/{err}", streams[1])
        _say(out, f"{MARK} task {index} begin\n")
        timer = threading.Timer(task_time, _expire, (out, index, task_time)) if task_time else None
        if timer is not None:
            timer.daemon = True
            timer.start()
        run.run_task(index)
        if timer is not None:
            timer.cancel()
        if not live:
            for path, fd in zip(streams, (out, err), strict=True):
                with open(path, "rb") as handle:
                    _say(fd, handle.read().decode(errors="replace"))
        with open(layout.task(index, runner.RESULT), "rb") as handle:
            framed = handle.read()
        if len(framed) > limit:
            _say(out, f"\n{MARK} task {index} too-large {len(framed)} {limit}\n")
            continue
        body = base64.encodebytes(framed).decode()
        _say(out, f"\n{MARK} task {index} result {len(framed)}\n{body}{MARK} task {index} end\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
