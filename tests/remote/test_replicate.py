"""environment="replicate" on the lab (sshd + Slurm): build once, reuse, lock, ship."""

from __future__ import annotations

import asyncio
import os
import pickle
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from clustrix import Client, ClusterConfig, EnvironmentMismatchError
from clustrix._environment import EnvironmentSpec, environment_spec
from clustrix.backends.remote.area import RemoteArea
from clustrix.backends.remote.envbuild import EnvironmentBuilder
from clustrix.transport.ssh import SSHTransport

from .conftest import ssh_config


def use_rich(x: int) -> tuple[int, str]:
    import rich
    from rich.text import Text

    return x, f"{Text('ok').plain} {rich.__file__}"


def replicate(lab: dict[str, Any], remote_dir: str, kind: str = "ssh") -> ClusterConfig:
    return ssh_config(lab, remote_dir, cluster_type=kind, environment="replicate")


def build_count(lab: dict[str, Any], remote_dir: str) -> int:
    envs = Path(lab["home"]) / remote_dir.removeprefix("~/") / "envs"
    return sum(p.read_text().count("clustrix: building") for p in envs.glob("*.log"))


def test_the_lab_python_lacks_the_package(lab: dict[str, Any]) -> None:
    assert subprocess.run([lab["remote_python"], "-c", "import rich"]).returncode != 0


async def test_a_local_package_becomes_importable_and_is_built_once(
    lab: dict[str, Any], remote_dir: str
) -> None:
    started = time.monotonic()
    async with Client(replicate(lab, remote_dir)) as client:
        value, where = await client.submit(use_rich, 1)
        cold = time.monotonic() - started
        assert value == 1 and where.startswith("ok ") and "/envs/" in where
        again = time.monotonic()
        assert [v for v, _ in await client.map(use_rich, range(5), progress=False)] == [
            0,
            1,
            2,
            3,
            4,
        ]
        warm = time.monotonic() - again
    async with Client(replicate(lab, remote_dir, "slurm")) as client:  # another client
        value, _ = await client.submit(use_rich, 2)
        assert value == 2
    assert build_count(lab, remote_dir) == 1
    print(f"cold build + call {cold:.1f} s, warm sweep {warm:.1f} s")


async def test_twenty_concurrent_first_calls_build_once(
    lab: dict[str, Any], remote_dir: str
) -> None:
    config = replicate(lab, remote_dir)
    async with Client(config) as first, Client(config) as second:  # two clients, two pools
        jobs = [c.submit(use_rich, i) for i in range(10) for c in (first, second)]
        results = await asyncio.gather(*jobs)
    assert sorted(v for v, _ in results) == sorted(list(range(10)) * 2)
    assert build_count(lab, remote_dir) == 1


async def test_a_stale_lock_is_broken(lab: dict[str, Any], remote_dir: str) -> None:
    spec = await asyncio.to_thread(environment_spec, [pickle.dumps("rich")])
    root = Path(lab["home"]) / remote_dir.removeprefix("~/")
    lock = root / "envs" / f"{spec.digest}.lock"
    lock.mkdir(parents=True)
    hostname = subprocess.run(["hostname"], capture_output=True, text=True).stdout.strip()
    (lock / "owner").write_text(f"{hostname} 999999 {int(time.time())}\n")  # died builder
    subprocess.run(["chown", "-R", f"{lab['user']}:{lab['user']}", str(root)], check=True)
    config = replicate(lab, remote_dir)
    transport = SSHTransport(config)
    try:
        builder = EnvironmentBuilder(RemoteArea(transport, config))
        env = await builder.ensure(spec)
    finally:
        await transport.aclose()
    assert builder.builds == 1 and (Path(env) / "READY").exists()
    assert "breaking the stale lock" in (root / "envs" / f"{spec.digest}.log").read_text()
    assert not lock.exists()


async def test_a_failed_build_shows_pips_error(lab: dict[str, Any], remote_dir: str) -> None:
    spec = EnvironmentSpec("3.11", ("clustrix-no-such-package==9.9.9",))
    config = replicate(lab, remote_dir)
    transport = SSHTransport(config)
    try:
        with pytest.raises(EnvironmentMismatchError) as info:
            await EnvironmentBuilder(RemoteArea(transport, config)).ensure(spec)
    finally:
        await transport.aclose()
    message = str(info.value)
    assert spec.digest in message and ".log" in message
    assert "clustrix-no-such-package" in message  # pip's own words


def glob_inside_the_job(path: str) -> list[str]:
    import clustrix

    config = clustrix.ClusterConfig(cluster_type="slurm", cluster_host="login.invalid")
    return clustrix.cluster_glob("*.txt", path, config)


async def test_clustrix_from_a_checkout_is_shipped_and_works_inside_the_job(
    lab: dict[str, Any], remote_dir: str, tmp_path: Path
) -> None:
    """clustrix is installed here in editable mode from this checkout: it is built into a
    wheel, shipped, and a job calling a filesystem helper acts on its own machine."""
    folder = Path(lab["home"]) / remote_dir.removeprefix("~/") / "inputs"
    folder.mkdir(parents=True)
    for name in ("a.txt", "b.txt", "c.csv"):
        (folder / name).write_text(name)
    subprocess.run(["chown", "-R", f"{lab['user']}:{lab['user']}", str(folder.parent)], check=True)
    async with Client(replicate(lab, remote_dir)) as client:
        assert await client.submit(glob_inside_the_job, str(folder)) == ["a.txt", "b.txt"]
    spec = await asyncio.to_thread(environment_spec, [pickle.dumps("clustrix")])
    assert any(name.startswith("clustrix-") for name, _ in spec.wheels)


def look_around(config: ClusterConfig) -> dict[str, Any]:
    """The filesystem helpers with relative paths, as a user's job would call them."""
    import os

    import clustrix

    os.chdir("/tmp")  # wherever the job happens to run: relative paths must not care
    return {
        "glob": clustrix.cluster_glob("*.csv", "input/", config),
        "find": clustrix.cluster_find("*.csv", "input", config),
        "ls": clustrix.cluster_ls("input", config),
        "stat": clustrix.cluster_stat("input/a.csv", config),
        "stat_dir": clustrix.cluster_stat("input/sub", config),
        "exists": clustrix.cluster_exists("input/sub/c.csv", config),
        "missing": clustrix.cluster_exists("input/nothing.csv", config),
        "isdir": clustrix.cluster_isdir("input/sub", config),
        "du": clustrix.cluster_du("input", config),
        "count": clustrix.cluster_count_files("input", "*.csv", config),
    }


async def client_side(config: ClusterConfig) -> dict[str, Any]:
    from clustrix import fs

    return {
        "glob": await fs.glob("*.csv", "input/", config),
        "find": await fs.find("*.csv", "input", config),
        "ls": await fs.ls("input", config),
        "stat": await fs.stat("input/a.csv", config),
        "stat_dir": await fs.stat("input/sub", config),
        "exists": await fs.exists("input/sub/c.csv", config),
        "missing": await fs.exists("input/nothing.csv", config),
        "isdir": await fs.isdir("input/sub", config),
        "du": await fs.du("input", config),
        "count": await fs.count_files("input", "*.csv", config),
    }


async def test_relative_paths_mean_the_same_files_in_a_job_as_from_the_client(
    lab: dict[str, Any], remote_dir: str
) -> None:
    """Issue 9: `cluster_glob("*.csv", "input/", config)` inside a Slurm job names the
    files the same call names from the client (remote_work_dir/input)."""
    root = Path(lab["home"]) / remote_dir.removeprefix("~/")
    (root / "input" / "sub").mkdir(parents=True)
    for name in ("a.csv", "b.csv", "notes.txt", "sub/c.csv"):
        (root / "input" / name).write_text(name * 3)
    for path in [root / "input", *(root / "input").rglob("*")]:
        os.utime(path, (1_700_000_000, 1_700_000_000))  # SFTP v3 carries whole seconds
    subprocess.run(["chown", "-R", f"{lab['user']}:{lab['user']}", str(root)], check=True)
    config = replicate(lab, remote_dir, "slurm")
    async with Client(config) as client:
        here = await client_side(config)
        there = await client.submit(look_around, config)
    assert here["glob"] == ["a.csv", "b.csv"] and here["find"] == ["a.csv", "b.csv", "sub/c.csv"]
    assert there == here


async def test_offline_clusters_get_every_wheel_from_here(
    lab: dict[str, Any], remote_dir: str
) -> None:
    """replicate_offline: wheels are downloaded here, shipped, installed with --no-index."""
    config = ssh_config(lab, remote_dir, environment="replicate", replicate_offline=True)
    async with Client(config) as client:
        value, where = await client.submit(use_rich, 7)
    assert value == 7 and "/envs/" in where
    envs = Path(lab["home"]) / remote_dir.removeprefix("~/") / "envs"
    (source,) = envs.glob("*.src")
    shipped = {p.name.split("-")[0].lower() for p in (source / "wheels").glob("*.whl")}
    assert {"rich", "pygments", "markdown_it_py", "mdurl"} <= shipped
    log = next(envs.glob("*.log")).read_text()
    assert "Downloading" not in log  # nothing came from an index on the cluster


def prefix() -> str:
    import sys

    return sys.prefix


@pytest.mark.parametrize("form", ["venv:~/{}", "~/{}"])
async def test_an_existing_venv_runs_the_task(
    lab: dict[str, Any], remote_dir: str, form: str
) -> None:
    name = f"{remote_dir.removeprefix('~/')}-venv"
    venv = Path(lab["home"]) / name
    subprocess.run(
        ["runuser", "-u", lab["user"], "--", lab["remote_python"], "-m", "venv", str(venv)],
        check=True,
    )
    try:
        config = ssh_config(lab, remote_dir, environment=form.format(name))
        async with Client(config) as client:
            assert await client.submit(prefix) == str(venv)
    finally:
        subprocess.run(["rm", "-rf", str(venv)], check=True)
