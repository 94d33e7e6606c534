"""Rendered job scripts: golden files, ``bash -n``, and real runs of the scripts in bash.

Regenerate the golden files with ``CLUSTRIX_UPDATE_GOLDEN=1 pytest tests/unit/test_sched_render.py``
and review the diff.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import jinja2
import pytest

from clustrix._exceptions import ConfigError
from clustrix.schedulers import (
    ArraySpec,
    BatchResources,
    Scheduler,
    ScriptContext,
    get_scheduler,
    render_script,
)
from clustrix.schedulers import render as render_module
from clustrix.schedulers.render import SETUP_FAILURE_EXIT_CODE

GOLDEN = Path(__file__).parent.parent / "data" / "golden"
UPDATE = os.environ.get("CLUSTRIX_UPDATE_GOLDEN") == "1"

LOGS = "/home/alice/.clustrix/logs"
CTX = ScriptContext(
    run_dir="/home/alice/.clustrix/runs/r1",
    python="/usr/bin/python3",
    runner="/home/alice/.clustrix/cache/runner.py",
)
FULL_CTX = replace(
    CTX,
    element_offset=500,
    module_loads=["gcc/12.2", "python/3.11"],
    environment_variables={"OMP_NUM_THREADS": "4", "DATA_DIR": "/scratch/alice/data"},
    pre_execution_commands=["source /opt/site/setup.sh", "ulimit -c 0"],
    conda_env="analysis",
)
HOSTILE = 'it\'s "quoted" $(touch pwned) `touch pwned` ; rm -rf ~ & echo $HOME\nsecond line'
HOSTILE_CTX = ScriptContext(
    run_dir="/home/alice/my runs/it's $(here)",
    python="/opt/py 3/bin/python3",
    runner="/home/alice/my runs/runner;x.py",
    module_loads=["name with space", "$(touch pwned)"],
    environment_variables={"HOSTILE": HOSTILE, "EMPTY": ""},
    conda_env="env; touch pwned",
)


def full(**kw: object) -> BatchResources:
    base: dict[str, object] = {
        "job_name": "clx-7f3a9c",
        "log_dir": LOGS,
        "cores": 4,
        "memory": 8 * 1024**3,
        "time": 2 * 3600 + 30 * 60,
        "queue": "compute",
        "account": "proj42",
        "array": ArraySpec(250, 20),
    }
    base.update(kw)
    return BatchResources(**base)  # type: ignore[arg-type]


CASES: dict[str, tuple[str, str, BatchResources, ScriptContext]] = {
    "slurm_single": ("slurm", "torque", BatchResources("clx-single", LOGS), CTX),
    "slurm_array_throttle": (
        "slurm", "torque", BatchResources("clx-sweep", LOGS, array=ArraySpec(100, 10)),
        replace(CTX, element_offset=200),
    ),
    "slurm_full": (
        "slurm", "torque",
        full(gpus=2, nodes=1, hold=True, extra={"qos": "debug", "exclusive": True, "C": "a100"}),
        FULL_CTX,
    ),
    "slurm_hostile": ("slurm", "torque", BatchResources("clx-hostile", LOGS), HOSTILE_CTX),
    "sge_single": ("sge", "torque", BatchResources("clx-single", LOGS), CTX),
    "sge_array_throttle": (
        "sge", "torque", BatchResources("clx-sweep", LOGS, array=ArraySpec(100, 10)),
        replace(CTX, element_offset=200),
    ),
    "sge_full": (
        "sge", "torque", full(extra={"l": "gpu=1", "P": "physics"}),
        replace(FULL_CTX, conda_env=None, venv="/home/alice/venvs/analysis/"),
    ),
    "pbs_torque_single": ("pbs", "torque", BatchResources("clx-single", LOGS), CTX),
    "pbs_torque_full": ("pbs", "torque", full(gpus=1, extra={"m": "abe"}), FULL_CTX),
    "pbs_pro_array_throttle": (
        "pbs", "pro",
        BatchResources("clx-sweep", LOGS, array=ArraySpec(100, 10)),
        replace(CTX, element_offset=200),
    ),
    "pbs_pro_full": (
        "pbs", "pro", full(gpus=2, nodes=2, extra={"W": "group_list=phys"}),
        FULL_CTX,
    ),
}  # fmt: skip


def render_case(name: str) -> str:
    scheduler, dialect, res, ctx = CASES[name]
    return render_script(get_scheduler(scheduler, dialect), res, ctx)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden(name: str) -> None:
    script = render_case(name)
    path = GOLDEN / f"{name}.sh"
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(script)
    assert path.exists(), f"missing golden file {path}; run with CLUSTRIX_UPDATE_GOLDEN=1"
    assert script == path.read_text()


@pytest.mark.parametrize("name", sorted(CASES))
def test_bash_accepts_the_script(name: str) -> None:
    done = subprocess.run(["bash", "-n"], input=render_case(name), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_directives_come_first() -> None:
    for name in CASES:
        lines = render_case(name).splitlines()
        assert lines[0] == "#!/bin/bash"
        first_command = next(i for i, line in enumerate(lines) if line and not line.startswith("#"))
        prefix = {"slurm": "#SBATCH", "sge": "#$", "pbs": "#PBS"}[CASES[name][0]]
        assert all(not line.startswith(prefix) for line in lines[first_command:])


def test_pre_execution_commands_are_verbatim_and_values_quoted() -> None:
    script = render_case("slurm_full")
    assert "\nsource /opt/site/setup.sh\nulimit -c 0\n" in script
    assert "export DATA_DIR=/scratch/alice/data\n" in script
    hostile = render_case("slurm_hostile")
    assert "$(touch pwned)" in hostile and "\nmodule load '$(touch pwned)' " in hostile


# -- running the scripts --------------------------------------------------------------

# Like the real runner: it records exit 0 itself; the script records any other status.
FAKE_RUNNER = """import json, os, sys
run_dir, element = sys.argv[2], int(sys.argv[4])
assert sys.argv[1] == "run" and sys.argv[3] == "--element"
with open(os.path.join(run_dir, "seen-%d.json" % element), "w") as f:
    env = {k: os.environ.get(k) for k in ("HOSTILE", "EMPTY", "OMP")}
    json.dump({"cwd": os.getcwd(), "env": env}, f)
if element % 7 == 0:
    os.makedirs(os.path.join(run_dir, "elements"), exist_ok=True)
    with open(os.path.join(run_dir, "elements", "%d.exit" % element), "w") as f:
        f.write("0\\n")
sys.exit(element % 7)
"""


def run_script(tmp_path: Path, scheduler: Scheduler, res: BatchResources, ctx: ScriptContext,
               env: dict[str, str]) -> subprocess.CompletedProcess[str]:  # fmt: skip
    script = tmp_path / "job.sh"
    script.write_text(render_script(scheduler, res, ctx))
    base = {"PATH": os.environ["PATH"], "HOME": str(tmp_path)}
    return subprocess.run(
        ["bash", str(script)],
        env={**base, **env},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("scheduler", "dialect", "env", "index"),
    [
        ("slurm", "torque", {"SLURM_ARRAY_TASK_ID": "3"}, 3),
        ("slurm", "torque", {}, 0),
        ("sge", "torque", {"SGE_TASK_ID": "4"}, 3),
        ("sge", "torque", {"SGE_TASK_ID": "undefined"}, 0),
        ("pbs", "pro", {"PBS_ARRAY_INDEX": "5"}, 5),
        ("pbs", "torque", {"PBS_ARRAYID": "2"}, 2),
        ("pbs", "torque", {"PBS_ARRAY_INDEX": ""}, 0),  # Slurm's wrappers outside arrays
    ],
)
def test_script_runs_the_runner_and_records_its_exit_status(
    tmp_path: Path, scheduler: str, dialect: str, env: dict[str, str], index: int
) -> None:
    run_dir = tmp_path / "run dir 'x' $(y)"
    run_dir.mkdir()
    runner = tmp_path / "runner.py"
    runner.write_text(FAKE_RUNNER)
    ctx = ScriptContext(
        run_dir=str(run_dir),
        python=sys.executable,
        runner=str(runner),
        element_offset=10,
        environment_variables={"HOSTILE": HOSTILE, "EMPTY": ""},
        pre_execution_commands=["export OMP=from-pre-exec"],
    )
    res = BatchResources("clx-run", str(tmp_path), array=ArraySpec(8))
    done = run_script(tmp_path, get_scheduler(scheduler, dialect), res, ctx, env)  # type: ignore[arg-type]
    element = 10 + index
    assert done.returncode == element % 7, done.stderr
    assert (run_dir / "elements" / f"{element}.exit").read_text() == f"{element % 7}\n"
    assert not list((run_dir / "elements").glob("*.tmp*"))
    seen = json.loads((run_dir / f"seen-{element}.json").read_text())
    assert seen == {
        "cwd": str(run_dir),
        "env": {"HOSTILE": HOSTILE, "EMPTY": "", "OMP": "from-pre-exec"},
    }
    assert not list(tmp_path.rglob("pwned*"))


@pytest.mark.parametrize("scheduler", ["slurm", "sge", "pbs"])
def test_script_runs_under_posix_sh(tmp_path: Path, scheduler: str) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (tmp_path / "runner.py").write_text(FAKE_RUNNER)
    ctx = ScriptContext(
        run_dir=str(run_dir), python=sys.executable, runner=str(tmp_path / "runner.py")
    )
    script = tmp_path / "job.sh"
    script.write_text(
        render_script(get_scheduler(scheduler), BatchResources("clx-p", str(tmp_path)), ctx)
    )
    done = subprocess.run(
        ["sh", str(script)], env={"PATH": os.environ["PATH"]}, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert (run_dir / "elements" / "0.exit").read_text() == "0\n"


def test_child_templates_can_add_a_prologue() -> None:
    env = render_module._environment()
    child = env.from_string(
        '{% extends "base.sh.j2" %}{% block prologue %}echo prologue-ran\n{% endblock %}'
    )
    values = render_module.context(get_scheduler("slurm"), BatchResources("clx-x", LOGS), FULL_CTX)
    script = child.render(values)
    assert (
        script.index('cd "$RUN_DIR"') < script.index("echo prologue-ran") < script.index("set +u")
    )


def test_hostile_values_stay_inert(tmp_path: Path) -> None:
    run_dir = tmp_path / "it's $(here)"
    run_dir.mkdir()
    (tmp_path / "runner;x.py").write_text(FAKE_RUNNER)
    ctx = replace(
        HOSTILE_CTX,
        run_dir=str(run_dir),
        python=sys.executable,
        runner=str(tmp_path / "runner;x.py"),
        module_loads=[],
        conda_env=None,
    )
    done = run_script(
        tmp_path, get_scheduler("slurm"), BatchResources("clx-h", str(tmp_path)), ctx, {}
    )
    assert done.returncode == 0, done.stderr
    assert json.loads((run_dir / "seen-0.json").read_text())["env"]["HOSTILE"] == HOSTILE
    assert not list(tmp_path.rglob("pwned*"))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"module_loads": ["no-such-module"]}, "module load failed"),
        ({"conda_env": "no such env"}, "conda environment"),
        ({"venv": "/nonexistent/venv"}, "cannot activate"),
    ],
)
def test_setup_failure_is_recorded(tmp_path: Path, change: dict[str, object], message: str) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    base = ScriptContext(run_dir=str(run_dir), python=sys.executable, runner="/nonexistent")
    ctx = replace(base, **change)  # type: ignore[arg-type]
    done = run_script(
        tmp_path, get_scheduler("slurm"), BatchResources("clx-s", str(tmp_path)), ctx, {}
    )
    assert done.returncode == SETUP_FAILURE_EXIT_CODE
    assert message in done.stderr
    assert (run_dir / "elements" / "0.exit").read_text() == f"{SETUP_FAILURE_EXIT_CODE}\n"


def test_missing_run_dir_fails_without_creating_it(tmp_path: Path) -> None:
    ctx = ScriptContext(run_dir=str(tmp_path / "gone"), python=sys.executable, runner="/x.py")
    done = run_script(
        tmp_path, get_scheduler("sge"), BatchResources("clx-s", str(tmp_path)), ctx, {}
    )
    assert done.returncode == SETUP_FAILURE_EXIT_CODE
    assert not (tmp_path / "gone").exists()


# -- refused values -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ctx_change", "message"),
    [
        ({"environment_variables": {"1BAD": "x"}}, "identifier"),
        ({"environment_variables": {"A-B": "x"}}, "identifier"),
        ({"environment_variables": {"A": "x\0y"}}, "NUL"),
        ({"run_dir": "relative/run"}, "absolute"),
        ({"run_dir": "~/run"}, "absolute"),
        ({"runner": "runner.py"}, "absolute"),
        ({"python": ""}, "python"),
        ({"element_offset": -1}, "element_offset"),
        ({"element_offset": True}, "element_offset"),
        ({"module_loads": ["a\0b"]}, "NUL"),
        ({"pre_execution_commands": [""]}, "pre_execution_command"),
    ],
)
def test_render_refuses(ctx_change: dict[str, object], message: str) -> None:
    ctx = replace(CTX, **ctx_change)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=message):
        render_script(get_scheduler("slurm"), BatchResources("clx-x", LOGS), ctx)


def test_render_refuses_hostile_directive_values() -> None:
    for res in (
        BatchResources("clx x", LOGS),
        BatchResources("clx-x", "/home/my\\logs"),  # Slurm: a backslash stops %j
        BatchResources("clx-x", LOGS, queue="q\n#SBATCH --uid=0"),
        BatchResources("clx-x", LOGS, extra={"comment": "$(touch pwned)"}),
    ):
        with pytest.raises(ConfigError):
            render_script(get_scheduler("slurm"), res, CTX)


def test_a_multi_line_directive_from_a_scheduler_is_refused() -> None:
    class Broken:
        NAME = "slurm"
        TEMPLATE = "slurm.sh.j2"
        element_index_expr = "0"

        def directives(self, res: BatchResources) -> list[str]:
            return ["#SBATCH --a=1\nrm -rf ~"]

    with pytest.raises(ConfigError, match="single line"):
        render_script(Broken(), BatchResources("clx-x", LOGS), CTX)  # type: ignore[arg-type]


def test_templates_cannot_interpolate_unquoted_values() -> None:
    env = render_module._environment()
    with pytest.raises(jinja2.TemplateError, match="shquote"):
        env.from_string("echo {{ value }}").render(value="$(id)")
    assert env.from_string("echo {{ value|shquote }}").render(value="$(id)") == "echo '$(id)'"
    with pytest.raises(jinja2.UndefinedError):
        env.from_string("{{ missing|shquote }}").render()


def test_commands_outside_a_job_get_the_job_scripts_environment(tmp_path: Path) -> None:
    """One source (templates/environment.sh.j2) for job scripts and for commands such
    as the remote Python version check: the same lines, and they take effect."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "module").write_text(f'#!/bin/sh\necho "$*" >>{tmp_path}/module.log\n')
    (bin_dir / "module").chmod(0o755)
    ctx = replace(
        CTX,
        module_loads=["python/3.11"],
        environment_variables={"CLX_V": "a b"},
        pre_execution_commands=["echo noise from pre-exec", "export CLX_PRE=1"],
    )
    setup = render_module.render_setup(ctx)
    script = render_script(get_scheduler("slurm"), BatchResources("clx-env", LOGS), ctx)
    block = script[script.index("set +u") : script.index("set -u\n", script.index("set +u"))]
    assert block in setup
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    argv = ["bash", "-c", setup, "bash", "sh", "-c", 'echo "$CLX_V|$CLX_PRE"']
    done = subprocess.run(argv, capture_output=True, text=True, env=env, check=True)
    assert done.stdout == "a b|1\n"  # what the setup prints goes to stderr
    assert "noise from pre-exec" in done.stderr
    assert (tmp_path / "module.log").read_text() == "load python/3.11\n"
    assert render_module.render_setup(CTX) == ""  # nothing to set up: run the command as is
