"""Job-script contexts shared by the remote backends, and the `ssh` backend's script."""

from __future__ import annotations

from ..._config import ClusterConfig
from ..._options import Resources
from ...schedulers.base import BatchResources
from ...schedulers.render import ScriptContext, render_script


class _DetachedProcess:
    """The `Scheduler` shape for plain detached processes: no directives, and the
    element index is the script's first argument."""

    NAME = "ssh"
    TEMPLATE = "ssh.sh.j2"
    element_index_expr = "${1:?element index}"

    @staticmethod
    def directives(res: BatchResources) -> list[str]:
        return []


DETACHED = _DetachedProcess()


def script_context(
    config: ClusterConfig,
    resources: Resources,
    run_dir: str,
    runner: str,
    offset: int = 0,
    replicated: str | None = None,
) -> ScriptContext:
    """How a job script sets up the task's environment and starts the runner.

    `replicated` is the absolute path of the venv the task runs in: the one built for
    `environment="replicate"`, or the user's own (`"venv:<path>"` or a bare path). Its
    own Python runs the task, whatever `python_executable` says.
    """
    environment = resources.environment
    conda = environment.removeprefix("conda:") if environment.startswith("conda:") else None
    bare_name = ":" not in environment and not environment.startswith(("/", "~"))
    if conda is None and environment not in ("inherit", "replicate") and bare_name:
        conda = environment  # a bare name is a conda environment (the seed's meaning)
    venv = None
    if replicated is not None:  # a venv: the replicated one, or the user's (resolved)
        conda, venv = None, replicated
    return ScriptContext(
        run_dir=run_dir,
        python=f"{replicated}/bin/python" if replicated else config.python_executable,
        runner=runner,
        element_offset=offset,
        module_loads=list(config.module_loads),
        environment_variables=dict(config.environment_variables),
        pre_execution_commands=list(config.pre_execution_commands),
        conda_env=conda,
        venv=venv,
    )


def render_ssh_script(
    config: ClusterConfig,
    resources: Resources,
    run_dir: str,
    runner: str,
    key: str,
    replicated: str | None = None,
) -> str:
    """The ``job.sh`` of an `ssh` run (one element per invocation)."""
    context = script_context(config, resources, run_dir, runner, replicated=replicated)
    batch = BatchResources(job_name=key, log_dir=f"{run_dir}/logs")
    return render_script(DETACHED, batch, context)  # type: ignore[arg-type]
