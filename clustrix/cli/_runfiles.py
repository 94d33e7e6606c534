"""Read a recorded run's output files on the cluster, and nothing else.

``clustrix logs`` (without ``--follow``) reads a task's stdout/stderr straight from its
run directory (`clustrix.oncluster.layout`): the finished task's ``tasks/I.out``, or
the scratch file its element is writing while it runs. Unlike `Client.attach`, this
collects no result and removes nothing, so a later ``clustrix result`` or
``Client.attach`` still gets the value.
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Sequence

from .._config import ClusterConfig
from ..oncluster.layout import ERR, OUT, RESULT, RunLayout
from ..transport.base import Transport
from ..transport.local import LocalTransport
from ..transport.ssh import SSHTransport

#: The backends whose tasks write into a run directory on the cluster.
FILE_BACKENDS = frozenset({"ssh", "slurm", "pbs", "sge"})


class RunFiles:
    """Reads output files of run directories over one connection; `aclose` when done."""

    def __init__(self, config: ClusterConfig) -> None:
        self.transport: Transport = (
            SSHTransport(config) if config.cluster_host else LocalTransport()
        )

    async def aclose(self) -> None:
        """Close the connection."""
        await self.transport.aclose()

    async def _text(self, path: str) -> str | None:
        try:
            return (await self.transport.read_file(path)).decode(errors="replace")
        except FileNotFoundError:
            return None

    async def outputs(
        self, run_dir: str, indices: Sequence[int], stderr: bool
    ) -> dict[int, str] | None:
        """Each task's stream so far (``""`` if it wrote nothing yet); None when the run
        directory is gone from the cluster."""
        layout = RunLayout(await self.transport.expand(run_dir))
        listing = await self.transport.run(["ls", "-A", "--", layout.tasks], check=False)
        spec = await self._text(layout.spec) if listing.exit_status == 0 else None
        if spec is None:
            return None
        chunksize = max(1, int(json.loads(spec).get("chunksize") or 1))
        names = set(listing.stdout.split())
        suffix = ERR if stderr else OUT
        texts: dict[int, str] = {}
        for index in indices:
            if f"{index}.{suffix}" in names:  # the task ended (its own file)
                text = await self._text(layout.task(index, suffix))
            elif f"{index}.{RESULT}" in names:
                text = ""  # ended without writing to this stream
            elif index == _running(index, chunksize, names):  # its element's scratch file
                text = await self._text(f"{layout.scratch(index // chunksize)}.{suffix}")
            else:
                text = ""  # not started yet
            texts[index] = text or ""
        return texts


def _running(index: int, chunksize: int, names: set[str]) -> int | None:
    """The task its element is running now: the first of its chunk without a result."""
    first = index - index % chunksize
    return next((i for i in range(first, first + chunksize) if f"{i}.{RESULT}" not in names), None)


def run_dir_of(submission_key: str, run_dir: str | None, config: ClusterConfig) -> str:
    """The recorded run directory, or where a submission's would be."""
    return run_dir or posixpath.join(config.remote_work_dir, "runs", submission_key)
