"""Fake batch schedulers for tests: the tools in ../bin/<scheduler>/ dispatch here."""

from __future__ import annotations

import importlib


def dispatch(scheduler: str, tool: str, argv: list[str]) -> int:
    """Run `tool` of the fake `scheduler` ("slurm", "sge" or "pbs") with `argv`."""
    module = importlib.import_module(f"fakesched.{scheduler}")
    return int(module.TOOLS[tool](argv))
