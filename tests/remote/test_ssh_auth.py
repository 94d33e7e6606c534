"""Logging in as OpenSSH users expect, against the lab's real sshd."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest

from clustrix import (
    AuthenticationError,
    Client,
    ClusterConfig,
    HostKeyError,
)
from clustrix.transport.ssh import SSHTransport

from .conftest import LoginCounter, ssh_config


async def whoami(config: ClusterConfig) -> tuple[str, int]:
    transport = SSHTransport(config)
    try:
        result = await transport.run(["id", "-un"])
        return result.stdout.strip(), transport.logins
    finally:
        await transport.aclose()


async def test_password_login(lab: dict[str, Any], logins: LoginCounter) -> None:
    password = Path(lab["password_file"]).read_text().strip()
    config = ClusterConfig(
        cluster_type="ssh",
        cluster_host=lab["host"],
        cluster_port=lab["ports"]["ssh"],
        username=lab["password_user"],
        password=password,
        known_hosts=lab["known_hosts"],
    )
    assert await whoami(config) == (lab["password_user"], 1)
    assert logins.count(lab["password_user"]) == 1
    log = Path(lab["sshd_log"]).read_text(errors="replace")
    assert password not in log
    assert password not in repr(config)


async def test_wrong_password_is_an_authentication_error(lab: dict[str, Any]) -> None:
    config = ClusterConfig(
        cluster_host=lab["host"],
        cluster_port=lab["ports"]["ssh"],
        username=lab["password_user"],
        password="definitely-wrong",
        known_hosts=lab["known_hosts"],
    )
    with pytest.raises(AuthenticationError) as info:
        await whoami(config)
    message = str(info.value)
    assert lab["password_user"] in message and str(lab["ports"]["ssh"]) in message
    assert "definitely-wrong" not in message


@pytest.fixture
def agent(lab: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """A real ssh-agent holding the lab key."""
    socket_path = tmp_path / "agent.sock"
    process = subprocess.Popen(
        ["ssh-agent", "-D", "-a", str(socket_path)], stdout=subprocess.DEVNULL
    )
    for _ in range(100):
        if socket_path.exists():
            break
        subprocess.run(["sleep", "0.05"], check=True)
    env = {**os.environ, "SSH_AUTH_SOCK": str(socket_path)}
    subprocess.run(["ssh-add", lab["key_file"]], env=env, check=True, capture_output=True)
    monkeypatch.setenv("SSH_AUTH_SOCK", str(socket_path))
    yield socket_path
    process.send_signal(signal.SIGTERM)
    process.wait(10)


async def test_ssh_agent_login(lab: dict[str, Any], agent: Path) -> None:
    config = ClusterConfig(
        cluster_host=lab["host"],
        cluster_port=lab["ports"]["ssh"],
        username=lab["user"],
        known_hosts=lab["known_hosts"],
    )  # no key_file, no password: only the agent can log in
    assert await whoami(config) == (lab["user"], 1)


async def test_no_credentials_is_an_authentication_error(lab: dict[str, Any]) -> None:
    config = ClusterConfig(
        cluster_host=lab["host"],
        cluster_port=lab["ports"]["ssh"],
        username=lab["user"],
        known_hosts=lab["known_hosts"],
    )
    with pytest.raises(AuthenticationError, match=lab["user"]):
        await whoami(config)


def write_ssh_config(lab: dict[str, Any], text: str) -> None:
    ssh_dir = Path.home() / ".ssh"  # the test's private HOME
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    (ssh_dir / "config").write_text(text)


async def test_ssh_config_host_alias(lab: dict[str, Any], remote_dir: str) -> None:
    write_ssh_config(
        lab,
        f"Host labalias\n  HostName {lab['host']}\n  Port {lab['ports']['ssh']}\n"
        f"  User {lab['user']}\n  IdentityFile {lab['key_file']}\n"
        f"  UserKnownHostsFile {lab['known_hosts']}\n",
    )
    # only the alias: host name, port, user, key and known_hosts come from ~/.ssh/config
    config = ClusterConfig(cluster_type="ssh", cluster_host="labalias", remote_work_dir=remote_dir)
    assert await whoami(config) == (lab["user"], 1)
    async with Client(config) as client:
        assert await client.submit(pow, 3, 3) == 27


async def test_proxy_jump_through_the_lab_sshd(lab: dict[str, Any], logins: LoginCounter) -> None:
    # OpenSSH refuses a jump host equal to the target, so jump via 127.0.0.1 to localhost.
    write_ssh_config(
        lab,
        f"Host jumphost\n  HostName {lab['host']}\n  Port {lab['ports']['ssh']}\n"
        f"  User {lab['user']}\n  IdentityFile {lab['key_file']}\n"
        f"  UserKnownHostsFile {lab['known_hosts']}\n"
        f"Host behind\n  HostName localhost\n  Port {lab['ports']['ssh']}\n"
        f"  User {lab['user']}\n  IdentityFile {lab['key_file']}\n"
        f"  UserKnownHostsFile {lab['known_hosts']}\n  ProxyJump jumphost\n",
    )
    assert await whoami(ClusterConfig(cluster_host="behind")) == (lab["user"], 1)
    assert logins.count(lab["user"]) >= 2  # the jump host and the target both logged it
    config = ClusterConfig(
        cluster_host="localhost",
        cluster_port=lab["ports"]["ssh"],
        username=lab["user"],
        key_file=lab["key_file"],
        known_hosts=lab["known_hosts"],
        proxy_jump="jumphost",
    )
    assert await whoami(config) == (lab["user"], 1)


def other_known_hosts(lab: dict[str, Any], tmp_path: Path) -> Path:
    """known_hosts that records a DIFFERENT key for the lab's address."""
    key = tmp_path / "otherkey"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    public = (tmp_path / "otherkey.pub").read_text().split()[:2]
    path = tmp_path / "known_hosts"
    path.write_text(f"[{lab['host']}]:{lab['ports']['ssh']} {' '.join(public)}\n")
    return path


async def test_changed_host_key_is_refused_and_nothing_runs(
    lab: dict[str, Any], remote_dir: str, tmp_path: Path
) -> None:
    known = other_known_hosts(lab, tmp_path)
    config = ssh_config(lab, remote_dir, known_hosts=str(known), accept_new_host_keys=True)
    async with Client(config) as client:
        with pytest.raises(HostKeyError, match="CHANGED") as info:
            await client.submit(pow, 2, 2)
    assert f"{lab['host']}:{lab['ports']['ssh']}" in str(info.value)
    assert "ssh-keygen -R" in str(info.value)
    assert not (Path(lab["home"]) / remote_dir.removeprefix("~/")).exists()


async def test_unknown_host_key_is_refused_unless_opted_in(
    lab: dict[str, Any], remote_dir: str, tmp_path: Path
) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    config = ssh_config(lab, remote_dir, known_hosts=str(empty))
    with pytest.raises(HostKeyError, match="not known") as info:
        await whoami(config)
    assert "ssh-keyscan" in str(info.value) and "accept_new_host_keys" in str(info.value)
    assert not (Path(lab["home"]) / remote_dir.removeprefix("~/")).exists()
    # explicit opt-in: trusted on first use and recorded, then verified like any other
    assert await whoami(
        ssh_config(lab, remote_dir, known_hosts=str(empty), accept_new_host_keys=True)
    ) == (lab["user"], 1)
    recorded = empty.read_text()
    assert recorded.startswith(f"[{lab['host']}]:{lab['ports']['ssh']} ssh-ed25519 ")
    assert await whoami(ssh_config(lab, remote_dir, known_hosts=str(empty))) == (lab["user"], 1)


async def test_unreachable_host_names_host_port_and_user(lab: dict[str, Any]) -> None:
    from clustrix import ClusterConnectionError

    config = ClusterConfig(
        cluster_host=lab["host"], cluster_port=1, username="someone", connect_timeout=5
    )
    with pytest.raises(ClusterConnectionError) as info:
        await whoami(config)
    assert "127.0.0.1:1" in str(info.value) and "someone" in str(info.value)
    with pytest.raises(ClusterConnectionError, match="resolve"):
        await whoami(
            ClusterConfig(cluster_host="no-such-host.invalid", username="x", connect_timeout=5)
        )


@pytest.mark.parametrize("problem", ["missing", "directory", "not a key"])
async def test_a_bad_key_file_names_the_setting(
    problem: str, lab: dict[str, Any], remote_dir: str, tmp_path: Path
) -> None:
    key = tmp_path / "id_missing"
    if problem == "directory":
        key = tmp_path
    elif problem == "not a key":
        key = tmp_path / "id_garbage"
        key.write_text("this is not a private key\n")
    config = ssh_config(lab, remote_dir, key_file=str(key))
    with pytest.raises(AuthenticationError) as info:
        async with Client(config) as client:
            await client.submit(abs, -1)
    message = str(info.value)
    assert f"key_file={str(key)!r}" in message
    assert f"{lab['user']}@{lab['host']}:{lab['ports']['ssh']}" in message
    assert not Path(lab["home"], remote_dir.removeprefix("~/")).exists()  # nothing staged


def sshd_children_of(lab: dict[str, Any], ports: list[int]) -> list[int]:
    """Pids of the sshd processes serving our client ports (found via ss)."""
    out = subprocess.run(
        ["ss", "-tnpH", "state", "established"], capture_output=True, text=True, check=True
    ).stdout
    pids = set()
    for line in out.splitlines():
        fields = line.split()
        if len(fields) < 5 or not fields[2].endswith(f":{lab['ports']['ssh']}"):
            continue
        if not any(fields[3].endswith(f":{port}") for port in ports):
            continue
        pids.update(int(p.split("=")[1]) for p in fields[-1].split(",") if p.startswith("pid="))
    return sorted(pids)


async def test_connection_killed_mid_sweep_loses_and_duplicates_nothing(
    lab: dict[str, Any], remote_dir: str
) -> None:
    config = ssh_config(lab, remote_dir, job_poll_interval=0.5)
    ledger = f"{lab['home']}/{remote_dir.removeprefix('~/')}-ledger"

    def record(x: int) -> int:
        import time

        with open(ledger, "a") as handle:
            handle.write(f"{x}\n")
        time.sleep(0.1)
        return x * 10

    async with Client(config) as client:
        sweep = client.map(record, range(40), max_concurrent=2, chunksize=1, progress=False)
        while sum(job.done() for job in sweep) < 5:
            await asyncio.sleep(0.05)
        transport = next(iter(client._transports.values()))
        victims = sshd_children_of(lab, transport.local_ports)
        assert victims, "found no sshd process serving this client"
        for pid in victims:
            os.kill(pid, signal.SIGKILL)
        assert await sweep == [x * 10 for x in range(40)]
        assert transport.logins == 2
    lines = Path(ledger).read_text().split()
    Path(ledger).unlink()
    assert sorted(map(int, lines)) == list(range(40)), "a task ran twice or never"


def test_ssh_tools_present() -> None:
    for tool in ("ssh-agent", "ssh-add", "ssh-keygen", "ss"):
        assert shutil.which(tool), tool
