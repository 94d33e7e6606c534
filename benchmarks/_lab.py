"""The test lab, the floors' OpenSSH sessions, and the counters read from outside clustrix.

Everything here stands outside clustrix: configs are built with the public
`ClusterConfig`; SSH logins are counted from sshd's own log, matched to this
process's sockets; Slurm submissions from the job ids clustrix reports.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shlex
import tempfile
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from clustrix import Client, ClusterConfig

LAB_FILE = Path("/var/lib/clustrix-lab/lab.json")
LAB: dict[str, Any] = json.loads(LAB_FILE.read_text()) if LAB_FILE.exists() else {}


def lab_up() -> bool:
    """Whether the lab description exists and says it is healthy."""
    return bool(LAB.get("ok"))


def lab_config(cluster_type: str, remote_work_dir: str, **fields: Any) -> ClusterConfig:
    """A config that logs into the lab as its user, with its key and known_hosts."""
    return ClusterConfig(
        cluster_type=cluster_type,
        cluster_host=LAB["host"],
        cluster_port=LAB["ports"][cluster_type],
        username=LAB["user"],
        key_file=LAB["key_file"],
        known_hosts=LAB["known_hosts"],
        remote_work_dir=remote_work_dir,
        **fields,
    )


def square(x: int) -> int:
    """The trivial function every call and sweep runs."""
    return x * x


async def run(argv: list[str], *, check: bool = True, stdin: bytes | None = None) -> str:
    """Run a local command without blocking the loop; its stdout (text)."""
    process = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate(stdin)
    if check and process.returncode != 0:
        raise RuntimeError(
            f"{shlex.join(argv)[:200]} exited {process.returncode}: {err.decode()[-500:]}"
        )
    return out.decode()


class OpenSSH:
    """One OpenSSH login (ControlMaster) that later commands reuse: the floors' session.

    `start()` logs in once; `run(script)` is a new channel on that connection
    (no login), as a shell user with one warm `ssh` session would work.
    """

    def __init__(self, host_alias: str = "clustrix-lab") -> None:
        self._dir = tempfile.mkdtemp(prefix="cx-bench-ssh-")
        self._socket = os.path.join(self._dir, "control")
        self._alias = host_alias
        self._master: asyncio.subprocess.Process | None = None

    def _argv(self, *extra: str) -> list[str]:
        return ["ssh", "-F", LAB["ssh_config"], "-S", self._socket, *extra, self._alias]

    async def start(self) -> None:
        """Log in once and keep the connection as a control master."""
        self._master = await asyncio.create_subprocess_exec(
            *self._argv("-M", "-N", "-o", "ControlPersist=no"),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        for _ in range(200):
            if os.path.exists(self._socket):
                check = await asyncio.create_subprocess_exec(
                    *self._argv("-O", "check"),
                    stdout=asyncio.subprocess.DEVNULL,
                    stderr=asyncio.subprocess.DEVNULL,
                )
                if await check.wait() == 0:
                    return
            if self._master.returncode is not None:
                break
            await asyncio.sleep(0.05)
        raise RuntimeError("could not open the floor's OpenSSH control master on the lab")

    async def run(self, script: str, *args: str) -> str:
        """Run `sh -c script args...` on the lab over the warm connection."""
        return await run([*self._argv(), shlex.join(["sh", "-c", script, "sh", *args])])

    async def close(self) -> None:
        """End the control master (the process this object started)."""
        if self._master is not None and self._master.returncode is None:
            self._master.terminate()
            await self._master.wait()
        with contextlib.suppress(OSError):
            os.unlink(self._socket)
        with contextlib.suppress(OSError):
            os.rmdir(self._dir)


async def ssh_once(script: str, *args: str) -> str:
    """Run `sh -c script args...` over a fresh OpenSSH login (the sweeps' floor)."""
    remote = shlex.join(["sh", "-c", script, "sh", *args])
    return await run(["ssh", "-F", LAB["ssh_config"], "clustrix-lab", remote])


def submissions(job_ids: Iterable[str | None]) -> int:
    """Slurm submissions behind these jobs: distinct ids before the array's ``_``."""
    return len({jid.split("_", 1)[0] for jid in job_ids if jid})


def poll_counters(client: Client) -> tuple[int, int] | None:
    """(scheduler commands, poll ticks) summed over the client's backends, if readable.

    These counters are clustrix internals with no public API: read defensively.
    """
    backends = getattr(client, "_backends", None)
    if not isinstance(backends, dict):
        return None
    commands = ticks = 0
    found = False
    for backend in backends.values():
        c, t = getattr(backend, "poll_commands", None), getattr(backend, "poll_ticks", None)
        if isinstance(c, int) and isinstance(t, int):
            commands, ticks, found = commands + c, ticks + t, True
    return (commands, ticks) if found else None


def per_tick(before: tuple[int, int] | None, after: tuple[int, int] | None) -> float | None:
    """Commands per tick between two `poll_counters` readings (None if unknown)."""
    if before is None or after is None or after[1] <= before[1]:
        return None
    return (after[0] - before[0]) / (after[1] - before[1])


def _my_socket_inodes() -> set[str]:
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/self/fd/{fd}")
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    return inodes


def _my_ports_to(remote_port: int) -> set[int]:
    """Local ports of this process's TCP connections to `remote_port`."""
    mine = _my_socket_inodes()
    ports = set()
    for table in ("/proc/self/net/tcp", "/proc/self/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as lines:
            next(lines)
            for line in lines:
                cols = line.split()
                if cols[9] in mine and int(cols[2].rsplit(":", 1)[1], 16) == remote_port:
                    ports.add(int(cols[1].rsplit(":", 1)[1], 16))
    return ports


class LoginCounter:
    """Counts sshd logins made by THIS process while the block runs.

    sshd logs ``Accepted publickey for USER from ADDR port P``; other processes (other
    engineers' lab tests) log in too, so only lines whose port P is one this process
    was seen connecting from (sampled every 10 ms) count. `others` counts the rest.
    """

    def __init__(self, remote_port: int) -> None:
        self._remote_port = remote_port
        self._regex = re.compile(LAB.get("sshd_login_regex", r"^Accepted \S+ for "))
        self._log = Path(LAB.get("sshd_log", "/var/log/sshd-clustrix-lab.log"))
        self._ports: set[int] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._offset = 0
        self.logins: int | None = None
        self.others = 0

    def _sample(self) -> None:
        while not self._stop.wait(0.01):
            self._ports |= _my_ports_to(self._remote_port)

    def __enter__(self) -> LoginCounter:
        self._offset = self._log.stat().st_size if self._log.exists() else 0
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        if not self._log.exists():
            return
        with self._log.open("rb") as log:
            log.seek(self._offset)
            text = log.read().decode(errors="replace")
        mine = others = 0
        for line in text.splitlines():
            if self._regex.search(line):
                port = re.search(r" port (\d+)", line)
                if port and int(port.group(1)) in self._ports:
                    mine += 1
                else:
                    others += 1
        self.logins, self.others = mine, others


_SLURM_STAMP = re.compile(r"^\[(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+)\] (.*)$")


def slurm_start_waits(job_ids: Iterable[str]) -> dict[str, float]:
    """Seconds from submission to start of each (non-array) Slurm job, read from
    slurmctld's own log (``_slurm_rpc_submit_batch_job`` -> ``sched: Allocate``, ms
    stamps): the part of a call no client can shorten. Jobs not found are left out."""
    import datetime

    wanted = set(job_ids)
    conf = Path("/etc/slurm/slurm.conf")
    found = re.search(r"^SlurmctldLogFile=(\S+)", conf.read_text(), re.M) if conf.exists() else None
    log = Path(found.group(1) if found else "/var/log/slurm/slurmctld.log")
    submitted: dict[str, float] = {}
    started: dict[str, float] = {}
    with contextlib.suppress(OSError), log.open("rb") as handle:
        handle.seek(max(0, log.stat().st_size - (32 << 20)))  # (the recent part is enough)
        for raw in handle:
            match = _SLURM_STAMP.match(raw.decode(errors="replace"))
            if not match:
                continue
            stamp, text = match.groups()
            job = re.search(r"JobId=(\d+)\b(?![_(])", text)
            if job is None or job.group(1) not in wanted:
                continue
            when = datetime.datetime.fromisoformat(stamp).timestamp()
            if text.startswith("_slurm_rpc_submit_batch_job"):
                submitted[job.group(1)] = when
            elif text.startswith("sched: Allocate"):
                started[job.group(1)] = when
    return {j: started[j] - submitted[j] for j in wanted if j in started and j in submitted}
