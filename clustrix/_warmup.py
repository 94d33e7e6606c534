"""Work done once before a Client's first call, in a worker thread (not on the loop)."""

from __future__ import annotations

import contextlib
import importlib

from . import _payload
from ._config import ClusterConfig

_BACKEND_MODULES = {
    "local": "clustrix.backends.local",
    "ssh": "clustrix.backends.remote.ssh",
    "kubernetes": "clustrix.backends.kubernetes",
}


def warm_up(config: ClusterConfig) -> None:
    """Import the backend's modules and scan the loaded modules for the pickler, in a
    worker thread, so that the first call does not hold the event loop."""
    module = _BACKEND_MODULES.get(config.cluster_type, "clustrix.backends.remote.batch")
    with contextlib.suppress(ImportError):  # a missing extra is reported by the call
        importlib.import_module(module)
    _payload._REGISTRY.refresh()
    if config.cluster_type in ("ssh", "slurm", "pbs", "sge"):  # compile the job scripts
        from .schedulers import render

        templates = render._environment()
        for name in ("base", config.cluster_type):
            templates.get_template(f"{name}.sh.j2")
