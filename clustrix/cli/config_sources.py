"""Where each value of a resolved configuration comes from.

Mirrors the layers of `clustrix._config` (highest first): runtime arguments (here only
``--profile``), the selected profile in the config files, the files' top-level fields
(nearer files first), ``CLUSTRIX_*`` environment variables, then defaults. It reads
the same files with the same reader (`read_config_file`), so a value and its source
cannot disagree about which file won.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from .. import _config
from .._config import ClusterConfig
from .._exceptions import ConfigError

MASK = "********"


@dataclass(frozen=True)
class Resolved:
    """A configuration, the files it read and the source of every field."""

    config: ClusterConfig
    files: list[Path]
    profile: str | None
    sources: dict[str, str]

    def values(self) -> dict[str, Any]:
        """Every field's value, JSON-friendly, secrets masked."""
        return {name: shown(getattr(self.config, name)) for name in ClusterConfig.model_fields}


def shown(value: Any) -> Any:
    """A field value for display: secrets masked, paths as text."""
    if isinstance(value, SecretStr):
        return MASK
    if isinstance(value, Path):
        return str(value)
    return value


def config_files(runtime: dict[str, Any]) -> list[Path]:
    """The files the file layer reads, nearest first (as `_config._FileSource` does)."""
    explicit = runtime.get("config_file") or os.environ.get("CLUSTRIX_CONFIG_FILE")
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        return [path]
    return [p for p in _config.search_path() if p.is_file()]


def _environment_variable(field: str) -> str | None:
    wanted = f"CLUSTRIX_{field.upper()}"
    return next((v for v in os.environ if v.upper() == wanted), None)


def resolve(profile: str | None = None) -> Resolved:
    """The configuration for `profile` (None: ``CLUSTRIX_PROFILE`` or none) and the
    source of each field: ``default``, ``env CLUSTRIX_X``, ``file PATH``,
    ``profile P (PATH)`` or ``option --profile``."""
    runtime: dict[str, Any] = {"profile": profile} if profile else {}
    config = ClusterConfig(**runtime)  # raises ConfigError exactly as clustrix would
    files = config_files(runtime)
    chosen = profile or os.environ.get("CLUSTRIX_PROFILE") or None
    top_of: dict[str, Path] = {}
    profile_of: dict[str, Path] = {}
    for path in files:  # nearest first: the first file naming a field wins
        top, profiles = _config.read_config_file(path)
        for name in top:
            top_of.setdefault(name, path)
        for name in profiles.get(chosen, {}) if chosen else {}:
            profile_of.setdefault(name, path)
    sources: dict[str, str] = {}
    for name in ClusterConfig.model_fields:
        variable = _environment_variable(name)
        if name in runtime:
            sources[name] = f"option --{name}"
        elif name in profile_of:
            sources[name] = f"profile {chosen} ({profile_of[name]})"
        elif name in top_of:
            sources[name] = f"file {top_of[name]}"
        elif variable is not None:
            sources[name] = f"env {variable}"
        else:
            sources[name] = "default"
    return Resolved(config, files, chosen, sources)
