"""``clustrix config check``: log in and check what clustrix needs on the cluster.

Uses clustrix's own transports (`SSHTransport`, or `LocalTransport` when
``cluster_host`` is empty and clustrix runs on the login node), so a check that
passes logs in exactly as a submission would.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from rich.markup import escape
from rich.table import Table

from .._config import ClusterConfig
from .._exceptions import AuthenticationError, ClustrixError, HostKeyError
from ..backends.remote.area import LOCAL_PYTHON
from ..backends.remote.scripts import command_setup
from ..transport.base import CommandResult, Transport
from ..transport.local import LocalTransport
from ..transport.ssh import SSHTransport
from ._output import console

#: The commands each scheduler backend runs on the login node.
SCHEDULER_COMMANDS: dict[str, tuple[str, ...]] = {
    "slurm": ("sbatch", "squeue", "sacct", "scancel"),
    "sge": ("qsub", "qstat", "qacct", "qdel"),
    "pbs": ("qsub", "qstat", "qdel"),
    "ssh": ("setsid", "nohup"),
}
_TIMEOUT = 60.0  # seconds for each remote command
_WHICH = 'for c in "$@"; do command -v "$c" >/dev/null 2>&1 || echo "$c"; done'
_WRITABLE = (
    'umask 077; mkdir -p -- "$1" || exit 3; t=$(mktemp "$1/.clustrix-check.XXXXXX") || exit 4; '
    'rm -f -- "$t"'
)
_VERSION = "import sys; print('%d.%d' % sys.version_info[:2])"


@dataclass(frozen=True)
class Item:
    """One line of the checklist; ``ok`` None means skipped."""

    name: str
    ok: bool | None
    detail: str
    fix: str = ""


async def _run(transport: Transport, argv: Sequence[str]) -> CommandResult:
    return await transport.run(argv, check=False, timeout=_TIMEOUT)


def _login_fix(error: Exception, config: ClusterConfig) -> str:
    ssh = f"ssh -p {config.cluster_port} {config.username + '@' if config.username else ''}"
    ssh += config.cluster_host or ""
    if isinstance(error, HostKeyError):
        return "trust the host key as the message says (known_hosts or accept_new_host_keys)"
    if isinstance(error, AuthenticationError):
        return f"check username, key_file, password or the ssh-agent; try `{ssh}`"
    return f"check cluster_host and cluster_port; is sshd listening there? try `{ssh}`"


async def _checks(config: ClusterConfig, transport: Transport) -> list[Item]:
    items: list[Item] = []
    where = f"{config.username or ''}{'@' if config.username else ''}{config.cluster_host}"
    try:
        await transport.run(["true"], timeout=_TIMEOUT)
    except (ClustrixError, OSError) as error:
        items.append(Item("login", False, str(error), _login_fix(error, config)))
        return items
    items.append(
        Item("login", True, f"logged in to {where}:{config.cluster_port}")
        if config.cluster_host
        else Item("login", True, "no cluster_host: commands run on this machine")
    )
    items.append(await _check_python(config, transport))
    items.append(await _check_commands(config, transport))
    items.append(await _check_work_dir(config, transport))
    return items


async def _check_python(config: ClusterConfig, transport: Transport) -> Item:
    python = config.python_executable
    setup = command_setup(config)
    argv = [python, "-c", _VERSION]
    if setup:
        argv = ["bash", "-c", setup + '\nexec "$@"\n', "bash", *argv]
    result = await _run(transport, argv)
    remote = result.stdout.strip()
    if result.exit_status != 0 or not remote:
        why = result.stderr.strip()[-300:] or f"exit status {result.exit_status}"
        return Item(
            "python",
            False,
            f"cannot run python_executable={python!r}: {why}",
            f"set python_executable to a Python {LOCAL_PYTHON} there (or add module_loads)",
        )
    if remote != LOCAL_PYTHON:
        return Item(
            "python",
            False,
            f"{python} is Python {remote}, this one is Python {LOCAL_PYTHON}",
            f"point python_executable at a Python {LOCAL_PYTHON} (or use module_loads / conda)",
        )
    return Item("python", True, f"{python} is Python {remote}, like this one")


async def _check_commands(config: ClusterConfig, transport: Transport) -> Item:
    needed = SCHEDULER_COMMANDS[config.cluster_type]
    result = await _run(transport, ["sh", "-c", _WHICH, "sh", *needed])
    missing = result.stdout.split()
    name = "scheduler" if config.cluster_type != "ssh" else "commands"
    if result.exit_status != 0 or missing:
        return Item(
            name,
            False,
            f"not found on PATH: {', '.join(missing) or result.stderr.strip()[-300:]}",
            f"is this a {config.cluster_type} login node? check cluster_type, or make the "
            "commands reachable on the non-interactive PATH (e.g. in ~/.bashrc)",
        )
    return Item(name, True, f"{', '.join(needed)} found")


async def _check_work_dir(config: ClusterConfig, transport: Transport) -> Item:
    try:
        path = await transport.expand(config.remote_work_dir)
    except (ClustrixError, OSError) as error:
        return Item("remote_work_dir", False, str(error), "check remote_work_dir")
    result = await _run(transport, ["sh", "-c", _WRITABLE, "sh", path])
    if result.exit_status != 0:
        what = "cannot be created" if result.exit_status == 3 else "is not writable"
        return Item(
            "remote_work_dir",
            False,
            f"{path} {what}: {result.stderr.strip()[-300:]}",
            "set remote_work_dir to a directory you can write (e.g. under your home or scratch)",
        )
    return Item("remote_work_dir", True, f"{path} is writable")


async def gather(config: ClusterConfig) -> list[Item]:
    """Run every check of `config` (remote backends) and return the checklist."""
    transport: Transport = SSHTransport(config) if config.cluster_host else LocalTransport()
    try:
        return await _checks(config, transport)
    finally:
        await transport.aclose()


def run_check(config: ClusterConfig) -> bool:
    """Check `config`, print the checklist; True when nothing is wrong."""
    if config.cluster_type == "local":
        console.print(
            f"[green]✔[/] cluster_type is local: jobs run on this machine with Python "
            f"{LOCAL_PYTHON}; nothing to log in to or check"
        )
        return True
    if config.cluster_type == "kubernetes":
        console.print(
            "[yellow]-[/] cluster_type is kubernetes: `config check` covers ssh, slurm, pbs "
            "and sge; nothing was checked"
        )
        return True
    items = asyncio.run(gather(config))
    expected = ["login", "python", "scheduler" if config.cluster_type != "ssh" else "commands",
                "remote_work_dir"]  # fmt: skip
    done = {item.name for item in items}
    items += [Item(name, None, "skipped: not logged in") for name in expected if name not in done]
    table = Table(title=f"clustrix config check ({config.cluster_type})", title_justify="left")
    for column in ("", "check", "result", "how to fix"):
        table.add_column(column, overflow="fold")
    for item in items:
        mark = {True: "[green]✔[/]", False: "[red]✘[/]", None: "[dim]-[/]"}[item.ok]
        table.add_row(mark, item.name, escape(item.detail), escape(item.fix))
    console.print(table)
    failed = [item.name for item in items if item.ok is False]
    if failed:
        console.print(f"[red]{len(failed)} problem(s): {', '.join(failed)}[/]")
    else:
        console.print("[green]all checks passed[/]")
    return not failed
