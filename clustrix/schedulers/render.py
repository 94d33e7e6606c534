"""Rendering a scheduler's job script from ``clustrix/templates/<name>.sh.j2``.

Every ``{{ ... }}`` in the templates must produce shell-safe text: the Environment's
``finalize`` hook refuses any value that did not pass through the ``shquote`` filter
(:func:`shlex.quote`) or was not vetted here. Vetted, unquoted text is limited to:
the scheduler's directive lines (validated by the scheduler module, one line each),
the scheduler's own ``element_index_expr``, environment variable names (identifiers)
and ``pre_execution_commands``, which are the user's own shell commands and go in
verbatim, one per line, by design.

Template context (all validated here): ``scheduler``, ``job_name``, ``directives``,
``run_dir``, ``python``, ``runner``, ``element_index_expr``, ``element_offset``,
``module_loads``, ``conda_env``, ``venv_activate``, ``environment_variables`` (a list
of ``(name, value)``), ``pre_execution_commands``, ``setup_failure``.
"""

from __future__ import annotations

import functools
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import jinja2

from .._exceptions import ConfigError
from ..oncluster import layout
from .base import BatchResources

#: Exit status the script records when the environment could not be set up
#: (module load, conda/venv activation failed) and the runner never started.
SETUP_FAILURE_EXIT_CODE = 97

TEMPLATE_DIR = Path(__file__).resolve().parent.parent / "templates"
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SETTINGS = ("module_loads", "environment_variables", "pre_execution_commands")


class ScriptKind(Protocol):
    """What a job script's template needs of its scheduler: every
    :class:`~clustrix.schedulers.scheduler.Scheduler`, and the ``ssh`` backend's
    detached processes (no directives, the element index as the first argument)."""

    @property
    def NAME(self) -> str: ...
    @property
    def TEMPLATE(self) -> str: ...
    @property
    def element_index_expr(self) -> str: ...
    def directives(self, res: BatchResources) -> list[str]: ...


@dataclass(frozen=True)
class ScriptContext:
    """What the job script needs besides the scheduler resources.

    ``python`` is one word (a path or a command on PATH). ``pre_execution_commands``
    are the user's own shell commands, inserted verbatim one per line: they are code,
    not values, and are never quoted. Everything else is quoted.
    """

    run_dir: str
    python: str
    runner: str
    element_offset: int = 0
    module_loads: Sequence[str] = ()
    environment_variables: Mapping[str, str] = field(default_factory=dict)
    pre_execution_commands: Sequence[str] = ()
    conda_env: str | None = None
    venv: str | None = None


class _Shell(str):
    """Text already safe to paste into the script."""


def _shquote(value: object) -> _Shell:
    if value is None or isinstance(value, bool):
        raise ConfigError(f"cannot put {value!r} into a job script")
    return _Shell(shlex.quote(str(value)))


def _finalize(value: object) -> object:
    if isinstance(value, _Shell):
        return value
    raise jinja2.TemplateError(f"template interpolates {value!r} without |shquote")


@functools.cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATE_DIR)),
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # noqa: S701 - shell scripts, not HTML; values are shell-quoted
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        finalize=_finalize,
    )
    env.filters["shquote"] = _shquote
    return env


def _text(what: str, value: object, *, absolute: bool = False, empty: bool = False) -> str:
    if not isinstance(value, str) or not (value or empty):
        raise ConfigError(f"{what} must be a non-empty string, got {value!r}")
    if "\0" in value:
        raise ConfigError(f"{what} must not contain a NUL character")
    if absolute and not value.startswith("/"):
        raise ConfigError(f"{what} must be an absolute path (resolve '~' first), got {value!r}")
    return value


def _line(what: str, value: object) -> _Shell:
    text = _text(what, value)
    if "\n" in text or "\r" in text:
        raise ConfigError(f"{what} must be a single line, got {text!r}")
    return _Shell(text)


def context(scheduler: ScriptKind, res: BatchResources, ctx: ScriptContext) -> dict[str, Any]:
    """The validated template context (exposed for tests and for the backend's logs)."""
    offset = ctx.element_offset
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise ConfigError(f"element_offset must be a non-negative integer, got {offset!r}")
    return {
        "scheduler": scheduler.NAME,
        "job_name": res.job_name,
        "directives": [_line("directive", line) for line in scheduler.directives(res)],
        "run_dir": _text("run_dir", ctx.run_dir, absolute=True),
        "python": _text("python", ctx.python),
        "runner": _text("runner", ctx.runner, absolute=True),
        "element_index_expr": _line("element_index_expr", scheduler.element_index_expr),
        "element_offset": offset,
        # the run directory's names (clustrix/oncluster/layout.py): plain words
        "elements": _Shell(layout.ELEMENTS),
        "logs": _Shell(layout.LOGS),
        "pid": _Shell(layout.PID),
        "exit": _Shell(layout.EXIT),
        "cancel": _Shell(layout.CANCEL),
        "out": _Shell(layout.OUT),
        "err": _Shell(layout.ERR),
        **_environment_context(ctx),
    }


def _environment_context(ctx: ScriptContext) -> dict[str, Any]:
    """The context of ``environment.sh.j2``: the user's environment settings."""
    variables = []
    for name, value in ctx.environment_variables.items():
        if not isinstance(name, str) or not _IDENTIFIER.match(name):
            raise ConfigError(
                f"environment variable name {name!r} is not a shell identifier "
                "(letters, digits and '_', not starting with a digit)"
            )
        variables.append(
            (_Shell(name), _text(f"environment variable {name}", str(value), empty=True))
        )
    venv = None if ctx.venv is None else _text("venv", ctx.venv).rstrip("/") + "/bin/activate"
    return {
        "module_loads": [_text("module name", name) for name in ctx.module_loads],
        "conda_env": None if ctx.conda_env is None else _text("conda_env", ctx.conda_env),
        "venv_activate": venv,
        "environment_variables": variables,
        "pre_execution_commands": [
            _Shell(_text("pre_execution_command", command))
            for command in ctx.pre_execution_commands
        ],
        "setup_failure": SETUP_FAILURE_EXIT_CODE,
    }


def render_script(scheduler: ScriptKind, res: BatchResources, ctx: ScriptContext) -> str:
    """The complete job script for one submission (ConfigError for impossible values)."""
    template = _environment().get_template(scheduler.TEMPLATE)
    return template.render(context(scheduler, res, ctx))


def render_setup(ctx: ScriptContext) -> str:
    """A ``bash -c`` script running its arguments in the environment job scripts set
    up from `ctx` (modules, conda, venv, variables, pre_execution_commands), or ""
    if there is nothing to set up. `ctx`'s run directory and runner are not used."""
    values = _environment_context(ctx)
    if not any(values[key] for key in _SETTINGS) and ctx.conda_env is None and ctx.venv is None:
        return ""
    return _environment().get_template("setup.sh.j2").render(values)
