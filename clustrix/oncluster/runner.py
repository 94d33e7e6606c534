"""The remote entry point: runs pickled tasks and writes framed, digest-checked results.

This file is copied to clusters as it is, so it imports ONLY the standard library and
cloudpickle (never clustrix or its dependencies).

A run directory holds::

    function.pkl        the callable, pickled once per submission
    args.bin            every task's (args, kwargs) pickle, back to back
    spec.json           {"format": 1, "count": N, "chunksize": C, "offsets": [...],
                         "time_limit": seconds or null}
    tasks/I.out, I.err  task I's own stdout and stderr, only if it wrote any (while it
                        runs: tasks/.running-PID.out/.err in serve mode,
                        tasks/.running-eE.out/.err for element E in run mode)
    elements/E.exit     element E's exit status (0 written by the runner itself)
    tasks/I.result      task I's result (written atomically: temp file, then rename)
    tasks/I.timeout     present if the runner killed task I at its time limit

Usage::

    python _runner.py run RUN_DIR --element E   # tasks E*C .. E*C+C-1 (a batch element)
    python _runner.py serve RUN_DIR             # read task indices on stdin, answer on stdout
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import signal
import sys
import threading
import traceback
from typing import Any

import cloudpickle

RESULT_MAGIC = b"CLUSTRIX-RESULT/1"
IN_JOB_ENV = "CLUSTRIX_IN_JOB"
TASK_ENV = "CLUSTRIX_TASK_INDEX"
TIMEOUT_EXIT = 124


def frame_result(body: bytes) -> bytes:
    """Prefix a pickled result with its length and SHA-256 digest."""
    digest = hashlib.sha256(body).hexdigest()
    return b"%s %d %s\n" % (RESULT_MAGIC, len(body), digest.encode()) + body


def unframe_result(data: bytes) -> bytes:
    """Return the body of a framed result; ValueError if truncated or corrupted."""
    header, sep, body = data.partition(b"\n")
    parts = header.split(b" ")
    if not sep or len(parts) != 3 or parts[0] != RESULT_MAGIC:
        raise ValueError("not a clustrix result (bad header)")
    if len(body) != int(parts[1]):
        raise ValueError(f"result truncated: {len(body)} of {int(parts[1])} bytes")
    if hashlib.sha256(body).hexdigest().encode() != parts[2]:
        raise ValueError("result digest mismatch")
    return body


def _write_atomic(path: str, data: bytes) -> None:
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "wb") as handle:
        handle.write(data)
    os.replace(tmp, path)  # readers see the whole file or none of it


def _outcome(fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    try:
        value = fn(*args, **kwargs)
        if inspect.iscoroutine(value):  # an `async def` task runs on its own event loop
            import asyncio  # only then: importing it costs more than the rest of the runner

            value = asyncio.run(value)
        return {"ok": True, "value": value}
    except SystemExit as exc:  # sys.exit() in a task ends the task, not the runner
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        return {"ok": False, "kind": "exit", "code": code, "message": str(exc.code)}
    except BaseException as exc:
        return {
            "ok": False,
            "kind": "exception",
            "exception": exc,
            "type": f"{type(exc).__module__}.{type(exc).__qualname__}",
            "message": str(exc),
            "traceback": traceback.format_exc(),
        }


def _encode(outcome: dict[str, Any]) -> bytes:
    try:
        blob: bytes = cloudpickle.dumps(outcome)
        return blob
    except Exception as exc:
        if outcome["ok"]:
            kind, what = "unpicklable-result", type(outcome["value"]).__qualname__
            message = f"the task's return value (a {what}) cannot be pickled: {exc}"
        else:
            kind = "exception"
            message = outcome.get("message", "")
        safe = {k: v for k, v in outcome.items() if k not in ("value", "exception")}
        safe.update(ok=False, kind=kind, message=message)
        fallback: bytes = cloudpickle.dumps(safe)
        return fallback


class _Watchdog:
    """Kills the task's whole process group when the time limit passes."""

    def __init__(self, seconds: float | None, marker: str) -> None:
        self._timer: threading.Timer | None = None
        if seconds:
            self._timer = threading.Timer(seconds, self._expire, args=(marker,))
            self._timer.daemon = True
            self._timer.start()

    @staticmethod
    def _expire(marker: str) -> None:
        with open(marker, "w") as handle:
            handle.write("timeout\n")
        try:
            os.killpg(os.getpgid(0), signal.SIGKILL)
        finally:
            os._exit(TIMEOUT_EXIT)

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()


class Run:
    """One run directory: its function, its argument table and its task files."""

    def __init__(self, run_dir: str) -> None:
        self.dir = run_dir
        with open(os.path.join(run_dir, "spec.json")) as handle:
            self.spec = json.load(handle)
        with open(os.path.join(run_dir, "function.pkl"), "rb") as handle:
            self.function = cloudpickle.loads(handle.read())
        self.tasks_dir = os.path.join(run_dir, "tasks")
        os.makedirs(self.tasks_dir, mode=0o700, exist_ok=True)

    def arguments(self, index: int) -> tuple[tuple[Any, ...], dict[str, Any]]:
        start, end = self.spec["offsets"][index], self.spec["offsets"][index + 1]
        with open(os.path.join(self.dir, "args.bin"), "rb") as handle:
            handle.seek(start)
            args, kwargs = cloudpickle.loads(handle.read(end - start))
        return tuple(args), dict(kwargs)

    def run_task(self, index: int, *, write_result: bool = True, scratch: str = "") -> bytes:
        """Run task `index`; return its framed result (also written to its file).

        The task writes to ``SCRATCH.out``/``.err``, which become ``I.out``/``I.err``
        only if it printed something: creating two files per task costs more than a
        tiny task itself on some filesystems (and on shared ones).
        """
        base = os.path.join(self.tasks_dir, str(index))
        sys.stdout.flush()
        sys.stderr.flush()
        saved = os.dup(1), os.dup(2)
        streams = [(scratch or base) + suffix for suffix in (".out", ".err")]
        out, err = (os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600) for p in streams)
        os.dup2(out, 1)
        os.dup2(err, 2)
        os.environ[TASK_ENV] = str(index)
        watchdog = _Watchdog(self.spec.get("time_limit"), base + ".timeout")
        try:
            args, kwargs = self.arguments(index)
            outcome = _outcome(self.function, args, kwargs)
        except BaseException as exc:  # the argument table itself could not be read
            outcome = _outcome(_reraise, (exc,), {})
        finally:
            watchdog.cancel()
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd, path, suffix in ((out, streams[0], ".out"), (err, streams[1], ".err")):
                if scratch and os.fstat(fd).st_size:
                    os.replace(path, base + suffix)
                os.close(fd)
            for fd in saved:
                os.close(fd)
        framed = frame_result(_encode(outcome))
        if write_result:
            _write_atomic(base + ".result", framed)
        return framed


def _reraise(exc: BaseException) -> None:
    raise exc


def _serve(run: Run) -> int:
    """Run the task indices that arrive on stdin, one per line, in order.

    Answers ``start I`` before a task runs and ``done I N`` followed by the N bytes of
    its framed result once it ends, or ``skip I`` if ``tasks/I.cancel`` appeared
    before it started. The client may queue the next index while a task runs, so no
    time is lost between tasks, and it knows exactly which task is running when it
    must kill one.
    """
    # Commands arrive on a private copy of fd 0 and answers leave through one of fd 1,
    # so a task that reads stdin or prints cannot disturb the conversation.
    commands = os.fdopen(os.dup(0), "r")
    answers = os.fdopen(os.dup(1), "wb", buffering=0)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    scratch = os.path.join(run.tasks_dir, f".running-{os.getpid()}")
    for line in commands:
        if not line.strip():
            continue
        index = int(line)
        if os.path.exists(os.path.join(run.tasks_dir, f"{index}.cancel")):
            answers.write(b"skip %d\n" % index)
            continue
        answers.write(b"start %d\n" % index)
        framed = run.run_task(index, write_result=False, scratch=scratch)
        answers.write(b"done %d %d\n" % (index, len(framed)) + framed)
    return 0


USAGE = "usage: _runner.py run RUN_DIR [--element E] | _runner.py serve RUN_DIR"


def main(argv: list[str] | None = None) -> int:
    # No argparse: every array element pays the runner's start-up time.
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) not in (2, 4) or args[0] not in ("run", "serve"):
        print(USAGE, file=sys.stderr)
        return 2
    element = 0
    if len(args) == 4:
        if args[2] != "--element" or not args[3].isdigit():
            print(USAGE, file=sys.stderr)
            return 2
        element = int(args[3])
    os.environ[IN_JOB_ENV] = "1"
    run = Run(args[1])
    if args[0] == "serve":
        return _serve(run)
    size, count = run.spec["chunksize"], run.spec["count"]
    scratch = os.path.join(run.tasks_dir, f".running-e{element}")
    for index in range(element * size, min((element + 1) * size, count)):
        run.run_task(index, scratch=scratch)
    # The element's exit record (the job script writes it only when this fails).
    elements = os.path.join(run.dir, "elements")
    os.makedirs(elements, mode=0o700, exist_ok=True)
    _write_atomic(os.path.join(elements, f"{element}.exit"), b"0\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
