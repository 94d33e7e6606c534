"""The helper clustrix runs on a login node: one call reports on every live run.

Shipped next to the runner and, like it, importing only the standard library (and
the run layout shipped beside it). It reads a JSON request on stdin and prints a
JSON answer, so a poll tick costs ONE remote command however many jobs are live.
The requests and answers are typed in `clustrix.oncluster.protocol`:

``python _agent.py status`` (`StatusRequest` -> `StatusAnswer`) reports each live
element's files (pid, exit status, cancel marker), the results of the given tasks
(inline up to ``inline_limit`` bytes), their timeout markers, and a stderr tail for
each task without a result whose element ended (listed in ``tails``, or its process
is gone). The task that was running when its element died gets its scratch output
moved to its own ``I.out``/``I.err`` first, so what it wrote is kept.

``python _agent.py cancel`` (`CancelRequest` -> `CancelAnswer`) writes each
element's cancel marker (so one that has not started never will) and kills the
process group of each one that runs.

``python _agent.py outputs`` (`OutputsRequest` -> `OutputsAnswer`) returns each
task's stdout and stderr tails (before a run directory is cleaned up).

``python _agent.py wait`` (`WaitRequest` -> `WaitAnswer`) returns the `status` as soon
as one of the given tasks has a result file or one of the given elements an exit file
(``clustrix_watch``: inotify where it sees every write, a stat loop elsewhere), or
after ``timeout`` seconds; and exits at once when its caller closes the channel.
``python _agent.py watch`` is `wait` as a stream on one process: a `WaitRequest` per
line on stdin (each replaces the last), a `WaitAnswer` line on stdout whenever a result
or exit file not reported yet appears; so a result costs no new process.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import select
import signal
import sys
import time
from typing import TYPE_CHECKING, Any

if __package__:
    from . import layout as files
else:  # on a cluster: shipped beside this file (found there even through a symlink)
    sys.path[1:1] = [os.path.dirname(os.path.abspath(__file__))]
    import clustrix_layout as files  # type: ignore[import-not-found,no-redef]

if TYPE_CHECKING:
    from .protocol import (
        CancelAnswer,
        CancelRequest,
        ElementReport,
        OutputsAnswer,
        OutputsRequest,
        RunQuery,
        RunStatus,
        StatusAnswer,
        StatusRequest,
        WaitAnswer,
        WaitRequest,
    )

TAIL = 4000


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read().strip()
    except OSError:
        return None


def tail(path: str, limit: int = TAIL) -> str:
    """The last `limit` bytes of a file as text (empty if it cannot be read)."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - limit))
            return handle.read().decode(errors="replace")
    except OSError:
        return ""


def keep_scratch(scratch: str, task_base: str) -> None:
    """A task died mid-way: what it wrote to its scratch files becomes its own output."""
    for suffix in (files.OUT, files.ERR):
        with contextlib.suppress(OSError):
            os.replace(f"{scratch}.{suffix}", f"{task_base}.{suffix}")


HOST = os.uname().nodename


def _pid_and_host(text: str | None) -> tuple[int | None, str]:
    """``elements/E.pid`` holds ``PID HOST``: the job script's pid on the node that runs it."""
    fields = (text or "").split()
    pid = int(fields[0]) if fields and fields[0].isdigit() else None
    return pid, fields[1] if len(fields) > 1 else HOST


def _alive(pid: int, host: str, run_dir: str) -> bool:
    """Whether element process `pid` still runs. A pid on another node cannot be
    judged here: it counts as alive and the scheduler decides (``tails``)."""
    if host != HOST:
        return True
    if not os.path.isdir("/proc/self"):  # no procfs: all that can be told is whether it exists
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    try:
        with open(f"/proc/{pid}/stat") as handle:
            if handle.read().rsplit(")", 1)[1].split()[0] == "Z":
                return False
    except FileNotFoundError:
        return False
    except OSError:
        pass
    # Not a recycled pid: the job script runs in the run directory (it cd's there
    # before writing its pid); its command line names a spooled copy of the script.
    with contextlib.suppress(OSError):
        if os.path.realpath(os.readlink(f"/proc/{pid}/cwd")) == os.path.realpath(run_dir):
            return True
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return run_dir.encode() in handle.read()
    except OSError:
        return False


def _element(layout: files.RunLayout, element: int, now: float) -> ElementReport:
    pid_path = layout.element(element, files.PID)
    exit_text = _read(layout.element(element, files.EXIT))
    pid, host = _pid_and_host(_read(pid_path))
    try:
        started: float | None = os.path.getmtime(pid_path)
    except OSError:
        started = None
    alive = bool(pid) and exit_text is None and _alive(pid or 0, host, layout.dir)
    if pid and exit_text is None and not alive:  # it may have ended since the first read
        exit_text = _read(layout.element(element, files.EXIT))
    return {
        "pid": pid,
        "started": started,
        "alive": alive,
        "local": host == HOST,
        "exit": int(exit_text) if exit_text and exit_text.lstrip("-").isdigit() else None,
        "cancelled": os.path.exists(layout.element(element, files.CANCEL)),
        "now": now,
    }


def _run_status(run: RunQuery, limit: int) -> RunStatus:
    layout = files.RunLayout(run["dir"])
    size = max(1, int(run.get("chunksize", 1)))
    now = time.time()
    elements = {str(e): _element(layout, e, now) for e in run.get("elements", [])}
    tails = {str(e): log for e, log in run.get("tails", {}).items()}
    results: dict[str, str | None] = {}
    timeouts: list[int] = []
    stderr: dict[str, str] = {}
    dying: set[str] = set()  # elements whose running task was found
    for task in sorted(run.get("tasks", [])):
        path = layout.task(task, files.RESULT)
        try:
            if os.path.getsize(path) > limit:
                results[str(task)] = None
            else:
                with open(path, "rb") as handle:
                    results[str(task)] = base64.b64encode(handle.read()).decode()
            continue
        except OSError:
            pass
        if os.path.exists(layout.task(task, files.TIMEOUT)):
            timeouts.append(task)
        element = str(task // size)
        state = elements.get(element)
        ended = element in tails or (
            state is not None and not state["alive"] and bool(state["pid"] or state["exit"])
        )
        if ended:
            if element not in dying:  # its first task without a result ran last
                dying.add(element)
                keep_scratch(layout.scratch(int(element)), layout.task_base(task))
            log = tails.get(element) or layout.log(int(element), files.ERR)
            stderr[str(task)] = (tail(layout.task(task, files.ERR)) + tail(log))[-TAIL:]
    # An element that started after its files were read (its results may be above):
    # report its pid as running, so every result comes with its element's id. Its
    # exit is left to the next call (elements are read before results on purpose).
    for element, state in elements.items():
        if state["pid"] is None and state["exit"] is None:
            late, _ = _pid_and_host(_read(layout.element(int(element), files.PID)))
            if late is not None:
                state["pid"], state["alive"] = late, True
    return {
        "now": now,
        "exists": os.path.isdir(layout.dir),
        "elements": elements,
        "results": results,
        "timeouts": timeouts,
        "stderr": stderr,
    }


def status(request: StatusRequest) -> StatusAnswer:
    """The files of every run of the request (see the module's docstring)."""
    limit = int(request.get("inline_limit", 1 << 20))
    return {run["dir"]: _run_status(run, limit) for run in request["runs"]}


def cancel(request: CancelRequest) -> CancelAnswer:
    """Mark the elements cancelled; kill those that run."""
    answer: CancelAnswer = {"killed": [], "prevented": {}}
    for run in request["runs"]:
        layout = files.RunLayout(run["dir"])
        for element in run["elements"]:
            os.makedirs(layout.elements, exist_ok=True)
            with open(layout.element(element, files.CANCEL), "w") as handle:
                handle.write("cancelled\n")
            state = _element(layout, element, 0.0)
            if state["pid"] is None and state["exit"] is None:
                # the job script writes its pid, then checks the marker: it will not run.
                answer["prevented"].setdefault(layout.dir, []).append(element)
            elif state["alive"] and state["pid"] and state["local"]:
                try:
                    os.killpg(state["pid"], signal.SIGKILL)
                    answer["killed"].append(state["pid"])
                except (ProcessLookupError, PermissionError):
                    pass
    return answer


def outputs(request: OutputsRequest) -> OutputsAnswer:
    """The stdout and stderr (last `limit` bytes) of the given tasks of each run."""
    limit = int(request.get("limit", 1 << 16))
    answer: OutputsAnswer = {}
    for run in request["runs"]:
        layout = files.RunLayout(run["dir"])
        answer[layout.dir] = {
            str(task): [
                tail(layout.task(task, files.OUT), limit),
                tail(layout.task(task, files.ERR), limit),
            ]
            for task in run["tasks"]
        }
    return answer


MAX_WAIT = 600.0  # seconds a `wait` lasts at most, whatever it asks for


def wait(
    request: WaitRequest, hangup: int | None = None, interrupt: int | None = None
) -> WaitAnswer:
    """The `status`, once a watched result or exit file exists or `timeout` passed
    (`hangup`, `interrupt`: file descriptors that end the wait, see `clustrix_watch`)."""
    if __package__:
        from . import watch as watching
    else:
        import clustrix_watch as watching  # type: ignore[import-not-found,no-redef]
    wanted: dict[str, set[str]] = {}
    for run in request["runs"]:
        layout = files.RunLayout(run["dir"])
        paths = [layout.task(task, files.RESULT) for task in run.get("tasks", [])]
        paths += [layout.element(element, files.EXIT) for element in run.get("elements", [])]
        for path in paths:
            wanted.setdefault(os.path.dirname(path), set()).add(os.path.basename(path))
    timeout = min(max(0.0, float(request.get("timeout", 5.0))), MAX_WAIT)
    how = request.get("watch", "auto")
    woke, how = watching.wait_for(wanted, timeout, how, hangup, interrupt)
    return {"woke": woke, "watch": how, "runs": status(request)}


def watch(stdin: int, stdout: Any) -> None:
    """`watch`: `wait` again and again, in one process. Each line on `stdin` is a
    `WaitRequest` that replaces the last; each time something new appears, one
    `WaitAnswer` line goes to `stdout` (each result and exit is reported once). Ends at
    EOF on stdin, when the caller goes away, or after MAX_WAIT s without a request."""
    request: WaitRequest | None = None
    seen: set[tuple[str, str, str]] = set()  # (run dir, "task" or "exit", number)
    pending, last = b"", time.monotonic()
    while True:
        if request is None:
            readable = select.select([stdin], [], [], MAX_WAIT)[0]
        else:
            answer = wait(_unseen(request, seen), stdout.fileno(), stdin)
            new = {
                (path, kind, number)
                for path, run in answer["runs"].items()
                for kind, numbers in (
                    ("task", run["results"]),
                    ("exit", [e for e, f in run["elements"].items() if f.get("exit") is not None]),
                )
                for number in numbers
            } - seen
            if new:
                seen |= new
                stdout.write(json.dumps(answer) + "\n")
                stdout.flush()
            elif answer["woke"]:
                time.sleep(0.05)  # (a file not readable yet: no busy loop)
            readable = select.select([stdin], [], [], 0)[0]
        if readable:
            data = os.read(stdin, 1 << 20)
            if not data:
                return  # the caller has no more requests
            *lines, pending = (pending + data).split(b"\n")
            if any(lines):
                request, last = json.loads([line for line in lines if line][-1]), time.monotonic()
        elif time.monotonic() - last > MAX_WAIT:
            return


def _unseen(request: WaitRequest, seen: set[tuple[str, str, str]]) -> WaitRequest:
    """The request without the results and exits already reported."""
    runs = [
        {
            **run,
            "tasks": [t for t in run["tasks"] if (run["dir"], "task", str(t)) not in seen],
            "elements": [e for e in run["elements"] if (run["dir"], "exit", str(e)) not in seen],
        }
        for run in request["runs"]
    ]
    return {**request, "runs": runs}  # type: ignore[typeddict-item]


MODES: dict[str, Any] = {
    "status": status,
    "cancel": cancel,
    "outputs": outputs,
    "watch": None,  # (a stream of requests and answers: see `watch`)
}


def main() -> int:
    mode = sys.argv[1] if len(sys.argv) > 1 else ""
    if mode not in MODES:
        print(f"usage: _agent.py {'|'.join(MODES)} < request.json", file=sys.stderr)
        return 2
    try:
        if mode == "watch":
            watch(sys.stdin.fileno(), sys.stdout)
        else:
            json.dump(MODES[mode](json.load(sys.stdin)), sys.stdout)
    except Exception as error:  # the caller went away (`wait`): no one to answer
        if type(error).__name__ == "CallerGone" or isinstance(error, BrokenPipeError):
            return 1
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
