"""Any directory a user can create works as a run directory on the batch schedulers.

No directive line carries the log directory: the submit command does, as one argument
(the transport quotes it), or as the directory it submits from. The argv builders are
run here through ``sh -c`` exactly as the SSH transport sends them, with stand-in
``sbatch``/``qsub`` programs recording what they received; the PBS stand-in re-reads
its arguments with a shell, as Slurm's Torque wrappers do. Only what a scheduler
truly cannot take is refused, naming the scheduler (observed on the lab, see the
scheduler modules' docstrings).
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest

from clustrix._exceptions import ConfigError
from clustrix.schedulers import (
    ArraySpec,
    BatchResources,
    ScriptContext,
    get_scheduler,
    render_script,
)
from clustrix.schedulers import pbs as pbs_module
from clustrix.schedulers.pbs import check_wrapper_log_dir
from clustrix.schedulers.sge import GridEngine
from clustrix.schedulers.slurm import SLURM as slurm

sge = GridEngine()
pbs = pbs_module.TORQUE

ODD = 'My Project/it\'s a$b $(touch PWNED) `touch PWNED` ; & | <x> "q" %j,a:b'
SCHEDULERS = [("slurm", "torque"), ("sge", "torque"), ("pbs", "torque"), ("pbs", "pro")]
# A stand-in for sbatch/qsub: its working directory, then one argument per line.
RECORDER = '#!/bin/sh\n{ pwd; printf "%s\\n" "$@"; } >"$RECORD"\necho 42\n'
# Slurm's Torque wrappers paste their arguments into a shell command (perl backticks).
WRAPPER = '#!/bin/sh\nsh -c "qsub_inner $*"\n'


def resources(dialect: str, log_dir: str) -> BatchResources:
    """A three-element sweep logging to `log_dir` (the dialect matters to PBS only)."""
    return BatchResources("clx-odd", log_dir, array=ArraySpec(3))


@pytest.fixture
def odd_run(tmp_path: Path) -> tuple[Path, Path]:
    """A real run directory with an odd name (and its canary, which must never appear)."""
    canary = tmp_path / "pwned"
    run_dir = tmp_path / ODD.replace("PWNED", str(canary)) / "runs" / "r1"
    (run_dir / "logs").mkdir(parents=True)
    return run_dir, canary


@pytest.mark.parametrize(("scheduler", "dialect"), SCHEDULERS)
def test_no_directive_carries_the_run_directory(
    scheduler: str, dialect: str, odd_run: tuple[Path, Path]
) -> None:
    run_dir, _ = odd_run
    sched = get_scheduler(scheduler, dialect)  # type: ignore[arg-type]
    res = resources(dialect, f"{run_dir}/logs")
    ctx = ScriptContext(run_dir=str(run_dir), python="python3", runner=f"{run_dir}/runner.py")
    script = render_script(sched, res, ctx)
    directives = [line for line in script.splitlines() if line.startswith(sched.DIRECTIVE_PREFIX)]
    assert directives and not any("My Project" in line for line in directives)
    assert f"RUN_DIR={shlex.quote(str(run_dir))}" in script.splitlines()
    assert subprocess.run(["bash", "-n"], input=script, text=True, check=False).returncode == 0


def submit_through_a_shell(argv: list[str], canary: Path, wrapper: bool) -> list[str]:
    """Run `argv` as the SSH transport does (one shell command line) with stand-ins."""
    tmp_path = canary.parent
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    record = tmp_path / "record"
    for name in ("sbatch", "qsub", "qsub_inner"):
        path = bin_dir / name
        path.write_text(WRAPPER if wrapper and name == "qsub" else RECORDER)
        path.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "RECORD": str(record)}
    done = subprocess.run(
        ["sh", "-c", shlex.join(argv)], env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "42"
    assert not canary.exists()
    return record.read_text().splitlines()


def test_slurm_gets_the_log_paths_as_arguments(odd_run: tuple[Path, Path]) -> None:
    run_dir, canary = odd_run
    res = resources("torque", f"{run_dir}/logs")
    argv = slurm.submit_argv(f"{run_dir}/job-0.sh", res)
    _, *args = submit_through_a_shell(argv, canary, wrapper=False)
    stem = f"{run_dir}/logs".replace("%", "%%") + "/clx-odd.%A_%a"
    assert args == [
        "--parsable", f"--output={stem}.out", f"--error={stem}.err", f"{run_dir}/job-0.sh"
    ]  # fmt: skip


def test_sge_runs_the_job_in_the_log_directory(odd_run: tuple[Path, Path]) -> None:
    run_dir, canary = odd_run
    res = resources("torque", f"{run_dir}/logs/")
    argv = sge.submit_argv(f"{run_dir}/job-0.sh", res)
    _, *args = submit_through_a_shell(argv, canary, wrapper=False)
    assert args == ["-terse", "-wd", f"{run_dir}/logs", f"{run_dir}/job-0.sh"]
    assert "#$ -o clx-odd.$JOB_ID.$TASK_ID.out" in sge.directives(res)


@pytest.mark.parametrize("dialect", ["torque", "pro"])
def test_pbs_qsub_sees_no_text_of_the_user(dialect: str, odd_run: tuple[Path, Path]) -> None:
    run_dir, canary = odd_run
    res = resources(dialect, f"{run_dir}/logs")
    argv = pbs.submit_argv(f"{run_dir}/job-0.sh", res)
    cwd, *args = submit_through_a_shell(argv, canary, wrapper=True)
    assert cwd == f"{run_dir}/logs"
    assert args[-1] == "../job-0.sh" and args[:2] == ["-o", args[1]]
    assert all(re.fullmatch(r"[A-Za-z0-9_.^%/+-]+", arg) for arg in args), args


def test_a_percent_in_the_directory_is_doubled_for_slurm_only() -> None:
    res = BatchResources("clx-a1", "/home/a/100%/logs")
    assert "--output=/home/a/100%%/logs/clx-a1.%j.out" in slurm.submit_argv("/j.sh", res)
    assert slurm.log_paths(res, "18", 0)[0] == "/home/a/100%/logs/clx-a1.18.out"
    assert sge.submit_argv("/j.sh", res)[3] == "/home/a/100%/logs"


@pytest.mark.parametrize(
    ("check", "log_dir", "message"),
    [
        (lambda r: slurm.submit_argv("/j", r), "/home/a/back\\slash/logs", "Slurm .*backslash"),
        (slurm.directives, "/home/a/back\\slash/logs", "Slurm .*backslash"),
        (sge.directives, "/home/a/x$HOME/logs", r"Grid Engine .*'\$HOME'"),
        (lambda r: sge.submit_argv("/j", r), "/home/a/$USERx/logs", r"Grid Engine .*'\$USER'"),
        (sge.directives, "/home/a/new\nline/logs", "Grid Engine .*newline"),
        (
            lambda r: check_wrapper_log_dir(r.log_dir),
            "/home/a/100%/logs",
            "Torque wrappers",
        ),
        (
            lambda r: check_wrapper_log_dir(r.log_dir),
            "/home/a/b\\s/logs",
            "Torque wrappers",
        ),
        (lambda r: slurm.submit_argv("/j", r), "relative/logs", "absolute"),
        (lambda r: pbs.submit_argv("/j", r), "relative/logs", "absolute"),
    ],
)
def test_what_a_scheduler_cannot_take_is_refused_by_name(
    check: object, log_dir: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        check(BatchResources("clx-a1", log_dir))  # type: ignore[operator]


def test_what_the_schedulers_can_take_is_accepted() -> None:
    for log_dir in ("/home/a/a$b/c,d:e/logs", "/home/a/new\nline/logs", "/home/a/$(id)/logs"):
        res = BatchResources("clx-a1", log_dir)
        assert slurm.submit_argv("/j", res)[2].startswith(f"--output={log_dir}/")
        assert pbs.submit_argv(f"{log_dir}/../j", res)[4] == log_dir
    assert sge.submit_argv("/j", BatchResources("clx-a1", "/home/a/a$b/c,d:e"))[3] == (
        "/home/a/a$b/c,d:e"
    )
    assert check_wrapper_log_dir("/home/a/it's a$b $(x)/logs") == "/home/a/it's a$b $(x)/logs"


def test_pbs_refuses_a_script_the_wrappers_would_reparse() -> None:
    res = BatchResources("clx-a1", "/home/a/logs")
    with pytest.raises(ConfigError, match="beside the log directory"):
        pbs.submit_argv("/elsewhere/it's $(x)/job.sh", res)
