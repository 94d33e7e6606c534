"""An SSH server for tests, in the test's own event loop (asyncssh; no root, no sshd).

Commands run locally through ``sh -c`` with the test process's environment (so a fake
scheduler first on PATH is what they find); SFTP serves the local file system. Only
the generated client key may log in. ``drop_after(prefix)`` makes the server run the
next command starting with `prefix` to its end and then cut the connection before
answering: the client sees a lost connection, the command's effect stays.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal as signalmod
from pathlib import Path
from typing import Any

import asyncssh


class FakeSSHServer:
    """Start with ``await FakeSSHServer.start(directory)``; ``close()`` when done."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.host_key = asyncssh.generate_private_key("ssh-ed25519")
        self.client_key = asyncssh.generate_private_key("ssh-ed25519")
        self.key_file = directory / "id_ed25519"
        self.key_file.write_bytes(self.client_key.export_private_key())
        self.key_file.chmod(0o600)
        self.known_hosts = directory / "known_hosts"
        self.port = 0
        self.commands: list[str] = []
        self.logins = 0
        self._drop: list[str] = []
        self._server: Any = None
        self._connections: set[asyncssh.SSHServerConnection] = set()
        self._processes: set[asyncio.subprocess.Process] = set()

    @classmethod
    async def start(cls, directory: Path) -> FakeSSHServer:
        self = cls(directory)
        owner = self

        class Server(asyncssh.SSHServer):
            def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
                owner._connections.add(conn)
                owner.logins += 1

            def connection_lost(self, exc: Exception | None) -> None:
                pass

        authorized = asyncssh.import_authorized_keys(self.client_key.export_public_key().decode())
        self._server = await asyncssh.create_server(
            Server,
            "127.0.0.1",
            0,
            server_host_keys=[self.host_key],
            authorized_client_keys=authorized,
            process_factory=self._handle,
            sftp_factory=True,
            encoding=None,
            allow_scp=False,
        )
        self.port = self._server.sockets[0].getsockname()[1]
        public = self.host_key.export_public_key().decode().strip()
        self.known_hosts.write_text(f"[127.0.0.1]:{self.port} {public}\n")
        return self

    def drop_after(self, prefix: str) -> None:
        """Cut the connection after the next command starting with `prefix` has run."""
        self._drop.append(prefix)

    async def _handle(self, process: asyncssh.SSHServerProcess[bytes]) -> None:
        command = process.command or ""
        self.commands.append(command)
        local = await asyncio.create_subprocess_exec(
            "/bin/sh",
            "-c",
            command,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,  # (a signal goes to the whole command: see _forward)
        )
        self._processes.add(local)
        # like sshd, a signal from the client goes to the command (also after its stdin
        # ended: asyncssh would queue it behind stdin's EOF, where nobody reads it)
        process.signal_received = lambda name: _forward(local, name)  # type: ignore[method-assign]
        feeder = asyncio.ensure_future(self._feed(process, local))
        try:
            assert local.stdout is not None and local.stderr is not None
            out, err = await asyncio.gather(local.stdout.read(), local.stderr.read())
            code = await local.wait()
        finally:
            feeder.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await feeder
            self._processes.discard(local)
        drop = next((p for p in self._drop if command.startswith(p)), None)
        if drop is not None:
            self._drop.remove(drop)
            process.channel.get_connection().abort()  # the answer never arrives
            return
        # The client may have closed the channel meanwhile (a cancelled command): like
        # sshd, drop the answer then instead of failing the whole connection.
        with contextlib.suppress(Exception):
            process.stdout.write(out)
            process.stderr.write(err)
            process.exit(code)

    @staticmethod
    async def _feed(
        process: asyncssh.SSHServerProcess[bytes], local: asyncio.subprocess.Process
    ) -> None:
        """Copy the channel's stdin to the command until EOF."""
        assert local.stdin is not None
        try:
            while True:
                try:
                    data = await process.stdin.read(1 << 16)
                except asyncssh.SignalReceived as signal:  # (one that came before the above)
                    _forward(local, signal.signal)
                    continue
                if not data:
                    break
                local.stdin.write(data)
                await local.stdin.drain()
        except (OSError, asyncssh.Error):
            pass
        finally:
            local.stdin.close()

    async def close(self) -> None:
        for local in list(self._processes):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(local.pid, signalmod.SIGKILL)
            await local.wait()
        for connection in list(self._connections):
            connection.abort()
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()


def _forward(local: asyncio.subprocess.Process, name: str) -> None:
    """Send the signal the client named (``TERM``) to the local command: to its process
    group, as /bin/sh here may not exec a command the way a login shell's ``-c`` does."""
    with contextlib.suppress(ProcessLookupError, PermissionError, AttributeError):
        os.killpg(local.pid, getattr(signalmod, f"SIG{name}"))
