"""PBS in two dialects: PBS Pro/OpenPBS (``pro``) and Torque (``torque``).

* ``pro``: ``-l select=N:ncpus=C:mem=..:ngpus=G``, arrays ``-J 0-N%K`` (PBS Pro needs
  at least two subjobs, so a one-element array is submitted as a plain job), ids
  ``123.server`` / ``123[].server`` / ``123[7].server``, status and accounting
  from ``qstat -x -f -F json`` (finished jobs stay in the history).
* ``torque``: ``-l nodes=N:ppn=C[:gpus=G]``, arrays ``-t 0-N%K``, ids
  ``123.server`` / ``123[].server`` / ``123[7].server``, status from ``qstat -f``;
  there is no accounting command for users (``accounting_argv`` is None: settle a
  job that left ``qstat`` from the runner's exit-code file).

Slurm's Torque wrappers (``slurm-wlm-torque``, the lab's PBS flavour) are the
``torque`` dialect with quirks the backend must know (see LAB.md and
``tests/data/pbs``):

* ``qsub`` prints the bare Slurm id (``111``); ``-o``/``-e``/``-j``/``-t`` are
  honoured only on the command line, which is why :func:`submit_argv` puts them there.
  It pastes its arguments into one shell command line for sbatch (perl backticks), so
  :func:`submit_argv` gives it no path of the user's: it runs qsub in the log
  directory with names relative to it. sbatch expands ``%`` patterns over the whole
  log path and fails on a backslash in that directory, so the backend refuses those
  (:func:`check_wrapper_log_dir`).
* ``qstat -f IDS`` prints the known ids and skips unknown ones (rc 0); when none is
  known it prints nothing and exits 153 (:func:`status_error_is_benign`).
  ``qdel IDS`` cancels the known ids and exits 1 if any id is unknown.
* A held job (``qsub -h``) shows as ``Q``: the wrappers do not report holds.
* ``job_state`` is ``C`` for every ended job (completed, failed, cancelled, timed
  out) with no exit status, and ``U`` for states it cannot name: the exit-code file
  decides how a ``C`` job ended.
* Array tasks appear under unpredictable raw Slurm ids (task 5 of array 155 ran as
  155, task 0 as 156), and ``qdel 155_3`` cancels the WHOLE array (the perl wrapper
  reads the id as the number 155; both observed on the lab). So
  one element of an array can be neither observed nor cancelled: do not submit
  arrays to the wrappers. :func:`probe_argv`/:func:`parse_probe` tell them apart
  from a real Torque or PBS Pro, and :func:`element_job_id` refuses bare array ids.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Literal

from .._exceptions import ConfigError, SubmissionError
from .._states import JobState
from .base import (
    BatchResources,
    PbsDialect,
    TaskStatus,
    check_job_name,
    check_log_dir,
    directive_value,
    extra_options,
    positive,
    unique_sorted_ids,
)
from .pbs_output import STATE_MAP, parse_qstat

__all__ = ["STATE_MAP", "PbsScheduler", "parse_qstat"]

NAME = "pbs"
TEMPLATE = "pbs.sh.j2"
DIRECTIVE_PREFIX = "#PBS"
#: PBS_ARRAY_INDEX: PBS Pro and the Slurm wrappers (empty outside arrays); PBS_ARRAYID: Torque.
element_index_expr = "${PBS_ARRAY_INDEX:-${PBS_ARRAYID:-0}}"

PbsFlavour = Literal["pro", "torque", "slurm-wrappers"]
#: Which dialect each flavour speaks, and whether one array element can be addressed.
FLAVOUR_DIALECT: dict[PbsFlavour, PbsDialect] = {
    "pro": "pro",
    "torque": "torque",
    "slurm-wrappers": "torque",
}
FLAVOUR_ARRAYS: dict[PbsFlavour, bool] = {"pro": True, "torque": True, "slurm-wrappers": False}

_JOB_ID = re.compile(r"^(\d+)(\[\])?(\.\S+)?$")


def _uses_array(res: BatchResources) -> bool:
    return res.array is not None and (res.pbs_dialect != "pro" or res.array.count > 1)


def directives(res: BatchResources) -> list[str]:
    """``#PBS`` lines: name and resources (logs, array and hold go on the command line)."""
    name = check_job_name(res.job_name)
    cores = positive("cores", res.cores) or 1
    nodes = positive("nodes", res.nodes) or 1
    gpus = positive("gpus", res.gpus) if res.gpus else None
    memory = positive("memory", res.memory)
    lines = [f"-N {name}"]
    if res.pbs_dialect == "pro":
        chunk = f"select={nodes}:ncpus={cores}"
        chunk += f":mem={_memory(memory)}" if memory else ""
        chunk += f":ngpus={gpus}" if gpus else ""
        lines.append(f"-l {chunk}")
        if nodes > 1:
            lines.append("-l place=scatter")
    elif res.pbs_dialect == "torque":
        lines.append(f"-l nodes={nodes}:ppn={cores}" + (f":gpus={gpus}" if gpus else ""))
        if memory:
            lines.append(f"-l mem={_memory(memory)}")
    else:
        raise ConfigError(f"pbs_dialect must be 'pro' or 'torque', got {res.pbs_dialect!r}")
    if positive("time", res.time) is not None:
        hours, rest = divmod(res.time or 0, 3600)
        lines.append(f"-l walltime={hours:02d}:{rest // 60:02d}:{rest % 60:02d}")
    if res.queue is not None:
        lines.append(f"-q {directive_value('queue', res.queue)}")
    if res.account is not None:
        lines.append(f"-A {directive_value('account', res.account)}")
    lines += [
        f"-{key}" if value is None else f"-{key} {value}" for key, value in extra_options(res.extra)
    ]
    return [f"{DIRECTIVE_PREFIX} {line}" for line in lines]


def _memory(size: int | None) -> str:
    """PBS sizes: lowercase units, powers of 1024 (``4gb``, ``1536mb``)."""
    size = size or 0
    for unit, factor in (("tb", 1024**4), ("gb", 1024**3), ("mb", 1024**2), ("kb", 1024)):
        if size % factor == 0:
            return f"{size // factor}{unit}"
    return f"{-(-size // 1024)}kb"


#: What Slurm's Torque wrappers cannot take in the directory qsub runs in (observed).
WRAPPER_LOG_DIR_REFUSED = {
    "%": "the wrappers hand the log paths to sbatch, which expands '%' patterns over the "
    "whole path",
    "\\": "sbatch, which the wrappers call, cannot write a log file below a directory "
    "whose name holds a backslash",
}
_PLAIN_ARG = re.compile(r"^[A-Za-z0-9_.+/-]+$")


def check_wrapper_log_dir(log_dir: str) -> str:
    """``log_dir`` if Slurm's Torque wrappers can write logs there, else ConfigError."""
    return check_log_dir("PBS (Slurm's Torque wrappers)", log_dir, WRAPPER_LOG_DIR_REFUSED)


def _log_names(res: BatchResources) -> tuple[str, str]:
    """The -o/-e file names, relative to the log directory qsub runs in."""
    stem = check_job_name(res.job_name)
    if _uses_array(res) and res.pbs_dialect == "pro":
        stem += ".^array_index^"  # PBS Pro substitutes the subjob index
    return f"{stem}.out", f"{stem}.err"


def log_paths(res: BatchResources, master_id: str, element: int) -> tuple[str, str]:
    """The files PBS writes for this element (Torque appends ``-INDEX`` for subjobs)."""
    stem = f"{res.log_dir.rstrip('/')}/{res.job_name}"
    if not _uses_array(res):
        return f"{stem}.out", f"{stem}.err"
    if res.pbs_dialect == "pro":
        return f"{stem}.{element}.out", f"{stem}.{element}.err"
    return f"{stem}.out-{element}", f"{stem}.err-{element}"


def submit_argv(script_path: str, res: BatchResources) -> list[str]:
    """``cd LOG_DIR && qsub -o OUT -e ERR [-J|-t 0-N%K] [-h] SCRIPT`` (options the
    wrappers honour), every name relative to the log directory: Torque and PBS Pro
    resolve a relative -o/-e against qsub's working directory, and the wrappers (which
    re-read their arguments with a shell) see no text of the user's."""
    log_dir = check_log_dir("PBS", res.log_dir)
    if not script_path.startswith("/"):
        raise ConfigError(f"the job script path must be absolute, got {script_path!r}")
    script = posixpath.relpath(script_path, log_dir)
    if not _PLAIN_ARG.match(script):
        raise ConfigError(
            f"the job script {script_path!r} must lie beside the log directory {log_dir!r} "
            "(Slurm's Torque wrappers pass qsub's arguments through a shell)"
        )
    out, err = _log_names(res)
    argv = ["qsub", "-o", out, "-e", err]
    if _uses_array(res) and res.array is not None:
        spec = f"0-{res.array.count - 1}"
        spec += f"%{res.array.throttle}" if res.array.throttle is not None else ""
        argv += ["-J" if res.pbs_dialect == "pro" else "-t", spec]
    if res.hold:
        argv.append("-h")
    return ["sh", "-c", 'cd "$1" && shift && exec "$@"', "sh", log_dir, *argv, script]


def parse_submit(stdout: str) -> str:
    """The job id as printed: ``123.server``, ``123[].server``, or the wrappers' ``111``."""
    for line in stdout.splitlines():
        if _JOB_ID.match(line.strip()):
            return line.strip()
    raise SubmissionError(f"qsub printed no job id: {stdout.strip()!r}", stderr=stdout)


def element_job_id(master_id: str, element: int, res: BatchResources) -> str:
    """``123[7].server`` for element 7; the master id without an array.

    Raises ConfigError for an array id without ``[]`` (Slurm's Torque wrappers print
    ``113``): their elements cannot be addressed, see the module docstring.
    """
    if not _uses_array(res) or res.array is None:
        return master_id
    if not 0 <= element < res.array.count:
        raise ConfigError(f"element {element} is outside the array of {res.array.count}")
    if "[]" not in master_id:
        raise ConfigError(
            f"array job {master_id!r} has no '[]' in its id, as with Slurm's Torque "
            "wrappers, whose qstat/qdel cannot address one element: submit one job per "
            "element there (see clustrix.schedulers.pbs.parse_probe)"
        )
    return master_id.replace("[]", f"[{element}]", 1)


def status_argv(job_ids: Sequence[str], dialect: PbsDialect = "torque") -> list[str]:
    """``qstat -x -f -F json -t IDS`` (pro) or ``qstat -f [-t] IDS`` (torque)."""
    ids = unique_sorted_ids(job_ids)
    if dialect == "pro":
        return ["qstat", "-x", "-f", "-F", "json", "-t", *ids]
    # -t lists Torque's subjobs; the wrappers refuse it, but they never see array ids.
    return ["qstat", "-f", *(["-t"] if any("[" in i for i in ids) else []), *ids]


def status_error_is_benign(returncode: int, stderr: str) -> bool:
    """rc 153 (PBSE_UNKJOBID & 0xff): some ids are unknown; stdout has the others."""
    return returncode == 153 or "Unknown Job Id" in stderr


def parse_status(stdout: str) -> dict[str, TaskStatus]:
    """Parse ``qstat -f`` text or ``qstat -f -F json`` (told apart by the first char)."""
    return parse_qstat(stdout)


def accounting_argv(job_ids: Sequence[str], dialect: PbsDialect = "torque") -> list[str] | None:
    """PBS Pro keeps finished jobs in ``qstat -x``; Torque has nothing for users (None)."""
    return status_argv(job_ids, "pro") if dialect == "pro" else None


def parse_accounting(stdout: str) -> dict[str, TaskStatus]:
    """Same format as :func:`parse_status`."""
    return parse_qstat(stdout)


def cancel_argv(job_ids: Sequence[str]) -> list[str]:
    """``qdel`` exactly these jobs or subjobs (``123[7].server`` is one subjob)."""
    return ["qdel", *unique_sorted_ids(job_ids)]


def lookup_argv(job_name: str, dialect: PbsDialect = "torque") -> list[str]:
    """``qselect -x -N NAME`` (pro); Torque and the wrappers (no qselect): ``qstat -f`` + awk."""
    name = check_job_name(job_name)
    if dialect == "pro":
        return ["qselect", "-x", "-N", name]
    script = (
        'qstat -f 2>/dev/null | awk -v name="$1" '
        "'/^Job Id:/ {id = $3} $1 == \"Job_Name\" && $3 == name {print id}'; exit 0"
    )
    return ["sh", "-c", script, "sh", name]


def parse_lookup(stdout: str) -> list[str]:
    """Job ids, one per line."""
    return unique_sorted_ids([line.strip() for line in stdout.splitlines() if line.strip()])


def probe_argv() -> list[str]:
    """``qstat --version``, whose answer tells PBS Pro, Torque and the wrappers apart."""
    return ["sh", "-c", "qstat --version 2>&1; exit 0"]


def parse_probe(output: str) -> PbsFlavour:
    """``pbs_version = 2022.1`` -> pro; ``Version: 6.1.3`` -> torque; the perl
    wrappers' ``Unknown option: version`` -> slurm-wrappers."""
    text = output.lower()
    if "pbs_version" in text:
        return "pro"
    if "unknown option" in text:
        return "slurm-wrappers"
    if re.search(r"^\s*version:?\s*\d", text, re.MULTILINE):
        return "torque"
    raise ValueError(f"qstat --version answered something unknown: {output.strip()[:200]!r}")


@dataclass(frozen=True)
class PbsScheduler:
    """The :class:`~clustrix.schedulers.base.Scheduler` of one PBS dialect."""

    dialect: PbsDialect
    NAME: ClassVar[str] = NAME
    TEMPLATE: ClassVar[str] = TEMPLATE
    DIRECTIVE_PREFIX: ClassVar[str] = DIRECTIVE_PREFIX
    STATE_MAP: ClassVar[dict[str, JobState]] = STATE_MAP
    element_index_expr: ClassVar[str] = element_index_expr

    def _res(self, res: BatchResources) -> BatchResources:
        if res.pbs_dialect != self.dialect:
            raise ConfigError(
                f"resources say pbs_dialect={res.pbs_dialect!r}, not {self.dialect!r}"
            )
        return res

    def directives(self, res: BatchResources) -> list[str]:
        return directives(self._res(res))

    def submit_argv(self, script_path: str, res: BatchResources) -> list[str]:
        return submit_argv(script_path, self._res(res))

    def parse_submit(self, stdout: str) -> str:
        return parse_submit(stdout)

    def element_job_id(self, master_id: str, element: int, res: BatchResources) -> str:
        return element_job_id(master_id, element, self._res(res))

    def log_paths(self, res: BatchResources, master_id: str, element: int) -> tuple[str, str]:
        return log_paths(self._res(res), master_id, element)

    def status_argv(self, job_ids: Sequence[str]) -> list[str]:
        return status_argv(job_ids, self.dialect)

    def parse_status(self, stdout: str) -> dict[str, TaskStatus]:
        return parse_status(stdout)

    def status_error_is_benign(self, returncode: int, stderr: str) -> bool:
        return status_error_is_benign(returncode, stderr)

    def accounting_argv(self, job_ids: Sequence[str]) -> list[str] | None:
        return accounting_argv(job_ids, self.dialect)

    def parse_accounting(self, stdout: str) -> dict[str, TaskStatus]:
        return parse_accounting(stdout)

    def cancel_argv(self, job_ids: Sequence[str]) -> list[str]:
        return cancel_argv(job_ids)

    def lookup_argv(self, job_name: str) -> list[str]:
        return lookup_argv(job_name, self.dialect)

    def parse_lookup(self, stdout: str) -> list[str]:
        return parse_lookup(stdout)


PRO = PbsScheduler("pro")
TORQUE = PbsScheduler("torque")


def jobs_by_name_argv() -> list[str]:
    """Every job ``qstat -f`` knows, as ``ID NAME STATE HOST`` lines (one command for all).

    For Slurm's Torque wrappers, whose array elements run under unpredictable ids:
    the job name (clustrix's key) is what ties them to their submission. HOST is
    ``ran`` if the job had an ``exec_host``, else ``-``: the wrappers print no
    ``exec_host`` for a job deleted before it was given a node.
    """
    script = (
        "qstat -f 2>/dev/null | awk '"
        'function out() { if (id != "") print id, name, state, (host == "" ? "-" : "ran") } '
        '/^Job Id:/ {out(); id = $3; name = ""; state = ""; host = ""} '
        '$1 == "Job_Name" {name = $3} $1 == "job_state" {state = $3} '
        '$1 == "exec_host" {host = $3} '
        "END {out()}'; exit 0"
    )
    return ["sh", "-c", script]


def parse_jobs_by_name(stdout: str) -> dict[str, list[JobState]]:
    """States of the jobs carrying each name (unknown letters count as QUEUED)."""
    found: dict[str, list[JobState]] = {}
    for fields in _by_name_lines(stdout):
        found.setdefault(fields[1], []).append(STATE_MAP.get(fields[2], JobState.QUEUED))
    return found


def parse_unstarted_by_name(stdout: str) -> set[str]:
    """Names with a job that ended without ever being given a node (deleted while
    it was waiting: ``qdel`` of a queued job, or of an array with queued elements)."""
    return {
        fields[1]
        for fields in _by_name_lines(stdout)
        if len(fields) == 4 and fields[2] == "C" and fields[3] == "-"
    }


def _by_name_lines(stdout: str) -> list[list[str]]:
    lines = [line.split() for line in stdout.splitlines()]
    return [fields for fields in lines if len(fields) in (3, 4)]
