"""The `ssh` backend and the SSH transport, against an in-process SSH server."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from clustrix import (
    AuthenticationError,
    Client,
    HostKeyError,
    JobCancelledError,
    JobFailedError,
    JobState,
    JobTimeoutError,
)
from clustrix import fs as cluster_fs

from ..fakesched.sshd import FakeSSHServer
from .conftest import FakeFactory, group_alive, ssh_config_for, until
from .tasks import Boom, exit_hard, explode, nap, report, square


async def test_ssh_backend_runs_jobs_and_sweeps(sshd: FakeSSHServer, remote_root: Path) -> None:
    config = ssh_config_for("ssh", sshd, remote_root, environment_variables={"CX_FAKE": "1"})
    async with Client(config) as client:
        single = client.submit(report, 7, "CX_FAKE")
        sweep = client.map(square, range(6), progress=False)
        seen, squares = await asyncio.gather(single, sweep)
        assert await single.stdout() == "stdout of 7\n"
    assert squares == [x * x for x in range(6)]
    assert seen["env"] == {"CX_FAKE": "1"}
    assert seen["modes"] == (0o700, 0o700, 0o700)
    assert not Path(seen["cwd"]).exists()
    host, _, pid = str(single.job_id).rpartition(":")
    assert host == "127.0.0.1" and pid.isdigit()
    assert sshd.logins == 1  # one pooled connection for everything


async def test_ssh_backend_failures_and_cancel(sshd: FakeSSHServer, remote_root: Path) -> None:
    async with Client(ssh_config_for("ssh", sshd, remote_root)) as client:
        boom = client.submit(explode, 1)
        hard = client.submit(exit_hard, 6)
        slow = client.options(time="00:00:02").submit(nap, 30)
        running = client.submit(nap, 60)
        await until(lambda: running.state is JobState.RUNNING)
        await running.cancel()
        outcomes = await asyncio.gather(boom, hard, slow, running, return_exceptions=True)
    assert [type(o) for o in outcomes] == [Boom, JobFailedError, JobTimeoutError, JobCancelledError]
    assert outcomes[1].exit_code == 6
    pid = int(str(running.job_id).rpartition(":")[2])
    assert not group_alive(pid)


async def test_slurm_over_ssh_finds_a_submission_whose_answer_was_lost(
    sshd: FakeSSHServer, remote_root: Path, fake_factory: FakeFactory
) -> None:
    """The connection drops after sbatch ran: clustrix looks the job up by name once."""
    slurm = fake_factory("slurm")
    sshd.drop_after("sbatch")
    async with Client(ssh_config_for("slurm", sshd, remote_root)) as client:
        job = client.submit(square, 8)
        assert await asyncio.wait_for(job, 60) == 64
    (record,) = slurm.jobs()  # submitted exactly once
    assert job.job_id == record["master"]
    assert len(slurm.calls("sbatch")) == 1
    lookups = [c for c in slurm.calls("squeue") if any(a.startswith("--name=") for a in c)]
    assert len(lookups) == 1
    assert sshd.logins == 2  # the lost connection was opened again


async def test_filesystem_helpers_over_ssh(
    sshd: FakeSSHServer, remote_root: Path, tmp_path: Path
) -> None:
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "a.txt").write_text("hello")
    (tree / "sub" / "b.txt").write_text("world!")
    config = ssh_config_for("ssh", sshd, remote_root)
    assert sorted(await cluster_fs.ls(str(tree), config)) == ["a.txt", "sub"]
    assert await cluster_fs.exists(str(tree / "a.txt"), config)
    assert not await cluster_fs.exists(str(tree / "nope"), config)
    assert await cluster_fs.isdir(str(tree / "sub"), config)
    assert await cluster_fs.isfile(str(tree / "a.txt"), config)
    info = await cluster_fs.stat(str(tree / "a.txt"), config)
    assert info.size == 5 and not info.is_dir
    assert sorted(await cluster_fs.find("*.txt", str(tree), config)) == ["a.txt", "sub/b.txt"]
    assert await cluster_fs.glob("*.txt", str(tree), config) == ["a.txt"]
    usage = await cluster_fs.du(str(tree), config)
    assert usage.total_bytes >= 11 and usage.file_count == 2
    assert await cluster_fs.count_files(str(tree), config=config) == 2


async def test_an_unknown_host_key_is_refused_unless_accepted(
    sshd: FakeSSHServer, remote_root: Path, tmp_path: Path
) -> None:
    known = tmp_path / "empty_known_hosts"
    known.write_text("")
    refused = ssh_config_for("ssh", sshd, remote_root, known_hosts=str(known))
    async with Client(refused) as client:
        with pytest.raises(HostKeyError, match="is not known"):
            await client.submit(square, 2)
    trusting = ssh_config_for(
        "ssh", sshd, remote_root, known_hosts=str(known), accept_new_host_keys=True
    )
    async with Client(trusting) as client:
        assert await client.submit(square, 2) == 4
    assert f"[127.0.0.1]:{sshd.port}" in known.read_text()


async def test_a_wrong_key_is_an_authentication_error(
    sshd: FakeSSHServer, remote_root: Path, tmp_path: Path
) -> None:
    import asyncssh

    other = tmp_path / "other_key"
    other.write_bytes(asyncssh.generate_private_key("ssh-ed25519").export_private_key())
    os.chmod(other, 0o600)
    config = ssh_config_for("ssh", sshd, remote_root, key_file=str(other))
    async with Client(config) as client:
        with pytest.raises(AuthenticationError):
            await client.submit(square, 2)


async def test_a_cancelled_command_ends_remotely_and_keeps_the_connection(
    sshd: FakeSSHServer, remote_root: Path, tmp_path: Path
) -> None:
    """Cancelling a running command (the result waiter does it on every new submission)
    signals the remote process and closes only its channel: no new login follows."""
    from clustrix.transport.ssh import SSHTransport

    marker, ready = tmp_path / "terminated", tmp_path / "ready"
    script = f"trap 'echo TERM > {marker}; exit 143' TERM; touch {ready}; sleep 30 & wait"
    transport = SSHTransport(ssh_config_for("ssh", sshd, remote_root))
    try:
        running = asyncio.ensure_future(transport.run(["sh", "-c", script]))
        await until(ready.exists)  # the trap is set
        running.cancel()
        with pytest.raises(asyncio.CancelledError):
            await running
        await until(marker.exists)
        assert (await transport.run(["echo", "still here"])).stdout == "still here\n"
    finally:
        await transport.aclose()
    assert sshd.logins == 1


async def test_the_environment_is_set_up_once_per_run_and_its_failure_ends_every_element(
    sshd: FakeSSHServer, remote_root: Path, fake_modules: Path
) -> None:
    """The ssh driver loads modules once, then forks the elements: a sweep of three
    loads once; when the load fails, each element fails with its message."""
    config = ssh_config_for("ssh", sshd, remote_root, module_loads=["gcc/12"])
    async with Client(config) as client:
        assert await client.map(square, range(3), chunksize=1, progress=False) == [0, 1, 4]
    # the remote Python's version check, then the run's driver: not once per element
    assert fake_modules.read_text().splitlines() == ["load gcc/12"] * 2
    config = ssh_config_for("ssh", sshd, remote_root, module_loads=["nosuch"])
    async with Client(config) as client:
        sweep = client.map(square, range(3), chunksize=1, progress=False)
        outcomes = await asyncio.gather(*sweep, return_exceptions=True)
    for outcome in outcomes:
        assert isinstance(outcome, JobFailedError)
        assert outcome.exit_code == 97
        assert "module load failed: nosuch" in outcome.stderr_tail
