"""The remote entry point: runs pickled tasks and writes framed, digest-checked results.

This file is copied to clusters as it is, so it imports ONLY the standard library and
cloudpickle (never clustrix or its dependencies).

The run directory's files are named in `clustrix.oncluster.layout` (shipped beside
this file as ``clustrix_layout.py``).

Usage::

    python _runner.py run RUN_DIR --element E   # tasks E*C .. E*C+C-1 (a batch element)
    python _runner.py serve RUN_DIR             # read task indices on stdin, answer on stdout
    python _runner.py drive RUN_DIR COUNT PAR   # the ssh backend: elements as forked processes
"""

from __future__ import annotations

import _pickle
import os
import sys
import types

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs milliseconds to import: only for the type checker
    from typing import Any

# Start-up is paid once per array element, so imports are lazy where they can be:
# cloudpickle (about 20 ms and a dozen standard modules) only when a payload needs more
# than `clustrix_unpickle` provides, traceback, signal and threading only when used.
try:  # SHA-256 without starting OpenSSL (importing hashlib costs ~5 ms)
    from _sha256 import sha256  # type: ignore[import-not-found,unused-ignore]
except ImportError:  # pragma: no cover  # Python 3.12+ names it _sha2
    try:
        from _sha2 import sha256  # type: ignore[import-not-found,no-redef,unused-ignore]
    except ImportError:
        from hashlib import sha256  # type: ignore[assignment,unused-ignore]

if __package__:
    from .layout import CANCEL, ERR, EXIT, OUT, RESULT, TIMEOUT, RunLayout
    from .unpickle import PROTOCOL, json_loads, loads, plain
else:  # on a cluster: shipped beside this file (found there even through a symlink)
    _HERE = os.path.dirname(os.path.abspath(__file__))
    if _HERE not in sys.path:
        sys.path.insert(1, _HERE)
    from clustrix_layout import (  # type: ignore[import-not-found,no-redef]
        CANCEL,
        ERR,
        EXIT,
        OUT,
        RESULT,
        TIMEOUT,
        RunLayout,
    )
    from clustrix_unpickle import (  # type: ignore[import-not-found,no-redef]
        PROTOCOL,
        json_loads,
        loads,
        plain,
    )

RESULT_MAGIC = b"CLUSTRIX-RESULT/1"
IN_JOB_ENV = "CLUSTRIX_IN_JOB"
TASK_ENV = "CLUSTRIX_TASK_INDEX"
TIMEOUT_EXIT = 124


def frame_result(body: bytes) -> bytes:
    """Prefix a pickled result with its length and SHA-256 digest."""
    digest = sha256(body).hexdigest()
    return b"%s %d %s\n" % (RESULT_MAGIC, len(body), digest.encode()) + body


def unframe_result(data: bytes) -> bytes:
    """Return the body of a framed result; ValueError if truncated or corrupted."""
    header, sep, body = data.partition(b"\n")
    parts = header.split(b" ")
    if not sep or len(parts) != 3 or parts[0] != RESULT_MAGIC:
        raise ValueError("not a clustrix result (bad header)")
    if len(body) != int(parts[1]):
        raise ValueError(f"result truncated: {len(body)} of {int(parts[1])} bytes")
    if sha256(body).hexdigest().encode() != parts[2]:
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
        if isinstance(value, types.CoroutineType):  # an `async def` task runs on its own event loop
            import asyncio  # only then: importing it costs more than the rest of the runner

            value = asyncio.run(value)
        return {"ok": True, "value": value}
    except SystemExit as exc:  # sys.exit() in a task ends the task, not the runner
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        return {"ok": False, "kind": "exit", "code": code, "message": str(exc.code)}
    except BaseException as exc:
        import traceback

        return {
            "ok": False,
            "kind": "exception",
            "exception": exc,
            "type": f"{type(exc).__module__}.{type(exc).__qualname__}",
            "message": str(exc),
            "traceback": traceback.format_exc(),
        }


def _encode(outcome: dict[str, Any]) -> bytes:
    if outcome["ok"] and plain(outcome["value"]):
        return _pickle.dumps(outcome, protocol=PROTOCOL)
    import cloudpickle

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
        self._timer: Any = None
        if seconds:
            import signal  # noqa: F401  # now, not in the timer's thread when it fires
            import threading

            self._timer = threading.Timer(seconds, self._expire, args=(marker,))
            self._timer.daemon = True
            self._timer.start()

    @staticmethod
    def _expire(marker: str) -> None:
        import signal

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
        self.layout = layout = RunLayout(run_dir)
        with open(layout.spec) as handle:
            self.spec = json_loads(handle.read())
        with open(layout.function, "rb") as handle:
            self.function = loads(handle.read())
        self.tasks_dir = layout.tasks
        os.makedirs(self.tasks_dir, mode=0o700, exist_ok=True)

    def arguments(self, index: int) -> tuple[tuple[Any, ...], dict[str, Any]]:
        start, end = self.spec["offsets"][index], self.spec["offsets"][index + 1]
        with open(self.layout.args, "rb") as handle:
            handle.seek(start)
            args, kwargs = loads(handle.read(end - start))
        return tuple(args), dict(kwargs)

    def run_task(self, index: int, *, write_result: bool = True, scratch: str = "") -> bytes:
        """Run task `index`; return its framed result (also written to its file).

        The task writes to ``SCRATCH.out``/``.err``, which become ``I.out``/``I.err``
        only if it printed something: creating two files per task costs more than a
        tiny task itself on some filesystems (and on shared ones).
        """
        layout = self.layout
        sys.stdout.flush()
        sys.stderr.flush()
        saved = os.dup(1), os.dup(2)
        own = layout.task(index, OUT), layout.task(index, ERR)
        streams = [f"{scratch}.{OUT}", f"{scratch}.{ERR}"] if scratch else list(own)
        out, err = (os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600) for p in streams)
        os.dup2(out, 1)
        os.dup2(err, 2)
        os.environ[TASK_ENV] = str(index)
        watchdog = _Watchdog(self.spec.get("time_limit"), layout.task(index, TIMEOUT))
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
            for fd, path, target in ((out, streams[0], own[0]), (err, streams[1], own[1])):
                if scratch and os.fstat(fd).st_size:
                    os.replace(path, target)
                os.close(fd)
            for fd in saved:
                os.close(fd)
        framed = frame_result(_encode(outcome))
        if write_result:
            _write_atomic(layout.task(index, RESULT), framed)
        return framed


def _reraise(exc: BaseException) -> None:
    raise exc


def _serve(run: Run) -> int:
    """Run the task indices that arrive on stdin, one per line, in order.

    Answers ``start I`` before a task runs and ``done I N`` followed by the N bytes of
    its framed result once it ends, or ``skip I`` if its cancel marker appeared
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
    scratch = run.layout.worker_scratch(os.getpid())
    for line in commands:
        if not line.strip():
            continue
        index = int(line)
        if os.path.exists(run.layout.task(index, CANCEL)):
            answers.write(b"skip %d\n" % index)
            continue
        answers.write(b"start %d\n" % index)
        framed = run.run_task(index, write_result=False, scratch=scratch)
        answers.write(b"done %d %d\n" % (index, len(framed)) + framed)
    return 0


USAGE = (
    "usage: _runner.py run RUN_DIR [--element E] | _runner.py serve RUN_DIR"
    " | _runner.py drive RUN_DIR COUNT PARALLEL"
)


def main(argv: list[str] | None = None) -> int:
    # No argparse: every array element pays the runner's start-up time.
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["drive"]:  # the ssh backend's elements, forked (clustrix_drive)
        if len(args) != 4 or not (args[2].isdigit() and args[3].isdigit()):
            print(USAGE, file=sys.stderr)
            return 2
        if __package__:
            from .drive import drive
        else:
            from clustrix_drive import drive  # type: ignore[import-not-found,no-redef]
        run_dir = args[1]
        return drive(
            lambda element: main(["run", run_dir, "--element", str(element)]),
            run_dir,
            int(args[2]),
            int(args[3]),
        )
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
    scratch = run.layout.scratch(element)
    for index in range(element * size, min((element + 1) * size, count)):
        run.run_task(index, scratch=scratch)
    # The element's exit record (the job script writes it only when this fails); none
    # if the client already took every result and removed the run directory.
    try:
        if not os.path.isdir(run.layout.elements):  # (staged with it; not its parents)
            os.mkdir(run.layout.elements, mode=0o700)
        _write_atomic(run.layout.element(element, EXIT), b"0\n")
    except (FileNotFoundError, FileExistsError):
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
