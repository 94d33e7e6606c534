"""The result waiter against the fake Slurm, through the public API (no lab, no root)."""

from __future__ import annotations

from pathlib import Path

import pytest

from clustrix import Client
from clustrix.backends.remote.area import RemoteArea
from clustrix.transport.base import CommandStream

from ..fakesched.control import FakeScheduler
from .conftest import FakeFactory, config_for
from .tasks import nap


@pytest.fixture
def slurm(fake_factory: FakeFactory) -> FakeScheduler:
    return fake_factory("slurm")


class EndsAtOnce(CommandStream):
    """An agent that exits as soon as it starts (say, it cannot run on that host)."""

    async def send(self, line: bytes) -> None:
        pass

    async def readline(self) -> bytes:
        return b""

    async def aclose(self) -> None:
        pass


async def test_an_agent_that_cannot_run_is_not_restarted_in_a_loop(
    slurm: FakeScheduler, remote_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The poller still brings the result; the waiter tries again after a pause, not
    as fast as the event loop allows (before the fix: thousands of starts a second)."""
    started: list[int] = []

    async def watch(self: RemoteArea) -> CommandStream:
        started.append(1)
        return EndsAtOnce()

    monkeypatch.setattr(RemoteArea, "watch", watch)
    async with Client(config_for("slurm", remote_root)) as client:
        assert await client.submit(nap, 3) == 3
    assert 1 <= len(started) <= 4  # one start, then one per 2 s pause at most
