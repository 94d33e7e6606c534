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
import os
import posixpath
import secrets
import shlex
import socket
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import asyncssh

from .._config import ClusterConfig
from .._exceptions import (
    AuthenticationError,
    ClusterConnectionError,
    HostKeyError,
)
from .base import CommandResult

T = TypeVar("T")
_LOST = (
    asyncssh.ConnectionLost,
    asyncssh.DisconnectError,
    BrokenPipeError,
    ConnectionResetError,
)


class SSHTransport:
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
    async def run(
        self,
        argv: Sequence[str],
        *,
        stdin: bytes | None = None,
        check: bool = True,
        timeout: float | None = None,
        idempotent: bool = True,
    ) -> CommandResult:
        """Run `argv` on the host; each element reaches the program as one argument."""
        command = shlex.join(argv)

        async def run_it(connection: asyncssh.SSHClientConnection) -> CommandResult:
            done = await asyncio.wait_for(
                connection.run(command, input=stdin, check=False, encoding=None), timeout
            )
            status = done.exit_status
            if status is None or status < 0:
                signal_name = done.exit_signal[0] if done.exit_signal else "unknown"
                status = 255 if signal_name == "unknown" else 128 + _signal_number(signal_name)
            return CommandResult(tuple(argv), status, _text(done.stdout), _text(done.stderr))

        result = await self._retrying(run_it, idempotent=idempotent, what=f"`{command[:80]}`")
        return result.check() if check else result

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


def _text(data: Any) -> str:
    if isinstance(data, bytes):
        return data.decode(errors="replace")
    return str(data or "")


def _signal_number(name: str) -> int:
    import signal

    try:
        return int(signal.Signals[f"SIG{name}"])
    except KeyError:
        return 127


def _known_hosts_path(config: ClusterConfig) -> Path:
    return Path(config.known_hosts or "~/.ssh/known_hosts").expanduser()


async def open_connection(config: ClusterConfig) -> asyncssh.SSHClientConnection:
    """Log in as OpenSSH would (``~/.ssh/config``, agent, keys), translating errors."""
    host = config.cluster_host or ""
    options = _connect_options(config)
    label = f"{config.username or '(ssh config/local user)'}@{host}:{config.cluster_port}"
    try:
        try:
            return await asyncssh.connect(host, **options)
        except asyncssh.HostKeyNotVerifiable:
            if not config.accept_new_host_keys or _host_is_known(config):
                raise
            return await _trust_on_first_use(config, options)
    except asyncssh.HostKeyNotVerifiable as error:
        path = _known_hosts_path(config)
        port = config.cluster_port
        entry = host if port == 22 else f"[{host}]:{port}"
        changed = _host_is_known(config)
        raise HostKeyError(
            f"the host key of {host}:{port} "
            + ("CHANGED since it was recorded" if changed else "is not known")
            + f" (known_hosts: {path}): {error}. "
            + (
                f"If the change is expected, remove the old entry with "
                f"`ssh-keygen -R '{entry}' -f {path}` and connect again. "
                if changed
                else f"Check the fingerprint with the cluster's admins, then add it with "
                f"`ssh-keyscan -p {port} {host} >> {path}`, or set accept_new_host_keys=True "
                "to trust a new host on first use. "
            ),
            host=host,
            port=port,
            username=config.username,
        ) from None
    except asyncssh.PermissionDenied as error:
        raise AuthenticationError(
            f"authentication to {label} failed ({error.reason}); check username, key_file, "
            "the ssh-agent, or password",
            host=host,
            port=config.cluster_port,
            username=config.username,
        ) from None
    except TimeoutError as error:
        raise ClusterConnectionError(
            f"connecting to {label} timed out after {config.connect_timeout} s",
            host=host,
            port=config.cluster_port,
            username=config.username,
            transient=True,
        ) from error
    except socket.gaierror as error:
        raise ClusterConnectionError(
            f"cannot resolve the host name of {label}: {error}; check cluster_host",
            host=host,
            port=config.cluster_port,
            username=config.username,
        ) from None
    except ConnectionRefusedError:
        raise ClusterConnectionError(
            f"{host}:{config.cluster_port} refused the connection ({label}); is sshd "
            "running there, and is cluster_port right?",
            host=host,
            port=config.cluster_port,
            username=config.username,
            transient=True,
        ) from None
    except (OSError, asyncssh.Error) as error:
        raise ClusterConnectionError(
            f"cannot connect to {label}: {error}",
            host=host,
            port=config.cluster_port,
            username=config.username,
            transient=True,
        ) from error


def _connect_options(config: ClusterConfig) -> dict[str, Any]:
    options: dict[str, Any] = {
        "connect_timeout": config.connect_timeout,
        "keepalive_interval": 15,
        "keepalive_count_max": 4,
    }
    explicit = config.model_fields_set
    # Only what the user set: the rest comes from ~/.ssh/config as OpenSSH would take it.
    if "cluster_port" in explicit or config.cluster_port != 22:
        options["port"] = config.cluster_port
    if config.username:
        options["username"] = config.username
    if config.key_file:
        options["client_keys"] = [os.path.expanduser(config.key_file)]
    if config.password is not None:
        options["password"] = config.password.get_secret_value()
    if config.known_hosts:
        options["known_hosts"] = str(_known_hosts_path(config))
    if config.proxy_jump:
        options["tunnel"] = config.proxy_jump
    return options


def _host_is_known(config: ClusterConfig) -> bool:
    path = _known_hosts_path(config)
    if not path.is_file():
        return False
    try:
        known = asyncssh.read_known_hosts(str(path))
        host = config.cluster_host or ""
        keys = known.match(host, "", config.cluster_port)
    except (OSError, ValueError, asyncssh.Error):
        return False
    return any(bool(group) for group in keys[:2])


async def _trust_on_first_use(
    config: ClusterConfig, options: dict[str, Any]
) -> asyncssh.SSHClientConnection:
    connection = await asyncssh.connect(
        config.cluster_host or "", **{**options, "known_hosts": None}
    )
    key = connection.get_server_host_key()
    if key is not None:
        host, port = config.cluster_host or "", config.cluster_port
        entry = host if port == 22 else f"[{host}]:{port}"
        line = f"{entry} {key.export_public_key('openssh').decode().strip()}\n"
        await asyncio.to_thread(_append_known_host, _known_hosts_path(config), line)
    return connection


def _append_known_host(path: Path, line: str) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(line)
    os.chmod(path, 0o600)
