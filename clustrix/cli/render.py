"""``clustrix render module:function``: the job script a call would submit (dry run).

`render_job_script` is the ONE place that reaches into the remote backends' internals
(`Options.resolve`, the batch backend's resource mapping, `script_context`,
`render_script`); if they change, only it needs adapting. Nothing here opens a
connection: the run directory and key are placeholders filled in at submission.
"""

from __future__ import annotations

import importlib
import importlib.util
import posixpath
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from .._config import ClusterConfig
from .._decorator import RemoteFunction
from .._options import Replicate, Venv
from ..backends.remote.area import support_bundle
from ..backends.remote.scripts import render_ssh_script, script_context
from ..schedulers import ArraySpec, BatchResources, render_script, scheduler_for
from ._output import Problem, err_console

ScriptType = Literal["slurm", "pbs", "sge", "ssh"]
WORK_DIR, KEY = "<remote_work_dir>", "<key>"
# Rendered with plain stand-ins (directives accept only plain names and absolute
# paths), then shown with the placeholders above.
_WORK_STANDIN, _KEY_STANDIN = "/CLUSTRIX_WORK_DIR", "cxKEY000000000"


@dataclass(frozen=True)
class Rendered:
    """A dry-run job script and the command that would submit it."""

    script: str
    submit: str


def render_job_script(fn: RemoteFunction[..., Any], config: ClusterConfig, tasks: int) -> Rendered:
    """The job script of `fn` with its options on `config` (a sweep of `tasks` tasks
    when more than one), as the remote backends would render it, one task per array
    element (no packing)."""
    resources = fn.cluster_options.resolve(config)
    run_dir = posixpath.join(_WORK_STANDIN, "runs", _KEY_STANDIN)
    runner = posixpath.join(_WORK_STANDIN, "cache", support_bundle()[0], "_runner.py")
    environment = resources.environment
    venv: str | None = None
    if isinstance(environment, Replicate):
        venv = posixpath.join(_WORK_STANDIN, "envs", "<environment-hash>")
    elif isinstance(environment, Venv):
        venv = environment.path
    script_path = posixpath.join(run_dir, "job-0.sh")
    if config.cluster_type == "ssh":
        script = render_ssh_script(config, resources, run_dir, runner, _KEY_STANDIN, venv)
        submit = f"setsid nohup sh {script_path} ELEMENT (one per task, from the driver)"
    else:
        scheduler = scheduler_for(config)  # pbs_dialect "auto": shown as Torque
        batch = BatchResources(
            job_name=_KEY_STANDIN,
            log_dir=posixpath.join(run_dir, "logs"),
            cores=resources.cores,
            memory=resources.memory,
            time=resources.time,
            gpus=resources.gpus,
            nodes=resources.nodes,
            queue=resources.partition,
            account=resources.account,
            extra={k: str(v) if isinstance(v, float) else v for k, v in resources.extra.items()},
            array=ArraySpec(tasks, resources.max_concurrent) if tasks > 1 else None,
        )
        context = script_context(config, resources, run_dir, runner, 0, venv)
        script = render_script(scheduler, batch, context)
        submit = shlex.join(scheduler.submit_argv(script_path, batch))
    return Rendered(_placeholders(script), _placeholders(submit))


def _placeholders(text: str) -> str:
    return text.replace(_WORK_STANDIN, WORK_DIR).replace(_KEY_STANDIN, KEY)


def load_function(target: str) -> RemoteFunction[..., Any]:
    """The `@cluster` function named ``module:function`` (or ``path.py:function``);
    the current directory is importable, as for ``python -m``."""
    module_name, _, attribute = target.partition(":")
    if not module_name or not attribute:
        raise typer.BadParameter(
            f"{target!r} must be module:function (or file.py:function)", param_hint="TARGET"
        )
    sys.path.insert(0, str(Path.cwd()))
    try:
        if module_name.endswith(".py") or "/" in module_name:
            module = _import_file(Path(module_name))
        else:
            module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        raise Problem(f"cannot import {module_name!r}: {error}") from None
    except (SyntaxError, ImportError) as error:
        raise Problem(f"importing {module_name!r} failed: {error}") from None
    value: Any = module
    for part in attribute.split("."):
        if not hasattr(value, part):
            raise Problem(f"{module_name!r} has no attribute {attribute!r}")
        value = getattr(value, part)
    if not isinstance(value, RemoteFunction):
        raise Problem(f"{target} is a {type(value).__name__}, not a @cluster-decorated function")
    return value


def _import_file(path: Path) -> Any:
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    spec = importlib.util.spec_from_file_location(path.stem, path)
    if spec is None or spec.loader is None:
        raise Problem(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    spec.loader.exec_module(module)
    return module


def render(
    target: Annotated[
        str, typer.Argument(help="The decorated function, as module:function or file.py:function.")
    ],
    script_type: Annotated[
        ScriptType | None,
        typer.Option("--type", "-t", help="Render for this backend instead of cluster_type."),
    ] = None,
    profile: Annotated[
        str | None, typer.Option("--profile", "-p", help="Use this profile of the config files.")
    ] = None,
    tasks: Annotated[
        int, typer.Option(min=1, help="Render the array script of a sweep of this many tasks.")
    ] = 1,
) -> None:
    """Print the job script a call of a @cluster function would submit; submits nothing.

    The run directory and the key are placeholders (<remote_work_dir>/runs/<key>).
    """
    fn = load_function(target)
    if profile is not None:
        config = ClusterConfig(profile=profile)
    else:
        config = fn.cluster_options.config or ClusterConfig()
    if script_type is not None:
        config = config.model_copy(update={"cluster_type": script_type})
    if config.cluster_type not in ("slurm", "pbs", "sge", "ssh"):
        raise Problem(
            f"cluster_type is {config.cluster_type!r}, which runs no job script; pass "
            "--type slurm|pbs|sge|ssh"
        )
    rendered = render_job_script(fn, config, tasks)
    sys.stdout.write(rendered.script if rendered.script.endswith("\n") else rendered.script + "\n")
    err_console.print(
        f"[dim]dry run, nothing submitted; clustrix would submit it with: {rendered.submit}[/]",
        soft_wrap=True,
        markup=True,
    )


def register(app: typer.Typer) -> None:
    """Add ``clustrix render`` to `app`."""
    app.command("render")(render)
