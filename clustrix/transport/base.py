"""The transport interface: run commands and move files on the login node."""

from __future__ import annotations

import abc
import logging
import shlex
from collections.abc import Sequence
from dataclasses import dataclass

from .._exceptions import CommandError

log = logging.getLogger("clustrix.transport")


@dataclass(frozen=True)
class CommandResult:
    """What a command printed and how it exited."""

    argv: tuple[str, ...]
    exit_status: int
    stdout: str
    stderr: str

    def check(self) -> CommandResult:
        """Return self, or raise `CommandError` if the command exited non-zero."""
        if self.exit_status != 0:
            raise CommandError(
                f"command `{shlex.join(self.argv)}` exited {self.exit_status}: "
                f"{self.stderr.strip()[-2000:] or self.stdout.strip()[-2000:]}",
                argv=self.argv,
                exit_status=self.exit_status,
                stdout=self.stdout,
                stderr=self.stderr,
            )
        return self


class CommandStream(abc.ABC):
    """A command that keeps running: lines go to its stdin, lines come from its stdout."""

    @abc.abstractmethod
    async def send(self, line: bytes) -> None:
        """Write one line (without its newline) to the command's stdin."""

    @abc.abstractmethod
    async def readline(self) -> bytes:
        """The next line of its stdout (with the newline); b"" once it ended."""

    @abc.abstractmethod
    async def aclose(self) -> None:
        """End the command (its stdin closes; SIGTERM if it still runs)."""


class Transport(abc.ABC):
    """Commands and files on one host; every method is safe to call concurrently.

    Commands are argv lists (never shell strings): each element reaches the remote
    program as one argument, whatever it contains. A transport implements `execute`
    and the file methods; `run` is the same for all.
    """

    async def run(
        self,
        argv: Sequence[str],
        *,
        stdin: bytes | None = None,
        check: bool = True,
        timeout: float | None = None,
        idempotent: bool = True,
    ) -> CommandResult:
        """Run `argv` and return its output; raise `CommandError` if `check` and it fails.

        `idempotent=False`: the command must not run twice, so a connection lost while
        it runs raises a transient `ClusterConnectionError` instead of retrying it.
        """
        result = await self.execute(tuple(argv), stdin, timeout, idempotent)
        if log.isEnabledFor(logging.DEBUG):  # argv carries no secrets (they never reach a shell)
            where = getattr(self, "host", None) or "localhost"
            log.debug("on %s, exit %d: %s", where, result.exit_status, shlex.join(argv)[:500])
        return result.check() if check else result

    @abc.abstractmethod
    async def execute(
        self, argv: tuple[str, ...], stdin: bytes | None, timeout: float | None, idempotent: bool
    ) -> CommandResult:
        """Run `argv` and return how it exited (`run` without the check)."""

    @abc.abstractmethod
    async def expand(self, path: str) -> str:
        """`path` made absolute on that host (``~`` and relative paths: its home dir)."""

    @abc.abstractmethod
    async def open_stream(self, argv: Sequence[str]) -> CommandStream:
        """Start `argv` and keep its stdin and stdout open (see `CommandStream`)."""

    @abc.abstractmethod
    async def write_file(self, path: str, data: bytes, *, mode: int = 0o600) -> None:
        """Write `data` to `path` atomically (temp file, then rename)."""

    @abc.abstractmethod
    async def read_file(self, path: str) -> bytes:
        """Return the bytes of `path`; `FileNotFoundError` if it does not exist."""

    @abc.abstractmethod
    async def mkdir(self, path: str, *, mode: int = 0o700) -> None:
        """Create `path` and its parents; the last component gets `mode`."""

    @abc.abstractmethod
    async def remove_tree(self, path: str) -> None:
        """Delete `path` and everything below it (no error if it is gone)."""

    @abc.abstractmethod
    async def aclose(self) -> None:
        """Release connections."""
