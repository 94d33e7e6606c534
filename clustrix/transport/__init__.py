"""How clustrix reaches a cluster's login node: SSH, or local subprocesses on it."""

from .base import CommandResult, Transport
from .local import LocalTransport

__all__ = ["CommandResult", "LocalTransport", "Transport"]
