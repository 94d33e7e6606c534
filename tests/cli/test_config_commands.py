"""``clustrix config show`` and ``clustrix config check`` through the console script."""

from __future__ import annotations

import json
import secrets
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from .conftest import Cli


def write_config(where: Path, data: dict[str, Any]) -> Path:
    path = where / "clustrix.yml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_config_show_names_each_source(cli: Cli, isolated_config: Path) -> None:
    path = write_config(
        isolated_config,
        {
            "cluster_type": "slurm",
            "cluster_host": "login.example.org",
            "password": "hunter2-secret",
            "profiles": {"gpu": {"default_partition": "gpu", "default_cores": 8}},
        },
    )
    cli.env.update(CLUSTRIX_USERNAME="ada", CLUSTRIX_DEFAULT_CORES="2")
    done = cli("config", "show", "--profile", "gpu", "--json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    fields = data["fields"]
    assert data["files"] == [str(path)] and data["profile"] == "gpu"
    assert fields["cluster_type"] == {"value": "slurm", "source": f"file {path}"}
    assert fields["default_partition"] == {"value": "gpu", "source": f"profile gpu ({path})"}
    # the profile (a file layer) wins over the environment variable
    assert fields["default_cores"] == {"value": 8, "source": f"profile gpu ({path})"}
    assert fields["username"] == {"value": "ada", "source": "env CLUSTRIX_USERNAME"}
    assert fields["cluster_port"] == {"value": 22, "source": "default"}
    assert fields["profile"]["source"] == "option --profile"
    assert fields["password"] == {"value": "********", "source": f"file {path}"}
    assert "hunter2" not in done.stdout
    table = cli("config", "show", "--profile", "gpu")
    assert table.returncode == 0, table.stderr
    assert "hunter2" not in table.stdout and "********" in table.stdout
    row = next(line for line in table.stdout.splitlines() if "username" in line)
    assert "ada" in row and "env CLUSTRIX_USERNAME" in row
    row = next(line for line in table.stdout.splitlines() if "default_partition" in line)
    assert "profile gpu" in row


def test_config_show_bad_config_is_a_one_line_error(cli: Cli, isolated_config: Path) -> None:
    write_config(isolated_config, {"cluster_typo": "slurm"})
    done = cli("config", "show")
    assert done.returncode == 1
    assert "unknown field 'cluster_typo'" in done.stderr and "Traceback" not in done.stderr
    write_config(isolated_config, {"cluster_type": "slurm", "profiles": {"gpu": {}}})
    done = cli("config", "show", "--profile", "nope")
    assert done.returncode == 1 and "unknown profile 'nope'" in done.stderr


def test_config_check_local(cli: Cli) -> None:
    done = cli("config", "check")
    assert done.returncode == 0, done.stderr
    assert "local" in done.stdout and "nothing to log in to" in done.stdout


def lab_fields(lab: dict[str, Any], kind: str, work: str) -> dict[str, Any]:
    return {
        "cluster_type": kind,
        "cluster_host": lab["host"],
        "cluster_port": lab["ports"][kind],
        "username": lab["user"],
        "key_file": lab["key_file"],
        "known_hosts": lab["known_hosts"],
        "remote_work_dir": work,
    }


@pytest.fixture
def lab_work(lab: dict[str, Any]) -> Any:
    name = f".clustrix-cli-{secrets.token_hex(4)}"
    yield name
    shutil.rmtree(Path(lab["home"]) / name, ignore_errors=True)


@pytest.mark.lab
@pytest.mark.parametrize("kind", ["ssh", "slurm"])
def test_config_check_on_the_lab(
    cli: Cli, isolated_config: Path, lab: dict[str, Any], lab_work: str, kind: str
) -> None:
    write_config(isolated_config, lab_fields(lab, kind, f"~/{lab_work}/deeper"))
    done = cli("config", "check")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "all checks passed" in done.stdout
    assert f"logged in to {lab['user']}@{lab['host']}:{lab['ports'][kind]}" in done.stdout
    assert "Python 3." in done.stdout
    if kind == "slurm":
        assert "sbatch, squeue, sacct" in done.stdout
    # the work directory was created (mode 0700), as a submission would
    assert (Path(lab["home"]) / lab_work / "deeper").is_dir()


@pytest.mark.lab
def test_config_check_wrong_port(
    cli: Cli, isolated_config: Path, lab: dict[str, Any], lab_work: str
) -> None:
    fields = lab_fields(lab, "slurm", f"~/{lab_work}")
    write_config(isolated_config, {**fields, "profiles": {"broken": {"cluster_port": 1}}})
    done = cli("config", "check", "--profile", "broken")
    assert done.returncode == 1, done.stdout + done.stderr
    out = " ".join(done.stdout.split())
    assert "refused the connection" in out
    assert "check cluster_host and cluster_port" in out and "ssh -p 1" in out
    assert "skipped: not logged in" in out and "Traceback" not in done.stderr
    assert not (Path(lab["home"]) / lab_work).exists()


@pytest.mark.lab
def test_config_check_missing_scheduler_and_python(
    cli: Cli, isolated_config: Path, lab: dict[str, Any], lab_work: str
) -> None:
    fields = lab_fields(lab, "slurm", f"~/{lab_work}")
    write_config(isolated_config, {**fields, "python_executable": "python2.4-nowhere"})
    done = cli("config", "check")
    assert done.returncode == 1
    out = " ".join(done.stdout.split())
    assert "cannot run python_executable='python2.4-nowhere'" in out
    assert "set python_executable to a Python 3." in out
