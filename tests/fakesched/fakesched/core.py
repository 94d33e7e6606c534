"""The shared engine of the fake schedulers: state, knobs, the job executor.

Stdlib only (the fake tools run under whatever ``python3`` is on PATH). State lives in
the directory named by ``$FAKESCHED_DIR``:

    lock                flock'ed around every read-modify-write
    next_id             the next job number
    jobs/<master>.json  one submission: its options and one record per task
    knobs.json          failure injection, set by the tests (see tests/fakesched/README.md)
    calls.log           one JSON argv per line, every command that was run

A submission starts one detached *executor* (``python3 core.py execute MASTER``) in
its own session; it runs the tasks (each ``bash SCRIPT`` in a session of its own, so
a cancel kills exactly its process group), enforces time limits and injected
failures, and records how each task ended.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

FINAL = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "PREEMPTED"}
KILL_WAIT = 1.0  # seconds between SIGTERM and SIGKILL (Slurm's KillWait, shortened)


def state_dir() -> Path:
    path = os.environ.get("FAKESCHED_DIR")
    if not path:
        sys.stderr.write("fakesched: FAKESCHED_DIR is not set\n")
        sys.exit(2)
    directory = Path(path)
    (directory / "jobs").mkdir(parents=True, exist_ok=True)
    return directory


@contextlib.contextmanager
def locked() -> Iterator[Path]:
    directory = state_dir()
    with open(directory / "lock", "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield directory
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)


def log_call(tool: str, argv: list[str]) -> None:
    with locked() as directory, open(directory / "calls.log", "a") as handle:
        handle.write(json.dumps([tool, *argv]) + "\n")


# -- knobs -------------------------------------------------------------------------------
def knobs() -> dict[str, Any]:
    path = state_dir() / "knobs.json"
    try:
        data: dict[str, Any] = json.loads(path.read_text())
        return data
    except (OSError, ValueError):
        return {}


def take(name: str) -> Any:
    """A one-shot knob: its value, counted down (``{"count": N, ...}`` or a plain N)."""
    with locked() as directory:
        path = directory / "knobs.json"
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        value = data.get(name)
        if not value:
            return None
        if isinstance(value, dict):
            count = value.get("count", 1)
            if count <= 1:
                data.pop(name)
            else:
                data[name] = {**value, "count": count - 1}
        elif isinstance(value, int) and not isinstance(value, bool):
            if value <= 1:
                data.pop(name)
            else:
                data[name] = value - 1
        _write_json(path, data)
        return value


def _take_fail(script: str) -> Any:
    """The ``fail`` knob, for the first submission whose script contains its ``match``."""
    fail = knobs().get("fail")
    if fail and fail.get("match"):
        try:
            if fail["match"] not in Path(script).read_text():
                return None
        except OSError:
            return None
    return take("fail")


def refusal() -> str | None:
    """The message of an injected refusal, if this submission is to be refused.

    ``refuse = {"message": ..., "after": K, "count": N}``: the first K submissions
    pass, the next N are refused.
    """
    with locked() as directory:
        path = directory / "knobs.json"
        data = knobs()
        refuse = data.get("refuse")
        if not refuse:
            return None
        if refuse.get("after", 0) > 0:
            refuse["after"] -= 1
            _write_json(path, data)
            return None
        if refuse.get("count", 1) <= 1:
            data.pop("refuse")
        else:
            refuse["count"] -= 1
        _write_json(path, data)
        return str(refuse.get("message", "error: submission refused"))


# -- jobs --------------------------------------------------------------------------------
def new_id(count: int = 1) -> int:
    with locked() as directory:
        path = directory / "next_id"
        number = int(path.read_text()) if path.exists() else int(knobs().get("first_id", 100))
        path.write_text(str(number + max(1, count)))
        return number


def load(master: str) -> dict[str, Any] | None:
    try:
        job: dict[str, Any] = json.loads((state_dir() / "jobs" / f"{master}.json").read_text())
        return job
    except (OSError, ValueError):
        return None


def save(job: dict[str, Any]) -> None:
    _write_json(state_dir() / "jobs" / f"{job['master']}.json", job)


def all_jobs() -> list[dict[str, Any]]:
    jobs = []
    for path in sorted((state_dir() / "jobs").glob("*.json"), key=lambda p: _num(p.stem)):
        with contextlib.suppress(OSError, ValueError):
            jobs.append(json.loads(path.read_text()))
    return jobs


def _num(text: str) -> tuple[int, str]:
    digits = "".join(ch for ch in text if ch.isdigit())
    return (int(digits) if digits else -1, text)


def task(index: int, stdout: str, stderr: str, env: dict[str, str]) -> dict[str, Any]:
    """A task record, PENDING."""
    return {
        "index": index,
        "state": "PENDING",
        "reason": "Priority",
        "stdout": stdout,
        "stderr": stderr,
        "env": env,
        "pid": None,
        "exit": None,
        "signal": None,
        "submit": time.time(),
        "start": None,
        "end": None,
    }


def record(job: dict[str, Any]) -> None:
    """Store a new submission and start its executor (unless it can never run)."""
    job.setdefault("submit", time.time())
    job["fail"] = _take_fail(job["script"])
    with locked():
        save(job)
    if job.get("blocked"):
        with locked():
            job = load(job["master"]) or job
            for entry in job["tasks"].values():
                entry["reason"] = job["blocked"]
            save(job)
        return
    process = subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), "execute", job["master"]],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        close_fds=True,
    )
    with locked():
        stored = load(job["master"]) or job
        stored["executor"] = process.pid
        save(stored)


def cancel(master: str, indices: list[int] | None) -> list[int]:
    """Cancel tasks (all if `indices` is None); returns the indices that were live."""
    hit = []
    with locked():
        job = load(master)
        if job is None:
            return []
        for key, entry in job["tasks"].items():
            if indices is not None and int(key) not in indices:
                continue
            if entry["state"] == "PENDING":
                entry.update(state="CANCELLED", end=time.time(), cancelled_pending=True)
                hit.append(int(key))
            elif entry["state"] == "RUNNING":
                entry["cancel"] = True
                entry["kill_at"] = time.time() + KILL_WAIT
                _signal_group(entry["pid"], signal.SIGTERM)
                hit.append(int(key))
        save(job)
    return hit


def _signal_group(pid: int | None, sig: int) -> None:
    if pid:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, sig)


def visible(entry: dict[str, Any], keep: float) -> bool:
    """Does a live-queue view (squeue, qstat) still list this task?"""
    return entry["state"] not in FINAL or time.time() - (entry["end"] or 0) <= keep


# -- the executor ------------------------------------------------------------------------
def execute(master: str) -> None:
    processes: dict[str, subprocess.Popen[bytes]] = {}
    slots = int(knobs().get("slots", 8))
    while True:
        with locked():
            job = load(master)
            if job is None:
                return
            tasks = job["tasks"]
            now = time.time()
            running = sum(1 for t in tasks.values() if t["state"] == "RUNNING")
            limit = min(job.get("throttle") or slots, slots)
            for key in sorted(tasks, key=int):
                entry = tasks[key]
                if entry["state"] != "PENDING":
                    continue
                if running >= limit:
                    entry["reason"] = "JobArrayTaskLimit" if job.get("throttle") else "Resources"
                    continue
                processes[key] = _start(job, entry)
                entry.update(state="RUNNING", reason="None", pid=processes[key].pid, start=now)
                running += 1
            for key, process in list(processes.items()):
                entry = tasks[key]
                code = process.poll()
                if code is not None:
                    _finish(entry, code)
                    del processes[key]
                    continue
                _police(job, entry, now)
            save(job)
            done = all(t["state"] in FINAL for t in tasks.values())
        if done and not processes:
            return
        time.sleep(0.03)


def _start(job: dict[str, Any], entry: dict[str, Any]) -> subprocess.Popen[bytes]:
    env = {**os.environ, **entry["env"]}
    for path in (entry["stdout"], entry["stderr"]):
        with contextlib.suppress(OSError):
            Path(path).parent.mkdir(parents=True, exist_ok=True)
    out = open(entry["stdout"], "ab")  # noqa: SIM115 - handed to the child
    err = out if entry["stderr"] == entry["stdout"] else open(entry["stderr"], "ab")  # noqa: SIM115
    try:
        return subprocess.Popen(
            ["/bin/bash", job["script"]],
            cwd=job.get("workdir") or "/",
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            start_new_session=True,
            close_fds=True,
        )
    finally:
        out.close()
        if err is not out:
            err.close()


def _police(job: dict[str, Any], entry: dict[str, Any], now: float) -> None:
    """Time limits, injected failures, and SIGKILL after a SIGTERM that was ignored."""
    elapsed = now - entry["start"]
    fail = job.get("fail") or {}
    forced = fail.get("tasks", {}).get(str(entry["index"]), fail.get("state"))
    if "forced" not in entry and forced and elapsed >= float(fail.get("after", 0.0)):
        entry["forced"] = forced
        _signal_group(entry["pid"], signal.SIGKILL)
    limit = job.get("time_limit")
    if "forced" not in entry and limit and elapsed >= limit:
        entry["forced"] = "TIMEOUT"
        entry["kill_at"] = now + KILL_WAIT
        _signal_group(entry["pid"], signal.SIGTERM)
    if entry.get("kill_at") and now >= entry["kill_at"]:
        _signal_group(entry["pid"], signal.SIGKILL)


def _finish(entry: dict[str, Any], code: int) -> None:
    _signal_group(entry["pid"], signal.SIGKILL)  # what the job left behind (proctrack)
    entry["end"] = time.time()
    entry["exit"], entry["signal"] = (code, 0) if code >= 0 else (0, -code)
    if entry.get("forced"):
        entry["state"] = entry["forced"]
    elif entry.get("cancel"):
        entry["state"] = "CANCELLED"
    else:
        entry["state"] = "COMPLETED" if code == 0 else "FAILED"


# -- helpers for the front ends ----------------------------------------------------------
def directives(script: str, prefix: str) -> list[str]:
    """The arguments of the ``PREFIX`` lines at the top of a job script."""
    import shlex

    words: list[str] = []
    try:
        lines = Path(script).read_text().splitlines()
    except OSError:
        return words
    for line in lines[1:]:
        stripped = line.strip()
        if stripped.startswith(prefix + " "):
            words += shlex.split(stripped[len(prefix) :], comments=False)
        elif stripped and not stripped.startswith("#"):
            break
    return words


def parse_hms(text: str) -> int | None:
    """``[[D-]HH:]MM[:SS]`` (Slurm) or ``HH:MM:SS`` seconds; None if malformed."""
    days = 0
    if "-" in text:
        day_text, text = text.split("-", 1)
        if not day_text.isdigit():
            return None
        days = int(day_text)
    parts = text.split(":")
    if not all(p.isdigit() for p in parts) or not 1 <= len(parts) <= 3:
        return None
    numbers = [int(p) for p in parts]
    if days:
        seconds = [3600, 60, 1][: len(numbers)]
    elif len(numbers) == 1:
        seconds = [60]
    elif len(numbers) == 2:
        seconds = [60, 1]
    else:
        seconds = [3600, 60, 1]
    return days * 86400 + sum(n * s for n, s in zip(numbers, seconds, strict=True))


def user() -> str:
    import getpass

    return getpass.getuser()


def main() -> int:
    if len(sys.argv) == 3 and sys.argv[1] == "execute":
        os.environ.setdefault("FAKESCHED_DIR", "")
        execute(sys.argv[2])
        return 0
    sys.stderr.write("usage: core.py execute MASTER\n")
    return 2


if __name__ == "__main__":
    sys.exit(main())
