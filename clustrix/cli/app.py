"""The Typer application and the entry point that maps errors to exit statuses.

Exit statuses: 0 success, 1 a problem the user can fix (a `ClustrixError`, a missing
file, a refused permission, an unknown key), 2 bad usage (Click's own). Adding a
command is one module with a ``register(app)`` function, listed in `COMMANDS`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import click
import typer

from .._exceptions import ClustrixError
from . import cancel, clean, config_cmd, jobs, logs, render, result, status
from ._output import Problem, fail

app = typer.Typer(
    name="clustrix",
    help="Inspect clustrix jobs, configuration and job scripts.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

#: One module per command (or command group); each adds itself with ``register(app)``.
COMMANDS: tuple[Callable[[typer.Typer], None], ...] = (
    jobs.register,
    status.register,
    logs.register,
    cancel.register,
    result.register,
    clean.register,
    config_cmd.register,
    render.register,
)
for _register in COMMANDS:
    _register(app)


def main(argv: list[str] | None = None) -> None:
    """Run the ``clustrix`` command line (the console script's entry point)."""
    command = typer.main.get_command(app)
    try:
        command.main(args=argv, prog_name="clustrix", standalone_mode=True)
    except Problem as problem:
        fail(str(problem))
    except (ClustrixError, OSError) as error:
        fail(_one_line(error))
    except KeyboardInterrupt:
        fail("interrupted", status=130)
    except click.exceptions.Exit as done:  # pragma: no cover (standalone mode handles it)
        sys.exit(done.exit_code)


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    if isinstance(error, OSError) and not isinstance(error, ConnectionError):
        return f"{type(error).__name__}: {text}" if error.strerror is None else text
    return text
