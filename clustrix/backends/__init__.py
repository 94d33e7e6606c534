"""Backends: how a submission becomes running tasks on one kind of cluster."""

from __future__ import annotations

from collections.abc import Callable

from .._config import ClusterConfig
from .._exceptions import ConfigError
from ..transport.base import Transport
from .base import Backend, Submission

__all__ = ["Backend", "Submission", "create_backend"]

TransportFor = Callable[[ClusterConfig], Transport]


def create_backend(config: ClusterConfig, transport_for: TransportFor | None = None) -> Backend:
    """Build the backend for `config.cluster_type` (imports only what it needs).

    `transport_for(config)` gives the client's pooled transport to the login node.
    """
    if config.cluster_type == "local":
        from .local import LocalBackend

        return LocalBackend(config)
    if config.cluster_type == "ssh":
        if not config.cluster_host:
            raise ConfigError("cluster_type='ssh' needs cluster_host (the host to run on)")
        if transport_for is None:
            raise ConfigError("the ssh backend needs a transport")
        from .remote.ssh import SSHBackend

        return SSHBackend(config, transport_for(config))
    if config.cluster_type in ("slurm", "pbs", "sge"):
        if transport_for is None:
            raise ConfigError(f"the {config.cluster_type} backend needs a transport")
        from .remote.batch import BatchBackend

        # No cluster_host: clustrix runs on the login node, commands run here.
        return BatchBackend(config, transport_for(config))
    if config.cluster_type == "kubernetes":
        try:
            import kubernetes_asyncio  # noqa: F401  # the optional extra
        except ImportError:
            raise ConfigError(
                "cluster_type='kubernetes' needs the kubernetes extra: "
                "pip install 'clustrix[kubernetes]'"
            ) from None
        from .kubernetes import KubernetesBackend

        return KubernetesBackend(config)
    raise ConfigError(
        f"cluster_type={config.cluster_type!r} is not available in this version of "
        "clustrix yet; use cluster_type='local'"
    )
