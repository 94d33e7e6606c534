"""Filesystem helpers on this machine (cluster_type='local' and inside a job)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

import clustrix
from clustrix import ClusterConfig, ClusterConnectionError, ConfigError, cluster
from clustrix import fs as cfs

LOCAL = ClusterConfig(cluster_type="local")


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "data dir 'q'"
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / "a.txt").write_text("hello")
    (root / "b.csv").write_text("1,2,3\n")
    (root / "sub" / "c.txt").write_text("x" * 100)
    (root / "sub" / "deeper" / "d.txt").write_text("")
    (root / "sub" / "ünï cødé.txt").write_text("u")
    (root / "link.txt").symlink_to(root / "a.txt")
    return root


def test_ls_is_sorted_names(tree: Path) -> None:
    assert clustrix.cluster_ls(str(tree), LOCAL) == ["a.txt", "b.csv", "link.txt", "sub"]


def test_find_is_recursive_relative_and_sorted(tree: Path) -> None:
    assert clustrix.cluster_find("*.txt", str(tree), LOCAL) == [
        "a.txt",
        "link.txt",
        "sub/c.txt",
        "sub/deeper/d.txt",
        "sub/ünï cødé.txt",
    ]


def test_glob_matches_only_in_the_directory_itself(tree: Path) -> None:
    assert clustrix.cluster_glob("*.txt", str(tree), LOCAL) == ["a.txt", "link.txt"]


def test_stat_reports_fileinfo(tree: Path) -> None:
    os.chmod(tree / "a.txt", 0o640)
    info = clustrix.cluster_stat(str(tree / "a.txt"), LOCAL)
    assert (info.name, info.size, info.is_dir, info.is_file) == ("a.txt", 5, False, True)
    assert info.permissions == "640"
    assert abs(info.modified - (tree / "a.txt").stat().st_mtime) < 1e-6
    assert info.modified_datetime.timestamp() == pytest.approx(info.modified)
    assert clustrix.cluster_stat(str(tree / "sub"), LOCAL).is_dir


def test_exists_isdir_isfile(tree: Path) -> None:
    assert clustrix.cluster_exists(str(tree / "a.txt"), LOCAL)
    assert not clustrix.cluster_exists(str(tree / "nope"), LOCAL)
    assert clustrix.cluster_isdir(str(tree / "sub"), LOCAL)
    assert not clustrix.cluster_isdir(str(tree / "a.txt"), LOCAL)
    assert clustrix.cluster_isfile(str(tree / "a.txt"), LOCAL)
    assert not clustrix.cluster_isfile(str(tree / "sub"), LOCAL)


def test_du_and_count_do_not_follow_links(tree: Path) -> None:
    usage = clustrix.cluster_du(str(tree), LOCAL)
    link_size = os.lstat(tree / "link.txt").st_size
    assert usage.file_count == 6
    assert usage.total_bytes == 5 + 6 + 100 + 0 + 1 + link_size
    assert usage.total_mb == usage.total_bytes / 1024**2
    assert clustrix.cluster_count_files(str(tree), "*.txt", LOCAL) == 5
    assert clustrix.cluster_count_files(str(tree), config=LOCAL) == 6


def test_missing_and_wrong_kinds_of_paths(tree: Path) -> None:
    with pytest.raises(FileNotFoundError):
        clustrix.cluster_ls(str(tree / "missing"), LOCAL)
    with pytest.raises(FileNotFoundError):
        clustrix.cluster_du(str(tree / "missing"), LOCAL)
    with pytest.raises(FileNotFoundError):
        clustrix.cluster_stat(str(tree / "missing"), LOCAL)
    with pytest.raises(NotADirectoryError):
        clustrix.cluster_find("*", str(tree / "a.txt"), LOCAL)


def test_kubernetes_has_no_filesystem() -> None:
    with pytest.raises(ConfigError, match="kubernetes"):
        clustrix.cluster_ls(".", ClusterConfig(cluster_type="kubernetes"))


async def test_async_twins_match_the_sync_names(tree: Path) -> None:
    assert await cfs.ls(str(tree), LOCAL) == clustrix.cluster_ls(str(tree), LOCAL)
    assert await cfs.find("*.txt", str(tree), LOCAL) == clustrix.cluster_find(
        "*.txt", str(tree), LOCAL
    )
    assert await cfs.glob("*", str(tree), LOCAL) == clustrix.cluster_glob("*", str(tree), LOCAL)
    assert await cfs.du(str(tree), LOCAL) == clustrix.cluster_du(str(tree), LOCAL)
    assert await cfs.count_files(str(tree), "*.csv", LOCAL) == 1
    assert await cfs.exists(str(tree), LOCAL) and await cfs.isdir(str(tree), LOCAL)
    assert await cfs.isfile(str(tree / "a.txt"), LOCAL)
    assert (await cfs.stat(str(tree / "b.csv"), LOCAL)).size == 6


def test_global_config_is_the_default(tree: Path) -> None:
    assert clustrix.cluster_ls(str(tree)) == ["a.txt", "b.csv", "link.txt", "sub"]


async def test_helpers_inside_a_running_job_act_on_the_jobs_machine(tree: Path) -> None:
    """The seed's example: cluster_glob inside a @cluster function. The job's config
    names a Slurm cluster, yet inside the job the helper reads the local files."""
    slurm = ClusterConfig(cluster_type="slurm", cluster_host="login.invalid", connect_timeout=5)

    @cluster
    def list_inputs(path: str) -> list[str]:
        return clustrix.cluster_glob("*.txt", path, slurm)

    assert await list_inputs(str(tree)) == ["a.txt", "link.txt"]
    with pytest.raises(ClusterConnectionError):  # outside a job it goes to the cluster
        clustrix.cluster_glob("*.txt", str(tree), slurm)


async def test_relative_paths_inside_a_job_start_from_remote_work_dir(tree: Path) -> None:
    """Issue 9: `cluster_glob("*.csv", "input/", config)` inside a job means what it
    means from the client: remote_work_dir/input, not the job's working directory."""
    (tree / "input").mkdir()
    for name in ("x.csv", "y.csv", "z.txt"):
        (tree / "input" / name).write_text(name)
    slurm = ClusterConfig(
        cluster_type="slurm", cluster_host="login.invalid", remote_work_dir=str(tree)
    )

    @cluster
    def look(config: ClusterConfig) -> tuple[Any, ...]:
        os.chdir("/")  # a job's working directory is anywhere
        return (
            clustrix.cluster_glob("*.csv", "input/", config),
            clustrix.cluster_find("*.txt", "sub", config),
            clustrix.cluster_ls("input", config),
            clustrix.cluster_stat("input/x.csv", config).size,
            clustrix.cluster_exists("input/z.txt", config),
            clustrix.cluster_exists("input/nothing", config),
        )

    assert await look(slurm) == (
        ["x.csv", "y.csv"],
        ["c.txt", "deeper/d.txt", "ünï cødé.txt"],
        ["x.csv", "y.csv", "z.txt"],
        5,
        True,
        False,
    )
    home = ClusterConfig(cluster_type="sge", cluster_host="h.invalid", remote_work_dir="~/w")
    (Path.home() / "w").mkdir()
    (Path.home() / "w" / "in.csv").write_text("1")

    @cluster
    def look_home(config: ClusterConfig) -> list[str]:
        return clustrix.cluster_glob("*.csv", ".", config)

    assert await look_home(home) == ["in.csv"]  # `~` is the home where the job runs
