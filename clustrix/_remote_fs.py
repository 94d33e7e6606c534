"""The filesystem helpers over the pooled SSH connection.

Single paths go through SFTP (one request each); whole trees (`find`, `du`,
`count_files`) are ONE remote `find` command whatever their size, never one round trip
per file. Relative paths are taken from `remote_work_dir`. The semantics match the
local implementation in `clustrix.fs`: "files" are everything but directories, and
symbolic links are reported, not followed.
"""

from __future__ import annotations

import fnmatch
import posixpath
import stat as stat_module
from dataclasses import dataclass

from ._config import ClusterConfig
from ._exceptions import ConfigError
from .transport.ssh import SSHTransport

# Exit 3: missing, 4: not a directory; otherwise find's own status (1: some entry could
# not be read, e.g. permissions). Output: relative path NUL size NUL, per non-directory.
_WALK = r"""
if [ ! -e "$1" ] && [ ! -L "$1" ]; then exit 3; fi
if [ ! -d "$1" ]; then exit 4; fi
exec find "$1" -mindepth 1 ! -type d -printf '%P\0%s\0'
"""


@dataclass(frozen=True)
class RemoteTree:
    """Where the helpers act: a transport and the directory relative paths start from."""

    transport: SSHTransport
    base: str

    async def path(self, path: str) -> str:
        if path.startswith("~") or path.startswith("/"):
            return await self.transport.expand(path)
        return posixpath.normpath(posixpath.join(self.base, path))

    async def walk(self, path: str) -> list[tuple[str, int]]:
        """(relative path, size) of every non-directory below `path`, in one command."""
        target = await self.path(path)
        result = await self.transport.run(["sh", "-c", _WALK, "sh", target], check=False)
        if result.exit_status == 3:
            raise FileNotFoundError(f"no such directory on {self.transport.host}: {target}")
        if result.exit_status == 4:
            raise NotADirectoryError(f"not a directory on {self.transport.host}: {target}")
        if result.exit_status != 0:
            if "Permission denied" in result.stderr:
                raise PermissionError(f"{target} on {self.transport.host}: {result.stderr.strip()}")
            raise OSError(f"walking {target} on {self.transport.host}: {result.stderr.strip()}")
        fields = result.stdout.split("\0")
        return [(fields[i], int(fields[i + 1])) for i in range(0, len(fields) - 1, 2)]

    async def ls(self, path: str) -> list[str]:
        return sorted(await self.transport.listdir(await self.path(path)))

    async def find(self, pattern: str, path: str) -> list[str]:
        return sorted(
            rel
            for rel, _ in await self.walk(path)
            if fnmatch.fnmatchcase(posixpath.basename(rel), pattern)
        )

    async def glob(self, pattern: str, path: str) -> list[str]:
        target = await self.path(path)
        if not stat_module.S_ISDIR(
            (await self.transport.lstat(target, follow=True)).permissions or 0
        ):
            raise NotADirectoryError(f"not a directory on {self.transport.host}: {target}")
        names = await self.transport.listdir(target)
        return sorted(name for name in names if fnmatch.fnmatchcase(name, pattern))

    async def exists(self, path: str) -> bool:
        try:
            await self.transport.lstat(await self.path(path))
        except FileNotFoundError:
            return False
        return True

    async def mode(self, path: str) -> int | None:
        """The st_mode of what `path` points to, or None if nothing is there."""
        try:
            return (await self.transport.lstat(await self.path(path), follow=True)).permissions
        except FileNotFoundError:
            return None


async def remote_tree(config: ClusterConfig) -> RemoteTree:
    """The pooled connection of the running loop's client, and remote_work_dir."""
    from ._client import client_for_this_loop

    transport = client_for_this_loop()._transport_for(config)
    if not isinstance(transport, SSHTransport):
        raise ConfigError("remote filesystem helpers need cluster_host")
    return RemoteTree(transport, await transport.expand(config.remote_work_dir))
