"""Commands and files on this machine (the `local` backend, or clustrix on a login node)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from .base import CommandResult, CommandStream, Transport


class LocalTransport(Transport):
    """The `Transport` for this machine: asyncio subprocesses and threaded file I/O."""

    async def execute(
        self, argv: tuple[str, ...], stdin: bytes | None, timeout: float | None, idempotent: bool
    ) -> CommandResult:
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            out, err = await asyncio.wait_for(process.communicate(stdin), timeout)
        except BaseException:
            if process.returncode is None:
                process.kill()
                await process.wait()
            raise
        assert process.returncode is not None
        return CommandResult(
            argv, process.returncode, out.decode(errors="replace"), err.decode(errors="replace")
        )

    async def open_stream(self, argv: Sequence[str]) -> CommandStream:
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
            limit=1 << 24,  # (one answer is one line)
        )
        return _LocalStream(process)

    async def expand(self, path: str) -> str:
        expanded = Path(path).expanduser()
        return str(expanded if expanded.is_absolute() else Path.home() / expanded)

    async def write_file(self, path: str, data: bytes, *, mode: int = 0o600) -> None:
        await asyncio.to_thread(_write_atomic, Path(path).expanduser(), data, mode)

    async def read_file(self, path: str) -> bytes:
        return await asyncio.to_thread(Path(path).expanduser().read_bytes)

    async def mkdir(self, path: str, *, mode: int = 0o700) -> None:
        await asyncio.to_thread(_mkdir, Path(path).expanduser(), mode)

    async def remove_tree(self, path: str) -> None:
        await asyncio.to_thread(shutil.rmtree, Path(path).expanduser(), True)

    async def aclose(self) -> None:
        return None


def _write_atomic(path: Path, data: bytes, mode: int) -> None:
    tmp = path.with_name(f".{path.name}.tmp.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.replace(tmp, path)


def _mkdir(path: Path, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.mkdir(mode=mode, exist_ok=True)
    os.chmod(path, mode)  # mkdir's mode is filtered by the umask


class _LocalStream(CommandStream):
    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self._process = process

    async def send(self, line: bytes) -> None:
        assert self._process.stdin is not None
        self._process.stdin.write(line + b"\n")
        await self._process.stdin.drain()

    async def readline(self) -> bytes:
        assert self._process.stdout is not None
        return await self._process.stdout.readline()

    async def aclose(self) -> None:
        if self._process.stdin is not None:
            self._process.stdin.close()
        if self._process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self._process.terminate()
        await self._process.wait()
