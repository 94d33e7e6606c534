"""The seed's ``clustrix.config`` module: configuration names, plus `save_config`.

Thin aliases of `clustrix._config` (one implementation).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import yaml

from ._config import ClusterConfig, configure, get_config, load_config, reset_config

# Not written: where the file came from, and the password (a file is no place for it).
_NOT_SAVED = {"profile", "config_file", "password"}


def save_config(path: str | os.PathLike[str], config: ClusterConfig | None = None) -> Path:
    """Write the resolved configuration (the global one by default) to `path`.

    YAML for ``.yml``/``.yaml``, JSON for ``.json``; `load_config` reads it back.
    Fields left unset (None) and the password are not written. Returns the path.
    """
    target = Path(path).expanduser()
    resolved = config if config is not None else get_config()
    data = resolved.model_dump(mode="json", exclude=_NOT_SAVED, exclude_none=True)
    if target.suffix == ".json":
        text = json.dumps(data, indent=2, sort_keys=True) + "\n"
    elif target.suffix in (".yml", ".yaml"):
        text = yaml.safe_dump(data, sort_keys=True)
    else:
        from ._exceptions import ConfigError

        raise ConfigError(
            f"save_config({str(path)!r}): the file name must end in .yml, .yaml or .json"
        )
    target.write_text(text, encoding="utf-8")
    return target


__all__ = [
    "ClusterConfig",
    "configure",
    "get_config",
    "load_config",
    "reset_config",
    "save_config",
]
