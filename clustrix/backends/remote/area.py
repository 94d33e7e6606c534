"""The private work area on a login node: the support bundle and per-submission runs.

Layout under ``remote_work_dir`` (mode 0700)::

    cache/<hash>/       _runner.py, _agent.py, clustrix_layout.py, clustrix_watch.py
                        and cloudpickle, content-addressed and uploaded once (zero-
                        install: the runner finds them beside itself, so the remote
                        Python needs nothing installed)
    runs/<key>/         one submission, as `clustrix.oncluster.layout` names its files
                        (all private)
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import posixpath
import sys
import tarfile
from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any

import cloudpickle

from ..._config import ClusterConfig
from ..._exceptions import EnvironmentMismatchError
from ...oncluster import agent as _agent
from ...oncluster import drive, layout, unpickle, watch
from ...oncluster import runner as _runner
from ...oncluster.layout import RunLayout, payload_files
from ...oncluster.protocol import (
    CancelAnswer,
    CancelRequest,
    OutputsAnswer,
    OutputsRequest,
    StatusAnswer,
    StatusRequest,
)
from ...transport.base import CommandResult, CommandStream, Transport
from ..base import Submission
from .scripts import command_setup

LOCAL_PYTHON = f"{sys.version_info[0]}.{sys.version_info[1]}"

# One command prepares the area and reports what the host has; every path is an argument.
_PREPARE = r"""
umask 077
mkdir -p "$1/runs" "$1/cache" && chmod 700 "$1" || exit 3
if [ -f "$2/READY" ]; then echo bundle=present; else echo bundle=missing; fi
echo cpus=$(nproc 2>/dev/null || getconf _NPROCESSORS_ONLN 2>/dev/null || echo 1)
"""
# Unpacked beside the target, then renamed into place: two clients unpacking at once
# (each sees it missing) never mix their files, and the loser just drops its copy.
_UNPACK = r"""
umask 077
tmp=$(mktemp -d "$1.XXXXXX") || exit 3
tar -xzf - -C "$tmp" && touch "$tmp/READY" || { rm -rf "$tmp"; exit 4; }
mv -T "$tmp" "$1" 2>/dev/null || rm -rf "$tmp"
test -f "$1/READY"
"""
_VERSION = "import sys; print('%d.%d' % sys.version_info[:2])"


@cache
def support_bundle() -> tuple[str, bytes]:
    """(content hash, tar.gz) of the runner, the agent, the run layout they share, the
    agent's file watcher and this cloudpickle package."""
    files: list[tuple[str, bytes]] = [
        ("_runner.py", Path(_runner.__file__).read_bytes()),
        ("_agent.py", Path(_agent.__file__).read_bytes()),
        ("clustrix_layout.py", Path(layout.__file__).read_bytes()),
        ("clustrix_unpickle.py", Path(unpickle.__file__).read_bytes()),
        ("clustrix_watch.py", Path(watch.__file__).read_bytes()),
        ("clustrix_drive.py", Path(drive.__file__).read_bytes()),
    ]
    package = Path(cloudpickle.__file__).parent
    for path in sorted(package.glob("*.py")):
        files.append((f"cloudpickle/{path.name}", path.read_bytes()))
    digest = hashlib.sha256()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in files:
            digest.update(name.encode() + b"\0" + data + b"\0")
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o600, 0
            archive.addfile(info, io.BytesIO(data))
    return digest.hexdigest()[:16], buffer.getvalue()


class RemoteArea:
    """Prepares `remote_work_dir` once per client and stages submissions into it."""

    def __init__(self, transport: Transport, config: ClusterConfig) -> None:
        self.transport = transport
        self.config = config
        self._lock = asyncio.Lock()
        self._ready = False
        self.work_dir = ""
        self.bundle_dir = ""
        self.cpus = 1

    @property
    def runner(self) -> str:
        return posixpath.join(self.bundle_dir, "_runner.py")

    @property
    def agent(self) -> str:
        return posixpath.join(self.bundle_dir, "_agent.py")

    async def prepare(self) -> None:
        """Create the area, check the remote Python, upload the bundle if missing."""
        async with self._lock:
            if self._ready:
                return
            self.work_dir = await self.transport.expand(self.config.remote_work_dir)
            digest, archive = support_bundle()
            self.bundle_dir = posixpath.join(self.work_dir, "cache", digest)
            facts = await self.transport.run(
                ["sh", "-c", _PREPARE, "sh", self.work_dir, self.bundle_dir]
            )
            lines = dict(line.split("=", 1) for line in facts.stdout.split() if "=" in line)
            self.cpus = max(1, int(lines.get("cpus", "1") or 1))
            await self._check_python()
            if lines.get("bundle") != "present":
                await self.transport.run(
                    ["sh", "-c", _UNPACK, "sh", self.bundle_dir], stdin=archive
                )
            self._ready = True

    async def _check_python(self) -> None:
        python = self.config.python_executable
        result = await self.run_python([python, "-c", _VERSION], check=False)
        remote = result.stdout.strip()
        if result.exit_status != 0 or not remote:
            raise EnvironmentMismatchError(
                f"cannot run python_executable={python!r} on the cluster (exit "
                f"{result.exit_status}): {result.stderr.strip()[-500:]}. Set python_executable "
                f"to a Python {LOCAL_PYTHON} interpreter there (or load it with module_loads)."
            )
        if remote != LOCAL_PYTHON:
            raise EnvironmentMismatchError(
                f"the cluster's {python!r} is Python {remote}, this one is Python "
                f"{LOCAL_PYTHON}: pickled functions cannot travel between Python minor "
                f"versions. Point python_executable at a Python {LOCAL_PYTHON} on the cluster "
                f"(e.g. module_loads=['python/{LOCAL_PYTHON}'] or a conda environment), or "
                f"run clustrix here with Python {remote}."
            )

    async def run_python(
        self, argv: Sequence[str], *, check: bool = True, stdin: bytes | None = None
    ) -> CommandResult:
        """Run a Python command in the environment a job sets up (``templates/
        environment.sh.j2``: modules, conda, variables, pre_execution_commands)."""
        setup = command_setup(self.config)
        if not setup:
            return await self.transport.run(argv, check=check, stdin=stdin)
        script = setup + '\nexec "$@"\n'
        return await self.transport.run(
            ["bash", "-c", script, "bash", *argv], check=check, stdin=stdin
        )

    async def stage(self, submission: Submission, chunksize: int, time_limit: int | None) -> str:
        """Create ``runs/<key>`` with the payload; return its absolute path."""
        await self.prepare()
        run = RunLayout(posixpath.join(self.work_dir, "runs", submission.key))
        folders = (run.tasks, run.elements, run.logs)
        await self.transport.run(["sh", "-c", 'umask 077; mkdir -p "$@"', "sh", *folders])
        payload = submission.payload
        spec = payload.spec_json(chunksize, time_limit=time_limit)
        files = payload_files(payload.function, payload.args_blob(), spec)
        await asyncio.gather(
            *(self.transport.write_file(run.path(name), data) for name, data in files.items())
        )
        return run.dir

    async def expand(self, path: str) -> str:
        """`path` on the login node, made absolute (``~`` is the remote home)."""
        return await self.transport.expand(path)

    async def agent_call(self, mode: str, request: Mapping[str, Any]) -> Any:
        """One call of the agent (`status`, `cancel` or `outputs`) for many runs at once;
        the answer as `clustrix.oncluster.protocol` types it for `mode`."""
        result = await self.transport.run(
            [self.config.python_executable, self.agent, mode],
            stdin=json.dumps(request).encode(),
        )
        return json.loads(result.stdout)

    async def status(self, request: StatusRequest) -> StatusAnswer:
        """The agent's `status` of many runs at once."""
        answer: StatusAnswer = await self.agent_call("status", request)
        return answer

    async def watch(self) -> CommandStream:
        """The agent's `watch` stream (`WaitRequest` lines in, `WaitAnswer` lines out);
        closing it stops the remote process."""
        return await self.transport.open_stream(
            [self.config.python_executable, self.agent, "watch"]
        )

    async def cancel(self, run_dir: str, elements: Sequence[int]) -> set[int]:
        """Cancel elements through their markers; return those that will never start."""
        request: CancelRequest = {"runs": [{"dir": run_dir, "elements": list(elements)}]}
        answer: CancelAnswer = await self.agent_call("cancel", request)
        return set(answer["prevented"].get(run_dir, []))

    async def outputs(self, run_dir: str, tasks: Sequence[int]) -> dict[int, tuple[str, str]]:
        """Each task's stdout and stderr (their last 64 KiB), before the run is removed."""
        request: OutputsRequest = {"runs": [{"dir": run_dir, "tasks": list(tasks)}]}
        answer: OutputsAnswer = await self.agent_call("outputs", request)
        return {int(task): (out, err) for task, (out, err) in answer.get(run_dir, {}).items()}
