"""Job-script contexts shared by the remote backends, and the `ssh` backend's script."""

from __future__ import annotations

from typing import ClassVar

from ..._config import ClusterConfig
from ..._options import Conda, Options, Resources
from ...schedulers.base import BatchResources
from ...schedulers.render import ScriptContext, render_script, render_setup


class _DetachedProcess:
    """The script kind of plain detached processes: the `ssh` backend's driver, which
    forks every element itself (no directives, no element index of its own)."""

    NAME: ClassVar[str] = "ssh"
    TEMPLATE: ClassVar[str] = "ssh.sh.j2"
    element_index_expr: ClassVar[str] = "0"  # (unused: the driver numbers the elements)

    def directives(self, res: BatchResources) -> list[str]:
        return []


DETACHED = _DetachedProcess()


def script_context(
    config: ClusterConfig,
    resources: Resources,
    run_dir: str,
    runner: str,
    offset: int = 0,
    venv: str | None = None,
) -> ScriptContext:
    """How a job script sets up the task's environment and starts the runner.

    `venv` is the absolute path of the venv the task runs in: the one built for
    `environment="replicate"`, or the user's own (`"venv:<path>"` or a bare path). Its
    own Python runs the task, whatever `python_executable` says.
    """
    environment = resources.environment
    conda = environment.name if isinstance(environment, Conda) and venv is None else None
    return ScriptContext(
        run_dir=run_dir,
        python=f"{venv}/bin/python" if venv else config.python_executable,
        runner=runner,
        element_offset=offset,
        module_loads=list(config.module_loads),
        environment_variables=dict(config.environment_variables),
        pre_execution_commands=list(config.pre_execution_commands),
        conda_env=conda,
        venv=venv,
    )


def command_setup(config: ClusterConfig) -> str:
    """The job scripts' environment setup (``bash -c`` script, "" if none) for commands
    clustrix runs outside a job with `python_executable`, such as the remote Python
    version check: the configured modules, conda environment, variables and
    pre_execution_commands, exactly as a job sets them up."""
    resources = Options().resolve(config)
    return render_setup(script_context(config, resources, run_dir="", runner=""))


def render_ssh_script(
    config: ClusterConfig,
    resources: Resources,
    run_dir: str,
    runner: str,
    key: str,
    venv: str | None = None,
) -> str:
    """The ``driver.sh`` of an `ssh` run (all its elements, forked by the runner)."""
    context = script_context(config, resources, run_dir, runner, venv=venv)
    batch = BatchResources(job_name=key, log_dir=f"{run_dir}/logs")
    return render_script(DETACHED, batch, context)
