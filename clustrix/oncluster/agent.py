"""The helper clustrix runs on a login node: one call reports on every live run.

Shipped next to the runner and, like it, importing only the standard library. It
reads a JSON request on stdin and prints a JSON answer, so a poll tick costs ONE
remote command however many jobs are live.

``python _agent.py status`` request::

    {"runs": [{"dir": RUN_DIR, "count": N, "chunksize": C,
               "elements": [E, ...],      # elements not settled yet
               "tasks": [I, ...],         # tasks whose result was not collected yet
               "tails": {E: LOG_PATH}}],  # elements known to have ended (their log)
     "inline_limit": BYTES}

answer, per run dir: ``elements`` {E: {"pid", "alive", "exit", "cancelled"}},
``results`` {I: base64 framed result, or null if larger than inline_limit},
``timeouts`` [I, ...], ``stderr`` {I: tail} for tasks of ended elements without a
result (ended: listed in ``tails``, or its process is gone).

``python _agent.py cancel`` request: {"runs": [{"dir": RUN_DIR, "elements": [E]}]}
writes each element's cancel marker (so one that has not started never will) and
kills the process group of each one that runs.

``python _agent.py outputs`` request: {"runs": [{"dir": RUN_DIR, "tasks": [I]}],
"limit": BYTES} returns each task's stdout and stderr tails (before a run directory
is cleaned up).
"""

from __future__ import annotations

import base64
import json
import os
import signal
import sys
import time
from typing import Any

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


def _alive(pid: int, run_dir: str) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            if handle.read().rsplit(")", 1)[1].split()[0] == "Z":
                return False
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return run_dir.encode() in handle.read()  # not a recycled pid
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


def _element(run_dir: str, element: int) -> dict[str, Any]:
    base = os.path.join(run_dir, "elements", str(element))
    pid_text, exit_text = _read(base + ".pid"), _read(base + ".exit")
    pid = int(pid_text) if pid_text and pid_text.isdigit() else None
    try:
        started: float | None = os.path.getmtime(base + ".pid")
    except OSError:
        started = None
    return {
        "pid": pid,
        "started": started,
        "alive": bool(pid) and exit_text is None and _alive(pid or 0, run_dir),
        "exit": int(exit_text) if exit_text and exit_text.lstrip("-").isdigit() else None,
        "cancelled": os.path.exists(base + ".cancel"),
    }


def status(request: dict[str, Any]) -> dict[str, Any]:
    limit = int(request.get("inline_limit", 1 << 20))
    answer: dict[str, Any] = {}
    for run in request["runs"]:
        run_dir, size = run["dir"], max(1, int(run.get("chunksize", 1)))
        tasks_dir = os.path.join(run_dir, "tasks")
        elements = {str(e): _element(run_dir, e) for e in run.get("elements", [])}
        tails = {str(e): log for e, log in run.get("tails", {}).items()}
        results: dict[str, str | None] = {}
        timeouts, stderr = [], {}
        for task in run.get("tasks", []):
            path = os.path.join(tasks_dir, f"{task}.result")
            try:
                if os.path.getsize(path) > limit:
                    results[str(task)] = None
                else:
                    with open(path, "rb") as handle:
                        results[str(task)] = base64.b64encode(handle.read()).decode()
                continue
            except OSError:
                pass
            if os.path.exists(os.path.join(tasks_dir, f"{task}.timeout")):
                timeouts.append(task)
            element = str(task // size)
            state = elements.get(element)
            ended = element in tails or (
                state is not None and not state["alive"] and (state["pid"] or state["exit"])
            )
            if ended:
                log = tails.get(element) or os.path.join(run_dir, "logs", f"{element}.err")
                stderr[str(task)] = (tail(os.path.join(tasks_dir, f"{task}.err")) + tail(log))[
                    -TAIL:
                ]
        # An element that started after its files were read (its results may be above):
        # report its pid as running, so every result comes with its element's id. Its
        # exit is left to the next call (elements are read before results on purpose).
        for element, state in elements.items():
            if state["pid"] is None and state["exit"] is None:
                late = _read(os.path.join(run_dir, "elements", f"{element}.pid"))
                if late and late.isdigit():
                    state.update(pid=int(late), alive=True)
        answer[run_dir] = {
            "now": time.time(),
            "exists": os.path.isdir(run_dir),
            "elements": elements,
            "results": results,
            "timeouts": timeouts,
            "stderr": stderr,
        }
    return answer


def cancel(request: dict[str, Any]) -> dict[str, Any]:
    killed: list[int] = []
    prevented: dict[str, list[int]] = {}
    for run in request["runs"]:
        run_dir = run["dir"]
        for element in run["elements"]:
            base = os.path.join(run_dir, "elements", str(element))
            os.makedirs(os.path.dirname(base), exist_ok=True)
            with open(base + ".cancel", "w") as handle:
                handle.write("cancelled\n")
            state = _element(run_dir, element)
            if state["pid"] is None and state["exit"] is None:
                # job.sh writes its pid, then checks the marker: it will not run.
                prevented.setdefault(run_dir, []).append(element)
            elif state["alive"] and state["pid"]:
                try:
                    os.killpg(state["pid"], signal.SIGKILL)
                    killed.append(state["pid"])
                except (ProcessLookupError, PermissionError):
                    pass
    return {"killed": killed, "prevented": prevented}


def outputs(request: dict[str, Any]) -> dict[str, Any]:
    """The stdout and stderr (last `limit` bytes) of the given tasks of each run."""
    limit = int(request.get("limit", 1 << 16))
    answer: dict[str, Any] = {}
    for run in request["runs"]:
        tasks_dir = os.path.join(run["dir"], "tasks")
        answer[run["dir"]] = {
            str(task): [
                tail(os.path.join(tasks_dir, f"{task}.out"), limit),
                tail(os.path.join(tasks_dir, f"{task}.err"), limit),
            ]
            for task in run["tasks"]
        }
    return answer


MODES = {"status": status, "cancel": cancel, "outputs": outputs}


def main() -> int:
    mode = sys.argv[1] if len(sys.argv) > 1 else ""
    if mode not in MODES:
        print(f"usage: _agent.py {'|'.join(MODES)} < request.json", file=sys.stderr)
        return 2
    json.dump(MODES[mode](json.load(sys.stdin)), sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
