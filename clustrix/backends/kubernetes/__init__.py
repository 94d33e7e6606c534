"""The Kubernetes backend: batch/v1 Jobs through kubernetes-asyncio."""

from .backend import KubernetesBackend

__all__ = ["KubernetesBackend"]
