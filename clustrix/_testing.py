"""Test hooks for crash tests: a process that kills itself at a named point.

``CLUSTRIX_TEST_CRASH=submitted`` makes a process SIGKILL itself right after the
cluster received a submission command, before clustrix reads its answer;
``=submitting`` right before a batch submission command is sent (the lab tests of
reattach use them to reproduce a crash at the worst moments). Unset, it costs
one dictionary lookup.
"""

from __future__ import annotations

import os
import signal


def crash_point(name: str) -> None:
    """SIGKILL this process if ``CLUSTRIX_TEST_CRASH`` names this point."""
    if os.environ.get("CLUSTRIX_TEST_CRASH") == name:
        os.kill(os.getpid(), signal.SIGKILL)
