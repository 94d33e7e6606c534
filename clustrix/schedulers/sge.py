"""Grid Engine (Son of Grid Engine 8.1.9): ``qsub``/``qstat``/``qacct``/``qdel``.

Formats are those recorded on the test lab (``tests/data/sge``). Facts the backend
relies on:

* Array task ids start at 1: element ``e`` (0-based) of job ``5`` is ``5.{e+1}``.
* ``qstat -xml`` lists only the calling user's live jobs, never finished ones, so
  an id missing from it has finished (or never existed): ask ``qacct``. With the
  lab's ``accounting_flush_time=0`` the record is there at once; with Grid Engine's
  default it can take ~15 s, so retry for a while before calling a job lost.
* ``qdel`` of an unknown id: rc 1, ``denied: job "N" does not exist`` (benign; the
  other ids are still deleted). ``qdel 14.9`` deletes that task only; a task deleted
  while pending leaves no qacct record (observed), like Slurm's. It does appear in
  qmaster's finished-jobs list (``qstat -s z``, state ``z``, the last
  ``finished_jobs`` jobs of the global configuration, 100 by default), as does every
  finished task: :func:`status_argv` asks for it in the same command, and such
  entries are ``outcome_unknown`` (qacct and the runner's files say how they ended).
* ``qacct`` on a qdel'ed running job: ``failed 100 : assumedly after job`` with
  ``exit_status 137``; that is CANCELLED unless the job ran into its ``h_rt``.
* The log directory goes on qsub's command line (``-wd``, one argument, any
  characters) and the ``#$ -o``/``-e`` names are relative to it, so no directive
  carries a path (``-o`` would also split at ``,`` and ``:``). Grid Engine expands its
  pseudo variables (``$HOME``, ``$USER``, ...) anywhere in those paths, also as a
  prefix (``$USERx``), and cannot enter a working directory whose name holds a
  newline (``failed 28 : changing into working directory``): such directories are
  refused (observed on the lab).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar

from .._exceptions import ConfigError, SubmissionError
from .._states import JobState
from .base import (
    BatchResources,
    TaskStatus,
    check_job_name,
    check_log_dir,
    clock,
    dash_options,
    directive_value,
    expand_indices,
    positive,
    queue_and_account,
    unique_sorted_ids,
)
from .scheduler import Scheduler
from .sge_qacct import parse_qacct, record_status

#: Every job state of sge_status(5) (Grid Engine 8.1.9) as qstat prints it.
STATE_MAP: dict[str, JobState] = {
    "qw": JobState.QUEUED,  # pending
    "Rq": JobState.QUEUED,  # pending, re-queued
    "hqw": JobState.QUEUED,  # pending, user and/or system hold
    "hRwq": JobState.QUEUED,  # pending, hold, re-queued
    "r": JobState.RUNNING,  # running
    "hr": JobState.RUNNING,  # running, hold (applies to a later re-run)
    "t": JobState.RUNNING,  # transferring to the execution host
    "Rr": JobState.RUNNING,  # running again after a re-run
    "Rt": JobState.RUNNING,  # transferring for a re-run
    "s": JobState.RUNNING,  # suspended by qmod (keeps its slot, will resume)
    "ts": JobState.RUNNING,
    "S": JobState.RUNNING,  # its queue is suspended
    "tS": JobState.RUNNING,
    "T": JobState.RUNNING,  # its queue crossed a suspend threshold
    "tT": JobState.RUNNING,
    "Rs": JobState.RUNNING,  # suspended, re-run
    "Rts": JobState.RUNNING,
    "RS": JobState.RUNNING,
    "RtS": JobState.RUNNING,
    "RT": JobState.RUNNING,
    "RtT": JobState.RUNNING,
    "Eqw": JobState.FAILED,  # pending in error: will never start (reason: qstat -j)
    "Ehqw": JobState.FAILED,
    "EhRqw": JobState.FAILED,
    # Deletion requested (qdel) but the job still runs: not final until it leaves
    # qstat; qacct then says how it ended.
    "dr": JobState.RUNNING,
    "dt": JobState.RUNNING,
    "dRr": JobState.RUNNING,
    "dRt": JobState.RUNNING,
    "ds": JobState.RUNNING,
    "dS": JobState.RUNNING,
    "dT": JobState.RUNNING,
    "dRs": JobState.RUNNING,
    "dRS": JobState.RUNNING,
    "dRT": JobState.RUNNING,
    "z": JobState.COMPLETED,  # finished (qstat -s z); how it ended is in qacct
}

_REASONS = {
    "E": "error state; `qstat -j {job}` gives the reason",
    "h": "held",
    "s": "suspended",
    "S": "queue suspended",
    "T": "suspend threshold",
    "d": "being deleted",
}
#: qsub's words for a qmaster it could not hear back from (commlib / gdi errors).
_TRANSIENT = (
    "failed receiving gdi request response",
    "unable to contact qmaster",
    "got send timeout",
    "got syncron message receive timeout",
)
_MEMORY_UNITS = {"K": 1024, "M": 1024**2, "G": 1024**3}


@dataclass(frozen=True)
class GridEngine(Scheduler):
    """The :class:`~clustrix.schedulers.base.Scheduler` of Grid Engine; ``pe`` is the
    parallel environment a task of several cores asks for (``-pe PE CORES``)."""

    pe: str = "smp"
    NAME: ClassVar[str] = "sge"
    TEMPLATE: ClassVar[str] = "sge.sh.j2"
    DIRECTIVE_PREFIX: ClassVar[str] = "#$"
    STATE_MAP: ClassVar[Mapping[str, JobState]] = STATE_MAP
    #: SGE_TASK_ID is 1-based, and the word "undefined" outside arrays.
    element_index_expr: ClassVar[str] = (
        '$(case "${SGE_TASK_ID:-undefined}" in (undefined) echo 0 ;; '
        '(*) echo "$((SGE_TASK_ID - 1))" ;; esac)'
    )

    def directives(self, res: BatchResources) -> list[str]:
        """``#$`` lines: name, shell, logs, PE slots, h_vmem per slot, h_rt, array, extra."""
        name = check_job_name(res.job_name)
        _log_dir(res)  # the -o/-e names are relative to it: qsub -wd LOG_DIR (submit_argv)
        stem = f"{name}.$JOB_ID" + (".$TASK_ID" if res.array is not None else "")
        lines = [f"-N {name}", "-S /bin/bash", f"-o {stem}.out", f"-e {stem}.err"]
        cores = positive("cores", res.cores) or 1
        if positive("nodes", res.nodes) not in (None, 1):
            raise ConfigError("Grid Engine runs a clustrix task on one host: nodes must be 1")
        if res.gpus:
            raise ConfigError(
                "Grid Engine has no standard GPU request; pass your site's resource through "
                "extra, e.g. extra={'l': 'gpu=1'}"
            )
        pe = directive_value("sge_pe", self.pe)
        if cores > 1:
            lines.append(f"-pe {pe} {cores}")
        if positive("memory", res.memory) is not None:
            lines.append(f"-l h_vmem={_memory(-(-(res.memory or 0) // cores))}")
        walltime = clock("time", res.time, pad_hours=False)
        lines += [f"-l h_rt={walltime}"] if walltime else []
        lines += queue_and_account(res)
        if res.array is not None:
            lines.append(f"-t 1-{res.array.count}")
            if res.array.throttle is not None:
                lines.append(f"-tc {res.array.throttle}")
        if res.hold:
            lines.append("-h")
        lines += dash_options(res)
        return [f"{self.DIRECTIVE_PREFIX} {line}" for line in lines]

    def submit_argv(self, script_path: str, res: BatchResources) -> list[str]:
        """``qsub -terse -wd LOG_DIR SCRIPT``: prints ``4``, or ``5.1-10:1`` for an array.

        The job starts in the log directory, which makes the relative ``#$ -o``/``-e``
        names land there; the job script then enters its run directory itself.
        """
        return ["qsub", "-terse", "-wd", _log_dir(res), script_path]

    def parse_submit(self, stdout: str) -> str:
        """The job number: ``5.1-10:1`` -> ``5``."""
        for line in stdout.splitlines():
            match = re.match(r"^\s*(\d+)(?:\.|\s*$)", line)
            if match:
                return match.group(1)
        raise SubmissionError(f"qsub printed no job id: {stdout.strip()!r}", stderr=stdout)

    def array_element_id(self, master_id: str, element: int) -> str:
        """``5.8`` for element 7 (SGE task ids start at 1)."""
        return f"{master_id}.{element + 1}"

    def status_argv(self, job_ids: Sequence[str]) -> list[str]:
        """``qstat -xml -s prsz``: all of the caller's live jobs and the finished-jobs
        list (qstat cannot filter a list of ids)."""
        return ["qstat", "-xml", "-s", "prsz"]

    def parse_status(self, stdout: str) -> dict[str, TaskStatus]:
        """Every ``job_list`` of ``qstat -xml``; pending ``<tasks>7-10:1</tasks>`` expanded.

        Finished (``z``) entries are ``outcome_unknown`` and never override a live entry.
        """
        if not stdout.strip():
            return {}
        root = ET.fromstring(stdout)  # noqa: S314 - qstat's own output, no entities
        result: dict[str, TaskStatus] = {}
        ranks: dict[str, int] = {}
        for job in root.iter("job_list"):
            number = (job.findtext("JB_job_number") or "").strip()
            raw = (job.findtext("state") or "").strip()
            if not number or not raw:
                continue
            status = _status(raw, number)
            tasks = (job.findtext("tasks") or "").strip()
            if raw == "z":
                status = TaskStatus(status.state, "finished", raw=raw, outcome_unknown=True)
            ranged = bool(tasks) and not tasks.isdigit()
            keys = [f"{number}.{i}" for i in expand_indices(tasks)] if ranged else []
            rank = _rank(status, ranged)
            for key in keys or [f"{number}.{tasks}" if tasks else number]:
                held = ranks.get(key, -1)
                if rank > held or rank == held == 2:
                    result[key], ranks[key] = status, rank
        return result

    def accounting_argv(self, job_ids: Sequence[str]) -> list[str]:
        """``qacct -j`` for each master id, in one shell command (qacct takes one id)."""
        masters = unique_sorted_ids([job_id.split(".", 1)[0] for job_id in job_ids])
        script = 'for j in "$@"; do qacct -j "$j"; done; exit 0'
        return ["sh", "-c", script, "sh", *masters]

    def parse_accounting(self, stdout: str) -> dict[str, TaskStatus]:
        """One status per ``qacct`` record (the last one wins for re-run tasks)."""
        result: dict[str, TaskStatus] = {}
        for record in parse_qacct(stdout):
            if "jobnumber" in record and "failed" in record:
                task = record.get("taskid", "undefined")
                job_id = record["jobnumber"] + (f".{task}" if task.isdigit() else "")
                result[job_id] = record_status(record)
        return result

    def submit_error_is_transient(self, stderr: str) -> bool:
        """qsub lost qmaster's answer (a busy or restarting qmaster): the job may be
        recorded all the same."""
        return any(text in stderr for text in _TRANSIENT)

    def cancel_argv(self, job_ids: Sequence[str]) -> list[str]:
        """``qdel`` exactly these jobs or tasks (``5.8`` deletes task 8 of job 5 only)."""
        return ["qdel", *unique_sorted_ids(job_ids)]

    def lookup_argv(self, job_name: str) -> list[str]:
        """Live (``qstat -j NAME``) and finished (``qacct -j NAME``) jobs with this name."""
        name = check_job_name(job_name)
        if name.isdigit():
            raise ConfigError(f"job name {name!r} is all digits, which Grid Engine reads as an id")
        script = 'qstat -j "$1" 2>/dev/null; qacct -j "$1" 2>/dev/null; exit 0'
        return ["sh", "-c", script, "sh", name]

    def parse_lookup(self, stdout: str) -> list[str]:
        """Job numbers from ``job_number:`` (qstat -j) and ``jobnumber`` (qacct) lines."""
        found = re.findall(r"^(?:job_number:|jobnumber)\s+(\d+)", stdout, flags=re.MULTILINE)
        return unique_sorted_ids(found)


_PSEUDO = "Grid Engine replaces it (a pseudo variable of qsub -o/-e/-wd paths) by a value"
_LOG_DIR_REFUSED = {
    **{f"${var}": _PSEUDO for var in ("HOME", "USER", "JOB_ID", "JOB_NAME", "HOSTNAME", "TASK_ID")},
    "\n": "Grid Engine cannot run a job in a directory whose name holds a newline",
    "\r": "Grid Engine cannot run a job in a directory whose name holds a carriage return",
}


def _log_dir(res: BatchResources) -> str:
    return check_log_dir("Grid Engine", res.log_dir, _LOG_DIR_REFUSED)


def _memory(size: int) -> str:
    for unit in ("G", "M", "K"):
        if size % _MEMORY_UNITS[unit] == 0:
            return f"{size // _MEMORY_UNITS[unit]}{unit}"
    return f"{-(-size // 1024)}K"


def _rank(status: TaskStatus, ranged: bool) -> int:
    """Which entry wins for one task: a live task listed alone (2) beats a pending
    range (1), which beats the finished-jobs list (0)."""
    return 0 if status.outcome_unknown else 1 if ranged else 2


def _status(raw: str, number: str) -> TaskStatus:
    state = STATE_MAP.get(raw)
    if state is None:  # an unlisted combination of letters: classify by letter
        state = (
            JobState.FAILED
            if "E" in raw
            else JobState.QUEUED
            if "q" in raw or "w" in raw
            else JobState.COMPLETED
            if raw == "z"
            else JobState.RUNNING
        )
    reasons = [text.format(job=number) for letter, text in _REASONS.items() if letter in raw]
    return TaskStatus(state, reason="; ".join(reasons) or None, raw=raw)
