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
  honoured only on the command line, which is why ``submit_argv`` puts them there.
  It pastes its arguments into one shell command line for sbatch (perl backticks), so
  ``submit_argv`` gives it no path of the user's: it runs qsub in the log
  directory with names relative to it. sbatch expands ``%`` patterns over the whole
  log path and fails on a backslash in that directory, so the backend refuses those
  (:func:`check_wrapper_log_dir`).
* ``qstat -f IDS`` prints the known ids and skips unknown ones (rc 0); when none is
  known it prints nothing and exits 153 (``status_error_is_benign``).
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
  from a real Torque or PBS Pro (``Pbs(arrays=False)``, followed by job name),
  and :meth:`Pbs.element_job_id` refuses bare array ids elsewhere.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar

from .._exceptions import ConfigError, SubmissionError
from .._states import JobState
from .base import (
    BatchResources,
    PbsDialect,
    TaskStatus,
    check_job_name,
    check_log_dir,
    clock,
    dash_options,
    positive,
    queue_and_account,
    unique_sorted_ids,
)
from .pbs_output import (
    FLAVOUR_ARRAYS,
    FLAVOUR_DIALECT,
    STATE_MAP,
    PbsFlavour,
    jobs_by_name_argv,
    parse_jobs_by_name,
    parse_probe,
    parse_qstat,
    parse_unstarted_by_name,
    probe_argv,
)
from .scheduler import NamedJobs, Scheduler

__all__ = [
    "FLAVOUR_ARRAYS",
    "FLAVOUR_DIALECT",
    "PRO",
    "STATE_MAP",
    "TORQUE",
    "Pbs",
    "PbsFlavour",
    "check_wrapper_log_dir",
    "jobs_by_name_argv",
    "parse_jobs_by_name",
    "parse_probe",
    "parse_qstat",
    "parse_unstarted_by_name",
    "probe_argv",
]

_JOB_ID = re.compile(r"^(\d+)(\[\])?(\.\S+)?$")
#: What Slurm's Torque wrappers cannot take in the directory qsub runs in (observed).
WRAPPER_LOG_DIR_REFUSED = {
    "%": "the wrappers hand the log paths to sbatch, which expands '%' patterns over the "
    "whole path",
    "\\": "sbatch, which the wrappers call, cannot write a log file below a directory "
    "whose name holds a backslash",
}
_PLAIN_ARG = re.compile(r"^[A-Za-z0-9_.+/-]+$")
#: qsub's words for a server it could not hear back from (the job may be recorded).
_TRANSIENT = ("End of File", "Connection timed out", "pbs_iff: cannot read reply")


def check_wrapper_log_dir(log_dir: str) -> str:
    """``log_dir`` if Slurm's Torque wrappers can write logs there, else ConfigError."""
    return check_log_dir("PBS (Slurm's Torque wrappers)", log_dir, WRAPPER_LOG_DIR_REFUSED)


@dataclass(frozen=True)
class Pbs(Scheduler):
    """The :class:`~clustrix.schedulers.base.Scheduler` of one PBS dialect.

    ``arrays=False``: Slurm's Torque wrappers, whose array elements cannot be
    addressed (``addressable``): the backend follows them by job name.
    ``probe=True``: ``pbs_dialect="auto"``, ask ``qstat --version`` first (``probed``).
    """

    dialect: PbsDialect = "torque"
    arrays: bool = True
    probe: bool = False
    NAME: ClassVar[str] = "pbs"
    TEMPLATE: ClassVar[str] = "pbs.sh.j2"
    DIRECTIVE_PREFIX: ClassVar[str] = "#PBS"
    STATE_MAP: ClassVar[Mapping[str, JobState]] = STATE_MAP
    #: PBS_ARRAY_INDEX: PBS Pro and the wrappers (empty outside arrays); PBS_ARRAYID: Torque.
    element_index_expr: ClassVar[str] = "${PBS_ARRAY_INDEX:-${PBS_ARRAYID:-0}}"

    def __post_init__(self) -> None:
        if self.dialect not in ("pro", "torque"):
            raise ConfigError(f"pbs_dialect must be 'pro' or 'torque', got {self.dialect!r}")

    @property
    def addressable(self) -> bool:
        return self.arrays

    def _uses_array(self, res: BatchResources) -> bool:
        return res.array is not None and (self.dialect != "pro" or res.array.count > 1)

    def directives(self, res: BatchResources) -> list[str]:
        """``#PBS`` lines: name and resources (logs, array and hold go on the command line)."""
        name = check_job_name(res.job_name)
        if not self.addressable:  # Slurm's Torque wrappers: what sbatch makes of the path
            check_wrapper_log_dir(res.log_dir)
        cores = positive("cores", res.cores) or 1
        nodes = positive("nodes", res.nodes) or 1
        gpus = positive("gpus", res.gpus) if res.gpus else None
        memory = positive("memory", res.memory)
        lines = [f"-N {name}"]
        if self.dialect == "pro":
            chunk = f"select={nodes}:ncpus={cores}"
            chunk += f":mem={_memory(memory)}" if memory else ""
            chunk += f":ngpus={gpus}" if gpus else ""
            lines.append(f"-l {chunk}")
            if nodes > 1:
                lines.append("-l place=scatter")
        else:
            lines.append(f"-l nodes={nodes}:ppn={cores}" + (f":gpus={gpus}" if gpus else ""))
            if memory:
                lines.append(f"-l mem={_memory(memory)}")
        walltime = clock("time", res.time)
        lines += [f"-l walltime={walltime}"] if walltime else []
        lines += queue_and_account(res) + dash_options(res)
        return [f"{self.DIRECTIVE_PREFIX} {line}" for line in lines]

    def _log_names(self, res: BatchResources) -> tuple[str, str]:
        """The -o/-e file names, relative to the log directory qsub runs in."""
        stem = check_job_name(res.job_name)
        if self._uses_array(res) and self.dialect == "pro":
            stem += ".^array_index^"  # PBS Pro substitutes the subjob index
        return f"{stem}.out", f"{stem}.err"

    def log_paths(self, res: BatchResources, master_id: str, element: int) -> tuple[str, str]:
        """The files PBS writes for this element (Torque appends ``-INDEX`` for subjobs)."""
        stem = f"{res.log_dir.rstrip('/')}/{res.job_name}"
        if not self._uses_array(res):
            return f"{stem}.out", f"{stem}.err"
        if self.dialect == "pro":
            return f"{stem}.{element}.out", f"{stem}.{element}.err"
        return f"{stem}.out-{element}", f"{stem}.err-{element}"

    def submit_argv(self, script_path: str, res: BatchResources) -> list[str]:
        """``cd LOG_DIR && qsub -o OUT -e ERR [-J|-t 0-N%K] [-h] SCRIPT`` (options the
        wrappers honour), every name relative to the log directory: Torque and PBS Pro
        resolve a relative -o/-e against qsub's working directory, and the wrappers
        (which re-read their arguments with a shell) see no text of the user's."""
        log_dir = check_log_dir("PBS", res.log_dir)
        if not script_path.startswith("/"):
            raise ConfigError(f"the job script path must be absolute, got {script_path!r}")
        script = posixpath.relpath(script_path, log_dir)
        if not _PLAIN_ARG.match(script):
            raise ConfigError(
                f"the job script {script_path!r} must lie beside the log directory "
                f"{log_dir!r} (Slurm's Torque wrappers pass qsub's arguments through a shell)"
            )
        out, err = self._log_names(res)
        argv = ["qsub", "-o", out, "-e", err]
        if self._uses_array(res) and res.array is not None:
            spec = f"0-{res.array.count - 1}"
            spec += f"%{res.array.throttle}" if res.array.throttle is not None else ""
            argv += ["-J" if self.dialect == "pro" else "-t", spec]
        if res.hold:
            argv.append("-h")
        return ["sh", "-c", 'cd "$1" && shift && exec "$@"', "sh", log_dir, *argv, script]

    def parse_submit(self, stdout: str) -> str:
        """The job id as printed: ``123.server``, ``123[].server``, or the wrappers' ``111``."""
        for line in stdout.splitlines():
            if _JOB_ID.match(line.strip()):
                return line.strip()
        raise SubmissionError(f"qsub printed no job id: {stdout.strip()!r}", stderr=stdout)

    def submit_error_is_transient(self, stderr: str) -> bool:
        """qsub lost the server's answer: the job may be recorded all the same."""
        return any(text in stderr for text in _TRANSIENT)

    def element_job_id(self, master_id: str, element: int, res: BatchResources) -> str:
        """``123[7].server`` for element 7; the master id without an array.

        Raises ConfigError for an array id without ``[]`` (Slurm's Torque wrappers
        print ``113``), whose elements cannot be addressed (see the module docstring);
        with ``arrays=False`` it is Torque's notation, for show only.
        """
        if not self._uses_array(res) or res.array is None:
            return master_id
        if not self.addressable:
            return f"{master_id}[{element}]"
        return super().element_job_id(master_id, element, res)

    def array_element_id(self, master_id: str, element: int) -> str:
        if "[]" not in master_id:
            raise ConfigError(
                f"array job {master_id!r} has no '[]' in its id, as with Slurm's Torque "
                "wrappers, whose qstat/qdel cannot address one element: submit one job per "
                "element there (see clustrix.schedulers.pbs.parse_probe)"
            )
        return master_id.replace("[]", f"[{element}]", 1)

    def status_argv(self, job_ids: Sequence[str]) -> list[str]:
        """``qstat -x -f -F json -t IDS`` (pro) or ``qstat -f [-t] IDS`` (torque)."""
        ids = unique_sorted_ids(job_ids)
        if self.dialect == "pro":
            return ["qstat", "-x", "-f", "-F", "json", "-t", *ids]
        # -t lists Torque's subjobs; the wrappers refuse it, but they never see array ids.
        return ["qstat", "-f", *(["-t"] if any("[" in i for i in ids) else []), *ids]

    def status_error_is_benign(self, returncode: int, stderr: str) -> bool:
        """rc 153 (PBSE_UNKJOBID & 0xff): some ids are unknown; stdout has the others."""
        return returncode == 153 or "Unknown Job Id" in stderr

    def parse_status(self, stdout: str) -> dict[str, TaskStatus]:
        """Parse ``qstat -f`` text or ``qstat -f -F json`` (told apart by the first char)."""
        return parse_qstat(stdout)

    def accounting_argv(self, job_ids: Sequence[str]) -> list[str] | None:
        """PBS Pro keeps finished jobs in ``qstat -x``; Torque has nothing for users (None)."""
        return self.status_argv(job_ids) if self.dialect == "pro" else None

    def parse_accounting(self, stdout: str) -> dict[str, TaskStatus]:
        """Same format as ``parse_status``."""
        return parse_qstat(stdout)

    def cancel_argv(self, job_ids: Sequence[str]) -> list[str]:
        """``qdel`` exactly these jobs or subjobs (``123[7].server`` is one subjob)."""
        return ["qdel", *unique_sorted_ids(job_ids)]

    def lookup_argv(self, job_name: str) -> list[str]:
        """``qselect -x -N NAME`` (pro); Torque and the wrappers (no qselect): ``qstat -f``
        + awk."""
        name = check_job_name(job_name)
        if self.dialect == "pro":
            return ["qselect", "-x", "-N", name]
        script = (
            'qstat -f 2>/dev/null | awk -v name="$1" '
            "'/^Job Id:/ {id = $3} $1 == \"Job_Name\" && $3 == name {print id}'; exit 0"
        )
        return ["sh", "-c", script, "sh", name]

    def parse_lookup(self, stdout: str) -> list[str]:
        """Job ids, one per line."""
        return unique_sorted_ids([line.strip() for line in stdout.splitlines() if line.strip()])

    # -- hooks: the flavour probe, and following the wrappers' jobs by name ------------
    def probe_argv(self) -> list[str] | None:
        return probe_argv() if self.probe else None

    def probed(self, output: str) -> Pbs:
        flavour = parse_probe(output)
        return Pbs(FLAVOUR_DIALECT[flavour], arrays=FLAVOUR_ARRAYS[flavour])

    def jobs_by_name_argv(self) -> list[str]:
        return jobs_by_name_argv()

    def parse_jobs_by_name(self, stdout: str) -> dict[str, NamedJobs]:
        dropped = parse_unstarted_by_name(stdout)
        return {
            name: NamedJobs(any(not state.final for state in states), name in dropped)
            for name, states in parse_jobs_by_name(stdout).items()
        }


def _memory(size: int | None) -> str:
    """PBS sizes: lowercase units, powers of 1024 (``4gb``, ``1536mb``)."""
    size = size or 0
    for unit, factor in (("tb", 1024**4), ("gb", 1024**3), ("mb", 1024**2), ("kb", 1024)):
        if size % factor == 0:
            return f"{size // factor}{unit}"
    return f"{-(-size // 1024)}kb"


PRO = Pbs("pro")
TORQUE = Pbs("torque")
