"""The `ssh` backend: tasks run as detached processes on a host with no scheduler.

A run is started by ONE command: a driver in its own session (``driver.sh``, from
``templates/ssh.sh.j2``) sets up the job's environment once and has the runner fork
the elements (bounded by the host's CPUs, the task's `cores` and `max_concurrent`),
each in a session of its own, so cancelling kills exactly its process group.
Elements write pid and exit-code files, which the agent reads on each poll tick.
Walltime is enforced by the runner.
"""

from __future__ import annotations

from collections.abc import Sequence
from shlex import quote

from ..._config import ClusterConfig
from ..._exceptions import ClusterConnectionError
from ..._states import JobState
from ..._testing import crash_point
from ...oncluster import layout
from ...oncluster.protocol import ElementReport
from ...transport.base import Transport
from ..base import Submission
from .runs import Fate, RemoteRunsBackend, Run, auto_chunksize
from .scripts import render_ssh_script

# Prints the driver's pid (also kept in its pid file); `setsid` execs in place here (the
# background child is no group leader), so `$!` is the driver itself. File names come
# from the run layout (plain words).
_DRIVER_LOG = quote(f"{layout.LOGS}/{layout.DRIVER_LOG}")
_DRIVER_PID, _DRIVER_SCRIPT = quote(layout.DRIVER_PID), quote(layout.DRIVER_SCRIPT)
_LAUNCH = f"""
cd "$1" || exit 3
if [ -e {_DRIVER_LOG} ]; then echo "already-launched $(cat {_DRIVER_PID} 2>/dev/null)"; exit 0; fi
setsid nohup sh ./{_DRIVER_SCRIPT} "$2" "$3" >{_DRIVER_LOG} 2>&1 </dev/null &
echo "$!" >{_DRIVER_PID}
echo "launched $!"
"""
_VANISHED = "its process ended without recording an exit status (killed outside clustrix?)"


class SSHBackend(RemoteRunsBackend):
    """Runs tasks on one SSH host as detached process groups."""

    may_batch = True

    def __init__(self, config: ClusterConfig, transport: Transport) -> None:
        super().__init__(config, transport, f"ssh {config.cluster_host}")
        self._host = config.cluster_host or "localhost"

    async def batchable(self) -> bool:
        return True  # one driver for the batch; every element is its own process group

    def _slots(self, submission: Submission) -> int:
        cores = min(submission.resources.cores, self._area.cpus)
        return max(1, self._area.cpus // cores)

    def plan(self, submission: Submission) -> int:
        return submission.chunksize or auto_chunksize(len(submission.jobs), self._slots(submission))

    def runner_time_limit(self, submission: Submission) -> int | None:
        return submission.resources.time  # no scheduler here: the runner enforces it

    async def launch(self, run: Run) -> None:
        submission, area = run.submission, self._area
        script = render_ssh_script(
            self._config,
            submission.resources,
            run.directory,
            area.runner,
            submission.key,
            run.venv,
        )
        await area.transport.write_file(run.layout.path(layout.DRIVER_SCRIPT), script.encode())
        parallel = min(run.elements, submission.resources.max_concurrent or self._slots(submission))
        if submission.batched:  # independent calls: each starts at once, as it would alone
            parallel = run.elements
        launch = ["sh", "-c", _LAUNCH, "sh", run.directory, str(run.elements), str(parallel)]
        try:
            result = await area.transport.run(launch, idempotent=False)
            crash_point("submitted")
        except ClusterConnectionError as error:
            if not error.transient:
                raise
            # It may have started: the launcher refuses to start a run twice, so
            # asking again (on a fresh connection) is safe and tells us.
            result = await area.transport.run(launch)
        pid = result.stdout.split()[-1:]
        if pid and pid[0].isdigit():
            run.driver = f"{self._host}:{pid[0]}"

    def initial_job_id(self, run: Run, element: int) -> str | None:
        """Until an element starts: the driver's id, with the element's index in a sweep."""
        driver = run.driver
        jobs = run.submission.jobs
        if driver is None or (len(jobs) == 1 and jobs[0].index is None):
            return driver
        return f"{driver}_{element}"

    async def recover(self, run: Run) -> bool:
        """Launched if its driver wrote its pid (the launcher never starts a run twice)."""
        try:
            pid = await self._area.transport.read_file(run.layout.path(layout.DRIVER_PID))
        except FileNotFoundError:
            return False
        if pid.strip().isdigit():
            run.driver = f"{self._host}:{pid.decode().strip()}"
        return True

    async def observe(self, runs: Sequence[Run]) -> dict[Run, dict[int, Fate]]:
        return {}  # no scheduler: the agent's pid and exit files tell everything

    def element_fate(self, run: Run, element: int, report: ElementReport) -> Fate | None:
        pid = report.get("pid")
        job_id = f"{self._host}:{pid}" if pid else None
        if report.get("alive"):
            return Fate(JobState.RUNNING, job_id=job_id)
        exit_code = report.get("exit")
        if pid is None and exit_code is None:
            return None  # not started yet
        if report.get("cancelled"):
            return Fate(JobState.CANCELLED, job_id=job_id, exit_code=exit_code)
        if exit_code is None:  # its process group is gone without a word: killed from outside
            return Fate(JobState.LOST, job_id=job_id, reason=_VANISHED)
        return Fate(JobState.FAILED, job_id=job_id, exit_code=exit_code)

    async def cancel_elements(self, run: Run, elements: Sequence[int]) -> set[int]:
        if not elements:
            return set()
        # Elements that had not started never will (they check their marker first).
        return await self._area.cancel(run.directory, elements)
