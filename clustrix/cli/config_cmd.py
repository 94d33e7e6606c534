"""``clustrix config show`` and ``clustrix config check``."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from ._output import console, print_json
from .check import run_check
from .config_sources import resolve

config_app = typer.Typer(
    help="Show or check the resolved clustrix configuration.", no_args_is_help=True
)

ProfileOption = Annotated[
    str | None,
    typer.Option("--profile", "-p", help="Use this profile of the config files."),
]


def _text(value: Any) -> str:
    if value is None:
        return "[dim]None[/]"
    if isinstance(value, list | dict | bool):
        return escape(json.dumps(value))
    return escape(str(value))


@config_app.command("show")
def show(
    profile: ProfileOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON for scripts.")] = False,
) -> None:
    """The resolved configuration, each value with its source; secrets masked."""
    resolved = resolve(profile)
    values = resolved.values()
    if as_json:
        print_json(
            {
                "profile": resolved.profile,
                "files": [str(p) for p in resolved.files],
                "fields": {
                    name: {"value": value, "source": resolved.sources[name]}
                    for name, value in values.items()
                },
            }
        )
        return
    files = ", ".join(str(p) for p in resolved.files) or "none found"
    console.print(f"config files: {escape(files)}", soft_wrap=True)
    console.print(f"profile: {escape(resolved.profile or 'none')}")
    table = Table()
    table.add_column("field", no_wrap=True)
    table.add_column("value", overflow="fold")
    table.add_column("source", overflow="fold")
    for name, value in values.items():
        source = resolved.sources[name]
        style = "dim" if source == "default" else "bold"
        table.add_row(name, _text(value), f"[{style}]{escape(source)}[/]")
    console.print(table)


@config_app.command("check")
def check(profile: ProfileOption = None) -> None:
    """Log in and check the remote Python, the scheduler commands and remote_work_dir.

    Exits with status 1 when something is wrong, saying how to fix it.
    """
    config = resolve(profile).config
    if not run_check(config):
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add the ``clustrix config`` group to `app`."""
    app.add_typer(config_app, name="config")
