"""Backends: how a submission becomes running tasks on one kind of cluster."""

from __future__ import annotations

from .._config import ClusterConfig
from .._exceptions import ConfigError
from .base import Backend, Submission

__all__ = ["Backend", "Submission", "create_backend"]


def create_backend(config: ClusterConfig) -> Backend:
    """Build the backend for `config.cluster_type` (imports only what it needs)."""
    if config.cluster_type == "local":
        from .local import LocalBackend

        return LocalBackend(config)
    raise ConfigError(
        f"cluster_type={config.cluster_type!r} is not available in this version of "
        "clustrix yet; use cluster_type='local'"
    )
