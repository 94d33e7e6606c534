"""The agent's `wait` on a real local filesystem: inotify, the stat loop, the caller
going away. (On the lab, through SSH: tests/remote/test_result_wait.py.)"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from clustrix.oncluster import agent, watch
from clustrix.oncluster.layout import RunLayout
from clustrix.oncluster.protocol import WaitRequest

NFS_MOUNTINFO = """\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
40 22 0:35 / /home rw,relatime shared:20 - nfs4 server:/export/home rw,vers=4.2
41 40 0:36 / /home/alice/scratch\\040space rw - tmpfs tmpfs rw
"""


def staged(tmp_path: Path, tasks: int = 2) -> RunLayout:
    layout = RunLayout(str(tmp_path / "run"))
    for folder in (layout.tasks, layout.elements, layout.logs):
        os.makedirs(folder)
    return layout


def request(layout: RunLayout, watch_how: str, timeout: float) -> WaitRequest:
    return {
        "runs": [
            {
                "dir": layout.dir,
                "count": 2,
                "chunksize": 1,
                "elements": [0, 1],
                "tasks": [0, 1],
                "tails": {},
            }
        ],
        "inline_limit": 1 << 20,
        "timeout": timeout,
        "watch": watch_how,
    }


def write_atomically(path: str, data: bytes) -> None:
    """As the runner and the job script do: a temp file renamed into place."""
    tmp = f"{path}.tmp.{os.getpid()}"
    Path(tmp).write_bytes(data)
    os.replace(tmp, path)


def write_later(path: str, data: bytes, after: threading.Event) -> threading.Thread:
    def write() -> None:
        after.wait(30)
        time.sleep(0.2)  # (the wait is under way by then; if not, it finds the file at once)
        write_atomically(path, data)

    thread = threading.Thread(target=write)
    thread.start()
    return thread


@pytest.fixture
def slow_safety_nets(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the watching itself can end a wait early (not the periodic re-listing)."""
    monkeypatch.setattr(watch, "RECHECK", 1000.0)
    monkeypatch.setattr(watch, "RELIST", 1000.0)


@pytest.mark.parametrize("how", ["auto", "stat"])
def test_wait_returns_when_a_result_file_appears(
    tmp_path: Path, how: str, slow_safety_nets: None
) -> None:
    layout = staged(tmp_path)
    start = threading.Event()
    writer = write_later(layout.task(1, "result"), b"framed", start)
    began = time.monotonic()
    start.set()
    answer = agent.wait(request(layout, how, timeout=60))
    writer.join()
    assert answer["woke"]
    assert answer["watch"] == ("inotify" if how == "auto" else "stat")
    assert list(answer["runs"][layout.dir]["results"]) == ["1"]
    assert time.monotonic() - began < 30  # the file ended the wait, not its 60 s timeout


@pytest.mark.parametrize("how", ["auto", "stat"])
def test_wait_returns_when_an_exit_file_appears(
    tmp_path: Path, how: str, slow_safety_nets: None
) -> None:
    layout = staged(tmp_path)
    start = threading.Event()
    writer = write_later(layout.element(0, "exit"), b"1\n", start)
    began = time.monotonic()
    start.set()
    answer = agent.wait(request(layout, how, timeout=60))
    writer.join()
    assert answer["woke"]
    assert answer["runs"][layout.dir]["elements"]["0"]["exit"] == 1
    assert time.monotonic() - began < 30


@pytest.mark.parametrize("how", ["auto", "stat"])
def test_files_nobody_waits_for_do_not_end_the_wait(tmp_path: Path, how: str) -> None:
    layout = staged(tmp_path)
    write_atomically(layout.task(0, "out"), b"printed")
    write_atomically(layout.task(7, "result"), b"not watched")
    write_atomically(layout.element(5, "exit"), b"0\n")
    start = threading.Event()
    writer = write_later(layout.task(1, "err"), b"more", start)
    start.set()
    answer = agent.wait(request(layout, how, timeout=1.0))
    writer.join()
    assert not answer["woke"]
    assert answer["runs"][layout.dir]["results"] == {}


def test_a_file_already_there_ends_the_wait_at_once(tmp_path: Path) -> None:
    layout = staged(tmp_path)
    write_atomically(layout.task(0, "result"), b"framed")
    answer = agent.wait(request(layout, "auto", timeout=600))
    assert answer["woke"] and "0" in answer["runs"][layout.dir]["results"]


def test_network_filesystems_get_the_stat_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, slow_safety_nets: None
) -> None:
    """inotify does not see what other machines write to NFS: the agent must not rely
    on it there (nor where the filesystem cannot be told)."""
    assert watch.filesystem("/home/alice/x", NFS_MOUNTINFO) == "nfs4"
    assert watch.filesystem("/home/alice/scratch space/r", NFS_MOUNTINFO) == "tmpfs"
    assert watch.filesystem("/opt", NFS_MOUNTINFO) == "ext4"
    assert watch.filesystem("/x", "") == ""
    real = watch.filesystem

    def as_if_nfs(path: str, mountinfo: str | None = None) -> str:
        return "nfs4" if path.startswith(str(tmp_path)) else real(path, mountinfo)

    monkeypatch.setattr(watch, "filesystem", as_if_nfs)
    layout = staged(tmp_path)
    start = threading.Event()
    writer = write_later(layout.task(0, "result"), b"framed", start)
    start.set()
    answer = agent.wait(request(layout, "auto", timeout=60))
    writer.join()
    assert answer["woke"] and answer["watch"] == "stat"


@pytest.mark.parametrize("how", ["auto", "stat"])
def test_the_wait_ends_when_its_caller_goes_away(tmp_path: Path, how: str) -> None:
    """The agent's stdout is the SSH channel: once the client closes it, the wait stops
    (no agent left behind on the login node)."""
    layout = staged(tmp_path)
    read_end, write_end = os.pipe()
    outcome: dict[str, Any] = {}

    def waiting() -> None:
        try:
            agent.wait(request(layout, how, timeout=120), hangup=write_end)
        except watch.CallerGone as error:
            outcome["gone"] = error

    thread = threading.Thread(target=waiting)
    thread.start()
    os.close(read_end)
    thread.join(60)
    os.close(write_end)
    assert not thread.is_alive()
    assert "gone" in outcome


class Watching:
    """`agent.watch` in a thread, fed and read through pipes as the SSH channel would."""

    def __init__(self) -> None:
        self.stdin_read, self.stdin_write = os.pipe()
        out_read, out_write = os.pipe()
        self.out = os.fdopen(out_read, "r")
        self._stdout = os.fdopen(out_write, "w")
        self.outcome: dict[str, Any] = {}
        self.thread = threading.Thread(target=self._run)
        self.thread.start()

    def _run(self) -> None:
        try:
            agent.watch(self.stdin_read, self._stdout)
            self.outcome["ended"] = True
        except Exception as error:  # (the test asserts on it)
            self.outcome["error"] = error
        finally:
            self._stdout.close()

    def send(self, request: WaitRequest) -> None:
        os.write(self.stdin_write, json.dumps(request).encode() + b"\n")

    def answer(self) -> dict[str, Any]:
        line = self.out.readline()
        assert line, f"the agent ended: {self.outcome}"
        answer: dict[str, Any] = json.loads(line)
        return answer

    def close(self) -> None:
        os.close(self.stdin_write)
        self.thread.join(30)
        assert not self.thread.is_alive()
        self.out.close()
        os.close(self.stdin_read)


@pytest.mark.parametrize("how", ["auto", "stat"])
def test_one_watch_reports_each_result_and_exit_once(tmp_path: Path, how: str) -> None:
    layout = staged(tmp_path)
    watching = Watching()
    try:
        watching.send(request(layout, how, timeout=120))
        write_atomically(layout.task(0, "result"), b"first")
        first = watching.answer()["runs"][layout.dir]
        assert list(first["results"]) == ["0"]
        write_atomically(layout.element(0, "exit"), b"0\n")
        write_atomically(layout.task(1, "result"), b"second")
        later: dict[str, Any] = {"results": {}, "exits": set()}
        while "1" not in later["results"] or "0" not in later["exits"]:
            report = watching.answer()["runs"][layout.dir]
            assert "0" not in report["results"]  # (reported once)
            later["results"].update(report["results"])
            later["exits"] |= {e for e, f in report["elements"].items() if f.get("exit") == 0}
    finally:
        watching.close()
    assert watching.outcome == {"ended": True}  # EOF on its stdin ends it


def test_a_new_request_replaces_the_last_without_a_new_process(tmp_path: Path) -> None:
    one, two = staged(tmp_path / "one"), staged(tmp_path / "two")
    watching = Watching()
    try:
        watching.send(request(one, "auto", timeout=120))
        both = request(one, "auto", timeout=120)
        both["runs"] += request(two, "auto", timeout=120)["runs"]
        watching.send(both)
        write_atomically(two.task(1, "result"), b"from the second run")
        assert list(watching.answer()["runs"][two.dir]["results"]) == ["1"]
    finally:
        watching.close()


def test_a_watch_ends_when_its_caller_goes_away(tmp_path: Path) -> None:
    layout = staged(tmp_path)
    watching = Watching()
    watching.send(request(layout, "auto", timeout=120))
    watching.out.close()  # the client closed the channel
    watching.thread.join(60)
    assert isinstance(watching.outcome.get("error"), watch.CallerGone)
    os.close(watching.stdin_write)
    os.close(watching.stdin_read)
