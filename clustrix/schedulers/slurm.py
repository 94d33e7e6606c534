"""Slurm: ``sbatch``/``squeue``/``sacct``/``scancel`` argv builders and parsers.

Formats are those of Slurm 22.05 as recorded on the test lab (see
``tests/data/slurm``). Facts the backend relies on:

* ``squeue -j ID`` with ONE unknown (purged) id fails: rc 1, ``slurm_load_jobs
  error: Invalid job id specified``; :func:`status_error_is_benign` says so and the
  backend treats the answer as empty. With several ids squeue filters all jobs and
  just leaves the unknown ones out (rc 0). Finished jobs stay in ``squeue -t all``
  for ``MinJobAge`` (300 s by default), without an exit code.
* A just-submitted job can be missing from sacct for about a second: absence from
  sacct right after ``sbatch`` is not "unknown job".
* ``scancel`` of an unknown id is rc 0 and silent. An array element cancelled while
  still pending (``scancel 25_50``) is dropped from the array's pending record: it
  vanishes at once from squeue, ``scontrol show job`` AND sacct, while its siblings
  stay listed (observed on 22.05). Only the last pending element, cancelled, turns the
  array's own record ``CANCELLED`` (squeue lists it under the bare array id, sacct as
  ``25_[99]``). The backend reads "missing, siblings listed, never started" as
  cancelled outside clustrix.
* Exit codes: squeue's ``exit_code`` is the raw wait status (``768`` = exit 3,
  ``9`` = killed by SIGKILL), exact while the job is listed. sacct's ``ExitCode`` is
  ``code:signal`` with the code taken modulo 128 (a batch script exiting 137 shows
  ``9:0``, one exiting 200 ``72:0``): the runner's exit-code file is the better word.
* Pass master ids for whole arrays (``--array`` lists every element of ``7``), so
  the command line does not grow with the array.
* ``--output``/``--error`` go on sbatch's command line, not in ``#SBATCH`` lines, so
  any directory works (spaces, quotes, ``$``): sbatch expands ``%`` patterns over the
  WHOLE path (also a relative one joined to the working directory), so a ``%`` in
  the directory is doubled; a backslash anywhere turns the expansion off (each job
  could not get its own file), so such a directory is refused (observed on 22.05).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from .._exceptions import SubmissionError
from .._states import JobState
from .._units import format_memory, format_time
from .base import (
    BatchResources,
    TaskStatus,
    check_job_name,
    check_log_dir,
    directive_value,
    expand_indices,
    extra_options,
    positive,
    signal_exit_code,
    unique_sorted_ids,
)
from .scheduler import Scheduler

#: Every job state of Slurm 22.05 (squeue(1) "JOB STATE CODES"), long and compact form.
#: sacct prints the long form, sometimes with a suffix ("CANCELLED by 1001").
STATE_MAP: dict[str, JobState] = {
    "BOOT_FAIL": JobState.NODE_FAIL,  # BF: a node failed to boot for the job
    "BF": JobState.NODE_FAIL,
    "CANCELLED": JobState.CANCELLED,  # CA
    "CA": JobState.CANCELLED,
    "COMPLETED": JobState.COMPLETED,  # CD
    "CD": JobState.COMPLETED,
    "CONFIGURING": JobState.QUEUED,  # CF: allocated, nodes booting; not yet running
    "CF": JobState.QUEUED,
    "COMPLETING": JobState.RUNNING,  # CG: ending; final state not known yet
    "CG": JobState.RUNNING,
    "DEADLINE": JobState.TIMEOUT,  # DL: killed on reaching its --deadline
    "DL": JobState.TIMEOUT,
    "FAILED": JobState.FAILED,  # F: non-zero exit or other failure
    "F": JobState.FAILED,
    "NODE_FAIL": JobState.NODE_FAIL,  # NF
    "NF": JobState.NODE_FAIL,
    "OUT_OF_MEMORY": JobState.OUT_OF_MEMORY,  # OOM
    "OOM": JobState.OUT_OF_MEMORY,
    "PENDING": JobState.QUEUED,  # PD
    "PD": JobState.QUEUED,
    "PREEMPTED": JobState.PREEMPTED,  # PR: final unless requeued (then PENDING again)
    "PR": JobState.PREEMPTED,
    "RUNNING": JobState.RUNNING,  # R
    "R": JobState.RUNNING,
    "RESV_DEL_HOLD": JobState.QUEUED,  # RD: held because its reservation was deleted
    "RD": JobState.QUEUED,
    "REQUEUE_FED": JobState.QUEUED,  # RF: requeued by a federation
    "RF": JobState.QUEUED,
    "REQUEUE_HOLD": JobState.QUEUED,  # RH: requeued and held
    "RH": JobState.QUEUED,
    "REQUEUED": JobState.QUEUED,  # RQ: requeued, will run again
    "RQ": JobState.QUEUED,
    "RESIZING": JobState.RUNNING,  # RS
    "RS": JobState.RUNNING,
    # RV: in a federation, this cluster's copy was revoked because a sibling cluster
    # runs the job; nothing here will ever report its outcome.
    "REVOKED": JobState.LOST,
    "RV": JobState.LOST,
    "SIGNALING": JobState.RUNNING,  # SI: being signalled
    "SI": JobState.RUNNING,
    "SPECIAL_EXIT": JobState.FAILED,  # SE: requeued held after a special exit value
    "SE": JobState.FAILED,
    "STAGE_OUT": JobState.RUNNING,  # SO: staging out data
    "SO": JobState.RUNNING,
    "STOPPED": JobState.RUNNING,  # ST: stopped with SIGSTOP, keeps its allocation
    "ST": JobState.RUNNING,
    "SUSPENDED": JobState.RUNNING,  # S: suspended, will resume
    "S": JobState.RUNNING,
    "TIMEOUT": JobState.TIMEOUT,  # TO: walltime reached
    "TO": JobState.TIMEOUT,
}

_SEP = "|"
_TASK = re.compile(r"^(\d+)_\[([^\]]*)\]$")
#: sbatch's words for a controller it could not hear back from (slurm_strerror of
#: SLURM_PROTOCOL_SOCKET_IMPL_TIMEOUT, SLURMCTLD_COMMUNICATIONS_*, SLURM_PROTOCOL_*).
_TRANSIENT = (
    "Socket timed out on send/recv operation",
    "Unable to contact slurm controller",
    "Zero Bytes were transmitted or received",
    "Communication connection failure",
    "Communication send failure",
    "Communication receive failure",
)
_MAX_ARRAY = re.compile(r"^\s*MaxArraySize\s*=\s*(\d+)", re.MULTILINE)


class Slurm(Scheduler):
    """The :class:`~clustrix.schedulers.base.Scheduler` of Slurm."""

    NAME = "slurm"
    TEMPLATE = "slurm.sh.j2"
    DIRECTIVE_PREFIX = "#SBATCH"
    STATE_MAP = STATE_MAP
    element_index_expr = "${SLURM_ARRAY_TASK_ID:-0}"

    def directives(self, res: BatchResources) -> list[str]:
        """``#SBATCH`` lines: name, CPUs, memory per node, time, GPUs, array, extra (the
        log files are on sbatch's command line, see :func:`submit_argv`)."""
        name = check_job_name(res.job_name)
        _log_patterns(res)  # refuse an impossible log_dir when the script is rendered
        lines = [f"--job-name={name}"]
        if positive("nodes", res.nodes) is not None:
            lines.append(f"--nodes={res.nodes}")
        lines.append(f"--cpus-per-task={positive('cores', res.cores)}")
        if positive("memory", res.memory) is not None:
            lines.append(f"--mem={format_memory(res.memory or 0)}")
        if positive("time", res.time) is not None:
            lines.append(f"--time={format_time(res.time or 0)}")
        if res.gpus:
            lines.append(f"--gpus={positive('gpus', res.gpus)}")
        if res.queue is not None:
            lines.append(f"--partition={directive_value('queue (partition)', res.queue)}")
        if res.account is not None:
            lines.append(f"--account={directive_value('account', res.account)}")
        if res.array is not None:
            spec = f"0-{res.array.count - 1}"
            if res.array.throttle is not None:
                spec += f"%{res.array.throttle}"
            lines.append(f"--array={spec}")
        if res.hold:
            lines.append("--hold")
        for key, value in extra_options(res.extra):
            flag = f"-{key}" if len(key) == 1 else f"--{key}"
            sep = " " if len(key) == 1 else "="
            lines.append(flag if value is None else f"{flag}{sep}{value}")
        return [f"{self.DIRECTIVE_PREFIX} {line}" for line in lines]

    def submit_argv(self, script_path: str, res: BatchResources) -> list[str]:
        """``sbatch --parsable --output=.. --error=.. SCRIPT`` (the rest is in the directives)."""
        out, err = _log_patterns(res)
        return ["sbatch", "--parsable", f"--output={out}", f"--error={err}", script_path]

    def parse_submit(self, stdout: str) -> str:
        """The job id from ``sbatch --parsable`` output (``"7"`` or ``"7;cluster"``)."""
        for line in stdout.splitlines():
            job_id = line.strip().split(";", 1)[0]
            if job_id.isdigit():
                return job_id
        raise SubmissionError(f"sbatch printed no job id: {stdout.strip()!r}", stderr=stdout)

    def array_element_id(self, master_id: str, element: int) -> str:
        """``12345_7`` for element 7 of an array."""
        return f"{master_id}_{element}"

    def status_argv(self, job_ids: Sequence[str]) -> list[str]:
        """One ``squeue`` for all ids (master ids bring every element): one line per task."""
        ids = ",".join(unique_sorted_ids(job_ids))
        return [
            "squeue",
            "--noheader",
            "--array",
            "--states=all",
            f"--jobs={ids}",
            # JobArrayID, State, Reason, then the raw exit status; "|" ends each field
            # (no width given: nothing is truncated or padded).
            f"--Format=JobArrayID:{_SEP},State:{_SEP},Reason:{_SEP},exit_code:",
        ]

    def status_error_is_benign(self, returncode: int, stderr: str) -> bool:
        """squeue's rc 1 for a single unknown id means: that job is gone (empty answer)."""
        return returncode == 1 and "Invalid job id specified" in stderr

    def parse_status(self, stdout: str) -> dict[str, TaskStatus]:
        """Parse ``id|STATE|reason|wait-status`` lines (the last field optional);
        collapsed ranges like ``7_[6-99%4]`` expanded."""
        result: dict[str, TaskStatus] = {}
        for line in stdout.splitlines():
            fields = line.strip().split(_SEP)
            if len(fields) < 2 or not fields[0]:
                continue
            reason = fields[2].strip() if len(fields) > 2 else ""
            code = wait_status_exit_code(fields[3]) if len(fields) > 3 else None
            state = STATE_MAP.get(fields[1].strip())
            if state is None or not state.final:
                code = None  # a live job's field is 0: no exit status yet
            status = _status(fields[1], code, None if reason in ("", "None") else reason)
            _store(result, fields[0], status)
        return result

    def accounting_argv(self, job_ids: Sequence[str]) -> list[str]:
        """One ``sacct`` for all ids: allocation lines only, ``|``-separated, no header."""
        ids = ",".join(unique_sorted_ids(job_ids))
        return [
            "sacct",
            "--noheader",
            "--parsable2",
            "--allocations",
            f"--jobs={ids}",
            "--format=JobID,State,ExitCode",
        ]

    def parse_accounting(self, stdout: str) -> dict[str, TaskStatus]:
        """Parse ``JobID|State|ExitCode`` lines (``CANCELLED by 1001``, ``0:9`` handled).

        ``ExitCode`` is ``code:signal``; the code is modulo 128 (see the module docstring),
        so ``9:0`` may be a script that exited 137: the runner's exit-code file decides.
        """
        result: dict[str, TaskStatus] = {}
        for line in stdout.splitlines():
            fields = line.strip().split(_SEP)
            if len(fields) < 3 or not fields[0] or "." in fields[0]:
                continue  # steps (7.batch) only appear without --allocations
            _store(result, fields[0], _status(fields[1], _exit_code(fields[2]), None))
        return result

    def cancel_argv(self, job_ids: Sequence[str]) -> list[str]:
        """``scancel`` exactly these jobs or elements (``7_3`` cancels one element)."""
        return ["scancel", *unique_sorted_ids(job_ids)]

    def lookup_argv(self, job_name: str) -> list[str]:
        """The caller's jobs named ``job_name`` that slurmctld still knows, by array id."""
        return [
            "squeue",
            "--noheader",
            "--me",
            "--states=all",
            f"--name={check_job_name(job_name)}",
            "--format=%F",
        ]

    def parse_lookup(self, stdout: str) -> list[str]:
        """Master job ids, one per line of ``squeue --format=%F``."""
        return unique_sorted_ids([line.strip() for line in stdout.splitlines() if line.strip()])

    def submit_error_is_transient(self, stderr: str) -> bool:
        """sbatch gave up waiting for slurmctld's answer, which may have recorded the
        job all the same (a busy or restarting controller)."""
        return any(text in stderr for text in _TRANSIENT)

    def array_limit_argv(self) -> list[str]:
        """``scontrol show config`` (for MaxArraySize)."""
        return ["scontrol", "show", "config"]

    def parse_array_limit(self, stdout: str) -> int:
        """``MaxArraySize``: array indices must stay below it (so at most this many elements)."""
        match = _MAX_ARRAY.search(stdout)
        if not match:
            raise ValueError("scontrol show config printed no MaxArraySize")
        return int(match.group(1))


_LOG_DIR_REFUSED = {
    "\\": "a backslash in an --output/--error path turns off sbatch's %A/%a/%j "
    "substitution, so each job could not get its own log file",
}


def _log_patterns(res: BatchResources) -> tuple[str, str]:
    """``--output``/``--error`` patterns: the directory's own ``%`` doubled."""
    log_dir = check_log_dir("Slurm", res.log_dir, _LOG_DIR_REFUSED).replace("%", "%%")
    stem = f"{log_dir}/{check_job_name(res.job_name)}."
    stem += "%A_%a" if res.array is not None else "%j"
    return f"{stem}.out", f"{stem}.err"


def wait_status_exit_code(text: str) -> int | None:
    """Shell-style exit code from a raw wait status (squeue's ``exit_code``):
    ``768`` -> 3, ``9`` (killed by SIGKILL) -> 137."""
    text = text.strip()
    if not text.isdigit():
        return None
    status = int(text)
    return signal_exit_code((status >> 8) & 0xFF, status & 0x7F)


def _status(text: str, exit_code: int | None, reason: str | None) -> TaskStatus:
    raw = text.strip()
    code = raw.split(" ", 1)[0].rstrip("+")
    state = STATE_MAP.get(code)
    if state is None:
        # A state newer than this table: keep polling rather than guess an outcome.
        return TaskStatus(JobState.RUNNING, reason=f"unknown Slurm state {raw!r}", raw=raw)
    if state is JobState.FAILED and exit_code is not None and exit_code > 128 and reason is None:
        reason = f"killed by signal {exit_code - 128}"
    if state is JobState.CANCELLED:
        # squeue's reason of a cancelled job is stale (why it was waiting); sacct
        # says who: "CANCELLED by 1001".
        by = re.search(r"\bby (\d+)", raw)
        reason = f"by uid {by.group(1)}" if by else None
    return TaskStatus(state, reason=reason, exit_code=exit_code, raw=raw)


def _exit_code(text: str) -> int | None:
    code, _, sig = text.strip().partition(":")
    if not code.isdigit():
        return None
    return signal_exit_code(int(code), int(sig) if sig.isdigit() else 0)


def _store(result: dict[str, TaskStatus], job_id: str, status: TaskStatus) -> None:
    """Record one line; a collapsed range (``7_[6-99%4]``) never overrides an element
    listed on its own line (squeue and sacct can list a task that just started twice)."""
    match = _TASK.match(job_id.strip())
    if not match:
        result[job_id.strip()] = status
        return
    for index in expand_indices(match.group(2)):
        result.setdefault(f"{match.group(1)}_{index}", status)


SLURM = Slurm()
