"""The seed's ``clustrix.decorator`` module: `cluster` (an alias of `clustrix.cluster`)."""

from ._decorator import RemoteFunction, cluster

__all__ = ["RemoteFunction", "cluster"]
