"""The SSH transport: one pooled asyncssh connection per (host, port, user) and client.

The connection opens lazily under a lock (concurrent first calls share one login),
channels are bounded below sshd's ``MaxSessions``, one SFTP session serves every
file transfer, and keepalives notice a dead peer. A lost connection is re-opened;
operations marked idempotent are retried once, others raise a transient
`ClusterConnectionError` so the caller can check before repeating them.
"""

from __future__ import annotations

import asyncio
import contextlib
import posixpath
import secrets
import shlex
import signal
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import asyncssh

from .._config import ClusterConfig
from .._exceptions import ClusterConnectionError
from .base import CommandResult, CommandStream, Transport
from .ssh_connect import open_connection

T = TypeVar("T")
_LOST = (
    asyncssh.ConnectionLost,
    asyncssh.DisconnectError,
    BrokenPipeError,
    ConnectionResetError,
)


class SSHTransport(Transport):
    """Commands and files on one SSH host, over one shared connection."""

    def __init__(self, config: ClusterConfig) -> None:
        if not config.cluster_host:
            raise ValueError("SSHTransport needs cluster_host")
        self._config = config
        self.host = config.cluster_host
        self._lock = asyncio.Lock()
        self._channels = asyncio.Semaphore(config.max_channels)
        self._connection: asyncssh.SSHClientConnection | None = None
        self._sftp: asyncssh.SFTPClient | None = None
        self._home: str | None = None
        self._closed = False
        #: how many times this transport logged in (one per client, unless lost)
        self.logins = 0
        #: the local port of each login (sshd logs it: lets tests match its records)
        self.local_ports: list[int] = []

    @property
    def label(self) -> str:
        """``user@host:port`` as configured (for messages)."""
        user = f"{self._config.username}@" if self._config.username else ""
        return f"{user}{self.host}:{self._config.cluster_port}"

    # -- connection ----------------------------------------------------------------------
    async def _connect(self) -> asyncssh.SSHClientConnection:
        async with self._lock:
            if self._closed:
                raise ClusterConnectionError(f"the connection to {self.label} is closed")
            if self._connection is None or self._connection.is_closed():
                self._connection = await open_connection(self._config)
                self._sftp = None
                self.logins += 1
                sockname = self._connection.get_extra_info("sockname")
                if sockname:
                    self.local_ports.append(int(sockname[1]))
            return self._connection

    async def _sftp_client(self) -> asyncssh.SFTPClient:
        connection = await self._connect()
        async with self._lock:
            if self._sftp is None:
                self._sftp = await connection.start_sftp_client()
            return self._sftp

    def _forget(self, connection: asyncssh.SSHClientConnection | None) -> None:
        if connection is not None and connection is self._connection:
            self._connection = None
            self._sftp = None
            connection.abort()

    async def _retrying(
        self,
        operation: Callable[[asyncssh.SSHClientConnection], Awaitable[T]],
        *,
        idempotent: bool,
        what: str,
    ) -> T:
        for attempt in (1, 2):
            connection = await self._connect()
            try:
                async with self._channels:
                    return await operation(connection)
            except (asyncssh.ChannelOpenError, *_LOST) as error:
                if isinstance(error, asyncssh.ChannelOpenError) and not connection.is_closed():
                    raise self._error(  # the server refused a channel on a live connection
                        f"{self.label} refused a new channel ({error.reason}); lower "
                        "max_channels below the server's MaxSessions"
                    ) from error
                self._forget(connection)
                if not idempotent or attempt == 2:
                    raise self._error(
                        f"lost the connection to {self.label} during {what}: {error}"
                    ) from error
        raise AssertionError("unreachable")

    def _error(self, message: str) -> ClusterConnectionError:
        return ClusterConnectionError(
            message,
            host=self.host,
            port=self._config.cluster_port,
            username=self._config.username,
            transient=True,
        )

    # -- commands ------------------------------------------------------------------------
    async def execute(
        self, argv: tuple[str, ...], stdin: bytes | None, timeout: float | None, idempotent: bool
    ) -> CommandResult:
        """Run `argv` on the host; each element reaches the program as one argument."""
        command = shlex.join(argv)

        async def run_it(connection: asyncssh.SSHClientConnection) -> CommandResult:
            process = await connection.create_process(command, input=stdin, encoding=None)
            try:
                done = await asyncio.wait_for(process.wait(check=False), timeout)
            except BaseException:
                _stop(process)  # cancelled or timed out: the remote command goes too
                raise
            status = done.exit_status
            if status is None and not done.exit_signal:
                # No exit status and no signal: the connection went away while the
                # command ran, so whether it took effect is unknown.
                raise asyncssh.ConnectionLost("the channel closed without an exit status")
            if status is None or status < 0:
                signal_name = done.exit_signal[0] if done.exit_signal else "unknown"
                status = 255 if signal_name == "unknown" else 128 + _signal_number(signal_name)
            return CommandResult(argv, status, _text(done.stdout), _text(done.stderr))

        return await self._retrying(run_it, idempotent=idempotent, what=f"`{command[:80]}`")

    async def open_stream(self, argv: Sequence[str]) -> CommandStream:
        """Start `argv` on its own channel, held (of `max_channels`) until it is closed."""
        command = shlex.join(argv)
        await self._channels.acquire()
        try:
            connection = await self._connect()
            try:
                process = await connection.create_process(command, encoding=None)
            except (asyncssh.ChannelOpenError, *_LOST) as error:
                if connection.is_closed():
                    self._forget(connection)
                raise self._error(f"cannot start `{command[:80]}`: {error}") from error
        except BaseException:
            self._channels.release()
            raise
        return _SSHStream(process, self._channels.release)

    # -- files ---------------------------------------------------------------------------
    async def home(self) -> str:
        """The remote user's home directory (absolute)."""
        if self._home is None:

            async def realpath(_: asyncssh.SSHClientConnection) -> str:
                sftp = await self._sftp_client()
                return str(await sftp.realpath("."))

            self._home = await self._retrying(realpath, idempotent=True, what="realpath")
        return self._home

    async def expand(self, path: str) -> str:
        """`path` made absolute: ``~`` and relative paths are taken from the home dir."""
        if path == "~" or path.startswith("~/"):
            return posixpath.join(await self.home(), path[2:])
        if not path.startswith("/"):
            return posixpath.join(await self.home(), path)
        return path

    async def _sftp_call(self, what: str, call: Callable[[asyncssh.SFTPClient], Awaitable[T]]) -> T:
        async def operation(_: asyncssh.SSHClientConnection) -> T:
            sftp = await self._sftp_client()
            try:
                return await call(sftp)
            except asyncssh.SFTPNoSuchFile as error:
                raise FileNotFoundError(f"{what}: no such file on {self.host}") from error
            except asyncssh.SFTPPermissionDenied as error:
                raise PermissionError(f"{what}: permission denied on {self.host}") from error
            except asyncssh.SFTPError as error:
                raise OSError(f"{what} on {self.host}: {error.reason}") from error

        return await self._retrying(operation, idempotent=True, what=what)

    async def write_file(self, path: str, data: bytes, *, mode: int = 0o600) -> None:
        target = await self.expand(path)
        tmp = posixpath.join(
            posixpath.dirname(target), f".{posixpath.basename(target)}.{secrets.token_hex(4)}"
        )

        async def write(sftp: asyncssh.SFTPClient) -> None:
            attrs = asyncssh.SFTPAttrs(permissions=mode)
            async with sftp.open(tmp, "wb", attrs) as handle:
                await handle.write(data)
            await sftp.posix_rename(tmp, target)

        await self._sftp_call(f"writing {target}", write)

    async def read_file(self, path: str) -> bytes:
        target = await self.expand(path)

        async def read(sftp: asyncssh.SFTPClient) -> bytes:
            async with sftp.open(target, "rb") as handle:
                data: bytes = await handle.read()
                return data

        return await self._sftp_call(f"reading {target}", read)

    async def mkdir(self, path: str, *, mode: int = 0o700) -> None:
        target = await self.expand(path)

        async def make(sftp: asyncssh.SFTPClient) -> None:
            await sftp.makedirs(target, asyncssh.SFTPAttrs(permissions=mode), exist_ok=True)
            await sftp.chmod(target, mode)  # makedirs leaves an existing dir's mode alone

        await self._sftp_call(f"creating {target}", make)

    async def listdir(self, path: str) -> list[str]:
        """Names in directory `path` (without ``.`` and ``..``)."""
        target = await self.expand(path)

        async def names(sftp: asyncssh.SFTPClient) -> list[str]:
            return [n for n in await sftp.listdir(target) if n not in (".", "..")]

        return await self._sftp_call(f"listing {target}", names)

    async def lstat(self, path: str, *, follow: bool = False) -> asyncssh.SFTPAttrs:
        """The attributes of `path` (of its link target with `follow`)."""
        target = await self.expand(path)

        async def attributes(sftp: asyncssh.SFTPClient) -> asyncssh.SFTPAttrs:
            return await (sftp.stat(target) if follow else sftp.lstat(target))

        return await self._sftp_call(f"stat of {target}", attributes)

    async def remove_tree(self, path: str) -> None:
        target = await self.expand(path)
        await self.run(["rm", "-rf", "--", target])

    async def aclose(self) -> None:
        async with self._lock:
            self._closed = True
            connection, self._connection, self._sftp = self._connection, None, None
        if connection is not None:
            connection.close()
            with contextlib.suppress(Exception):
                await connection.wait_closed()


class _SSHStream(CommandStream):
    def __init__(self, process: asyncssh.SSHClientProcess[Any], release: Callable[[], None]):
        self._process = process
        self._release: Callable[[], None] | None = release

    async def send(self, line: bytes) -> None:
        self._process.stdin.write(line + b"\n")
        await self._process.stdin.drain()

    async def readline(self) -> bytes:
        line: bytes = await self._process.stdout.readline()
        return line

    async def aclose(self) -> None:
        _stop(self._process)
        with contextlib.suppress(Exception):
            await self._process.wait_closed()
        release, self._release = self._release, None
        if release is not None:  # (once, however often it is closed)
            release()


def _stop(process: asyncssh.SSHClientProcess[Any]) -> None:
    """End a remote command early: SIGTERM (OpenSSH passes signals on since 7.9),
    then close its channel (its stdout's reader goes away, and the process with it)."""
    with contextlib.suppress(Exception):
        process.send_signal("TERM")
    with contextlib.suppress(Exception):
        process.close()


def _text(data: Any) -> str:
    if isinstance(data, bytes):
        return data.decode(errors="replace")
    return str(data or "")


def _signal_number(name: str) -> int:
    try:
        return int(signal.Signals[f"SIG{name}"])
    except KeyError:
        return 127
