"""``clustrix render``, bad usage and ``--help`` through the console script."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from .conftest import Cli

MODULE = textwrap.dedent(
    """
    from clustrix import ClusterConfig, cluster

    # port 1 refuses every connection: rendering must never try to log in
    NOWHERE = ClusterConfig(cluster_type="slurm", cluster_host="127.0.0.1", cluster_port=1)

    @cluster(cores=4, memory="2GB", time="00:10:00", partition="debug",
             extra={"qos": "low"}, max_concurrent=3, config=NOWHERE)
    def simulate(x):
        return x * 2

    def plain(x):
        return x
    """
)


@pytest.fixture
def module(isolated_config: Path) -> Path:
    path = isolated_config / "cli_render_mod.py"
    path.write_text(MODULE)
    return path


def render(cli: Cli, *args: str) -> str:
    done = cli("render", "cli_render_mod:simulate", *args)
    assert done.returncode == 0, done.stderr
    assert "dry run, nothing submitted" in done.stderr
    return done.stdout


def test_render_slurm(cli: Cli, module: Path) -> None:
    script = render(cli)  # cluster_type from the function's bound config
    for line in (
        "#SBATCH --cpus-per-task=4",
        "#SBATCH --mem=2G",
        "#SBATCH --time=00:10:00",
        "#SBATCH --partition=debug",
        "#SBATCH --qos=low",
        "#SBATCH --job-name=<key>",
    ):
        assert line in script.splitlines(), line
    assert "RUN_DIR=<remote_work_dir>/runs/<key>" in script
    assert "--array" not in script
    sweep = render(cli, "--tasks", "10")
    assert "#SBATCH --array=0-9%3" in sweep.splitlines()


def test_render_sge_pbs_ssh(cli: Cli, module: Path) -> None:
    sge = render(cli, "--type", "sge", "--tasks", "5").splitlines()
    assert "#$ -pe smp 4" in sge and "#$ -l h_rt=0:10:00" in sge and "#$ -t 1-5" in sge
    assert "#$ -q debug" in sge and "#$ -l h_vmem=512M" in sge  # memory per slot
    pbs = render(cli, "--type", "pbs").splitlines()
    assert "#PBS -l nodes=1:ppn=4" in pbs and "#PBS -l walltime=00:10:00" in pbs
    assert "#PBS -q debug" in pbs
    ssh = render(cli, "--type", "ssh")
    assert "#SBATCH" not in ssh and "#PBS" not in ssh and "#$" not in ssh
    assert "RUN_DIR=<remote_work_dir>/runs/<key>" in ssh


def test_render_with_a_profile(cli: Cli, module: Path, isolated_config: Path) -> None:
    (isolated_config / "clustrix.yml").write_text(
        "profiles:\n  big:\n    cluster_type: sge\n    sge_pe: mpi\n"
        "    module_loads: [python/3.11]\n"
    )
    script = render(cli, "--profile", "big")
    assert "#$ -pe mpi 4" in script and "module load python/3.11" in script


def test_render_problems(cli: Cli, module: Path) -> None:
    for target, message in (
        ("cli_render_mod:plain", "not a @cluster-decorated function"),
        ("cli_render_mod:missing", "has no attribute 'missing'"),
        ("no_such_module_xyz:f", "cannot import 'no_such_module_xyz'"),
    ):
        done = cli("render", target)
        assert done.returncode == 1, target
        assert message in done.stderr and "Traceback" not in done.stderr
    local = cli("render", "cli_render_mod:simulate", "--profile", "nope")
    assert local.returncode == 1 and "unknown profile 'nope'" in local.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["nosuchcommand"],
        ["jobs", "--state", "SLEEPING"],
        ["jobs", "--since", "yesterday-ish"],
        ["jobs", "--limit", "0"],
        ["status"],
        ["render", "no-colon"],
        ["render", "m:f", "--type", "kubernetes"],
        ["config", "show", "--bogus"],
    ],
)
def test_bad_usage_exits_2(cli: Cli, args: list[str]) -> None:
    done = cli(*args)
    assert done.returncode == 2, (args, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    "args",
    [[], ["jobs"], ["status"], ["config"], ["config", "show"], ["config", "check"], ["render"]],
)
def test_help_of_every_command(cli: Cli, args: list[str]) -> None:
    done = cli(*args, "--help")
    assert done.returncode == 0, done.stderr
    assert "Usage: clustrix" in done.stdout
