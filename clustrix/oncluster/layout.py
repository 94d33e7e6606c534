"""Every file and folder of a run directory, named once for the client, agent and runner.

Shipped to clusters beside the runner and the agent (as ``clustrix_layout.py``), so
it imports only the standard library. A run directory holds::

    function.pkl        the callable, pickled once per submission
    args.bin            every task's (args, kwargs) pickle, back to back
    spec.json           {"format": 1, "count": N, "chunksize": C, "offsets": [...],
                         "time_limit": seconds or null}
    job-N.sh            the job script of the array part at element offset N (batch)
    driver.sh           the ssh backend's driver: sets up the environment, then the
                        runner forks every element (driver.pid, logs/driver.log)
    tasks/I.result      task I's framed result (written atomically: temp file, rename)
    tasks/I.out, I.err  task I's own stdout and stderr, only if it wrote any
    tasks/I.timeout     present if the runner killed task I at its time limit
    tasks/I.cancel      present if task I must not start (local workers)
    tasks/.running-eE.out/.err   what the running task of element E writes (batch, ssh)
    tasks/.running-PID.out/.err  what the running task of worker PID writes (local)
    elements/E.pid      the pid (and node) of element E's job script, once it started
    elements/E.exit     element E's exit status (0 written by the runner itself)
    elements/E.cancel   present if element E must not start (or was cancelled)
    logs/E.out, E.err   element E's own stdout and stderr (the scheduler's logs)
    worker.err          the stderr of the local backend's workers
"""

from __future__ import annotations

from posixpath import join

#: What a task's or element's file ends with.
RESULT, OUT, ERR, TIMEOUT, CANCEL, PID, EXIT = (
    "result",
    "out",
    "err",
    "timeout",
    "cancel",
    "pid",
    "exit",
)

FUNCTION, ARGS, SPEC = "function.pkl", "args.bin", "spec.json"  # the staged payload
TASKS, ELEMENTS, LOGS = "tasks", "elements", "logs"  # the run directory's folders
# The ssh backend's driver: its script, its pid and its log (under LOGS).
DRIVER_SCRIPT, DRIVER_PID, DRIVER_LOG = "driver.sh", "driver.pid", "driver.log"


def payload_files(function: bytes, args: bytes, spec: bytes) -> dict[str, bytes]:
    """The staged payload's files by their name in the run directory."""
    return {FUNCTION: function, ARGS: args, SPEC: spec}


class RunLayout:
    """The paths of one run directory (on the machine where they are used)."""

    __slots__ = ("dir",)

    def __init__(self, run_dir: str) -> None:
        self.dir = run_dir

    @property
    def function(self) -> str:
        """The pickled callable."""
        return join(self.dir, FUNCTION)

    @property
    def args(self) -> str:
        """Every task's pickled arguments, back to back."""
        return join(self.dir, ARGS)

    @property
    def spec(self) -> str:
        """The run's spec (count, chunksize, argument offsets, time limit)."""
        return join(self.dir, SPEC)

    @property
    def tasks(self) -> str:
        """The folder of the tasks' files."""
        return join(self.dir, TASKS)

    @property
    def elements(self) -> str:
        """The folder of the elements' pid, exit and cancel files."""
        return join(self.dir, ELEMENTS)

    @property
    def logs(self) -> str:
        """The folder of the elements' own stdout and stderr."""
        return join(self.dir, LOGS)

    @property
    def worker_log(self) -> str:
        """Where the local backend's workers write their own stderr."""
        return join(self.dir, "worker.err")

    def path(self, name: str) -> str:
        """The file `name` (e.g. of `payload_files`) in the run directory."""
        return join(self.dir, name)

    def task(self, index: int, kind: str) -> str:
        """Task `index`'s file of `kind` (RESULT, OUT, ERR, TIMEOUT or CANCEL)."""
        return join(self.dir, TASKS, f"{index}.{kind}")

    def task_base(self, index: int) -> str:
        """Task `index`'s files without their suffix (``tasks/I``)."""
        return join(self.dir, TASKS, str(index))

    def scratch(self, element: int) -> str:
        """Where element `element`'s running task writes (add ``.out``/``.err``)."""
        return join(self.dir, TASKS, f".running-e{element}")

    def worker_scratch(self, pid: int) -> str:
        """Where local worker `pid`'s running task writes (add ``.out``/``.err``)."""
        return join(self.dir, TASKS, f".running-{pid}")

    def element(self, element: int, kind: str) -> str:
        """Element `element`'s file of `kind` (PID, EXIT or CANCEL)."""
        return join(self.dir, ELEMENTS, f"{element}.{kind}")

    def log(self, element: int, stream: str) -> str:
        """Element `element`'s own log of `stream` (OUT or ERR)."""
        return join(self.dir, LOGS, f"{element}.{stream}")

    def job_script(self, offset: int) -> str:
        """The job script of the batch part at element `offset`."""
        return join(self.dir, f"job-{offset}.sh")
