"""Pure scheduler knowledge: argv builders, output parsers and state tables.

Nothing here performs I/O. The generic batch backend looks a scheduler up with
:func:`get_scheduler`, renders the job script with :func:`render_script`, runs the
argv lists it gets back (``shlex.join`` for SSH) and feeds the output to the parsers.
"""

from __future__ import annotations

from .._exceptions import ConfigError
from . import pbs, sge, slurm
from .base import ArraySpec, BatchResources, PbsDialect, Scheduler, TaskStatus
from .render import ScriptContext, render_script

__all__ = [
    "ArraySpec",
    "BatchResources",
    "PbsDialect",
    "Scheduler",
    "ScriptContext",
    "TaskStatus",
    "get_scheduler",
    "render_script",
]


def get_scheduler(name: str, pbs_dialect: PbsDialect = "torque") -> Scheduler:
    """The scheduler for a backend key (``"slurm"``, ``"pbs"``, ``"sge"``)."""
    if name == "slurm":
        return slurm
    if name == "sge":
        return sge
    if name == "pbs":
        if pbs_dialect not in ("pro", "torque"):
            raise ConfigError(f"pbs_dialect must be 'pro' or 'torque', got {pbs_dialect!r}")
        return pbs.PRO if pbs_dialect == "pro" else pbs.TORQUE
    raise ConfigError(f"unknown batch scheduler {name!r}; expected 'slurm', 'pbs' or 'sge'")
