"""Pure scheduler knowledge: argv builders, output parsers and state tables.

Nothing here performs I/O. The generic batch backend gets its scheduler from
:func:`scheduler_for`, renders the job script with :func:`render_script`, runs the
argv lists it gets back (``shlex.join`` for SSH) and feeds the output to the parsers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._exceptions import ConfigError
from .base import ArraySpec, BatchResources, PbsDialect, TaskStatus
from .pbs import Pbs
from .render import ScriptContext, render_script
from .scheduler import NamedJobs, Scheduler
from .sge import GridEngine
from .slurm import SLURM

if TYPE_CHECKING:
    from .._config import ClusterConfig

__all__ = [
    "ArraySpec",
    "BatchResources",
    "NamedJobs",
    "PbsDialect",
    "Scheduler",
    "ScriptContext",
    "TaskStatus",
    "get_scheduler",
    "render_script",
    "scheduler_for",
]


def get_scheduler(name: str, pbs_dialect: PbsDialect = "torque", sge_pe: str = "smp") -> Scheduler:
    """The scheduler for a backend key (``"slurm"``, ``"pbs"``, ``"sge"``)."""
    if name == "slurm":
        return SLURM
    if name == "sge":
        return GridEngine(sge_pe)
    if name == "pbs":
        return Pbs(pbs_dialect)
    raise ConfigError(f"unknown batch scheduler {name!r}; expected 'slurm', 'pbs' or 'sge'")


def scheduler_for(config: ClusterConfig) -> Scheduler:
    """The scheduler `config` describes (``pbs_dialect="auto"``: one to be probed)."""
    if config.cluster_type == "pbs" and config.pbs_dialect == "auto":
        return Pbs("torque", probe=True)
    dialect: PbsDialect = "pro" if config.pbs_dialect == "pro" else "torque"
    return get_scheduler(config.cluster_type, dialect, config.sge_pe)
