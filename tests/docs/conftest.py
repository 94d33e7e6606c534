"""The lab fixture of tests/remote: skips, or fails in CI, when the lab is not up."""

from __future__ import annotations

from ..remote.conftest import lab

__all__ = ["lab"]
