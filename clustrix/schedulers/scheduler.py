"""The :class:`Scheduler` base class: what every batch scheduler provides.

A scheduler is a small frozen object holding only its site settings (a PBS dialect,
a Grid Engine parallel environment). The abstract methods are its pure knowledge;
the optional hooks say how it differs from the common case (a probe for its
variant, an array limit, elements that cannot be addressed, a submit failure that
may have reached the scheduler). See :mod:`clustrix.schedulers.base` for the
conventions every scheduler follows.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar

from .._exceptions import ConfigError
from .._states import JobState
from .base import BatchResources, TaskStatus


class Scheduler(abc.ABC):
    """The pure knowledge of one batch scheduler: a small, stateless (frozen) object.

    The abstract methods build argv lists and parse what the scheduler prints. The
    hooks below have defaults that fit most schedulers; a scheduler overrides only
    what it needs. The generic batch backend runs the argv lists and feeds the
    output back, so it never has to know which scheduler it talks to.
    """

    NAME: ClassVar[str]  #: lowercase backend key: ``"slurm"``, ``"pbs"``, ``"sge"``
    TEMPLATE: ClassVar[str]  #: the job-script template under ``clustrix/templates``
    DIRECTIVE_PREFIX: ClassVar[str]  #: ``#SBATCH``, ``#PBS`` or ``#$``
    #: Every state code the scheduler documents, mapped to a :class:`JobState`.
    STATE_MAP: ClassVar[Mapping[str, JobState]]
    #: Shell expression for the 0-based element index inside the job script.
    element_index_expr: ClassVar[str]

    @abc.abstractmethod
    def directives(self, res: BatchResources) -> list[str]:
        """The directive lines of the job script; ConfigError for impossible values."""

    @abc.abstractmethod
    def submit_argv(self, script_path: str, res: BatchResources) -> list[str]:
        """The command that submits the script; it carries ``res.log_dir`` (as an
        argument, or as the directory it submits from), never a directive line."""

    @abc.abstractmethod
    def parse_submit(self, stdout: str) -> str:
        """The master job id from the submit command's output."""

    def element_job_id(self, master_id: str, element: int, res: BatchResources) -> str:
        """Native id of array element ``element`` (0-based); the master id if no array."""
        if res.array is None:
            return master_id
        if not 0 <= element < res.array.count:
            raise ConfigError(f"element {element} is outside the array of {res.array.count}")
        return self.array_element_id(master_id, element)

    @abc.abstractmethod
    def array_element_id(self, master_id: str, element: int) -> str:
        """Native id of element ``element`` (0-based, in range) of array ``master_id``."""

    def log_paths(self, res: BatchResources, master_id: str, element: int) -> tuple[str, str]:
        """The scheduler's own stdout and stderr file of one element (by default
        ``LOG_DIR/JOB_NAME.ELEMENT_ID.out`` and ``.err``, as Slurm and Grid Engine
        write them)."""
        job_id = self.element_job_id(master_id, element, res)
        stem = f"{res.log_dir.rstrip('/')}/{res.job_name}.{job_id}"
        return f"{stem}.out", f"{stem}.err"

    @abc.abstractmethod
    def status_argv(self, job_ids: Sequence[str]) -> list[str]:
        """One command asking about all these jobs (master or element ids) at once."""

    @abc.abstractmethod
    def parse_status(self, stdout: str) -> dict[str, TaskStatus]:
        """Status per element id, pending ranges expanded."""

    def status_error_is_benign(self, returncode: int, stderr: str) -> bool:
        """True if a failed status command only means some ids are gone (parse stdout)."""
        return False

    @abc.abstractmethod
    def accounting_argv(self, job_ids: Sequence[str]) -> list[str] | None:
        """The command for jobs that left the queue, or None if there is none."""

    @abc.abstractmethod
    def parse_accounting(self, stdout: str) -> dict[str, TaskStatus]:
        """Final status per element id from the accounting command."""

    @abc.abstractmethod
    def cancel_argv(self, job_ids: Sequence[str]) -> list[str]:
        """The command cancelling exactly these jobs or elements."""

    @abc.abstractmethod
    def lookup_argv(self, job_name: str) -> list[str]:
        """A command listing the jobs that carry this job name."""

    @abc.abstractmethod
    def parse_lookup(self, stdout: str) -> list[str]:
        """Master ids found by ``lookup_argv``, sorted, without duplicates."""

    # -- optional hooks ---------------------------------------------------------------
    def submit_error_is_transient(self, stderr: str) -> bool:
        """True if a failed submit command may have reached the scheduler all the same
        (its answer was lost): look the job up by name before calling it a refusal."""
        return False

    def probe_argv(self) -> list[str] | None:
        """A command telling which variant of the scheduler this is (None: no need)."""
        return None

    def probed(self, output: str) -> Scheduler:
        """The scheduler for the variant ``probe_argv`` printed ``output`` for."""
        return self

    def array_limit_argv(self) -> list[str] | None:
        """A command telling how many elements one array may have (None: unknown)."""
        return None

    def parse_array_limit(self, stdout: str) -> int | None:
        """The array limit from ``array_limit_argv``'s output (None: not found)."""
        return None

    @property
    def addressable(self) -> bool:
        """False where one array element can be neither observed nor cancelled by its
        id: the backend then follows runs by job name (``jobs_by_name_argv``) and the
        runner's files."""
        return True

    def jobs_by_name_argv(self) -> list[str]:
        """Every job the scheduler lists, with its name (unaddressable arrays only)."""
        raise NotImplementedError(f"{self.NAME} addresses array elements by id")

    def parse_jobs_by_name(self, stdout: str) -> dict[str, NamedJobs]:
        """What ``jobs_by_name_argv`` says about the jobs of each job name."""
        raise NotImplementedError(f"{self.NAME} addresses array elements by id")


@dataclass(frozen=True)
class NamedJobs:
    """The jobs of one job name, for a scheduler whose array elements cannot be
    addressed: are some still live, and did one end without ever starting (deleted
    while it waited)?"""

    live: bool
    dropped: bool
