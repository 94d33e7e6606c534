"""Configuration: `ClusterConfig` on pydantic-settings, config files, global helpers.

Priority, highest first: runtime arguments, then config files, then ``CLUSTRIX_*``
environment variables, then defaults. Files are found on a search path
(``./clustrix.yml``, ``~/.clustrix/config.yml``, ``/etc/clustrix/config.yml``, also
``.yaml`` and ``.json``) and merged, nearer first. A file holds top-level fields and
``profiles: {name: {...}}``; ``profile=`` or ``CLUSTRIX_PROFILE`` selects one.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import AfterValidator, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from ._config_env import warn_unknown_variables
from ._config_fields import FIELD_DESCRIPTIONS
from ._exceptions import ConfigError
from ._units import format_memory, format_time, parse_memory, parse_time

ClusterType = Literal["local", "ssh", "slurm", "pbs", "sge", "kubernetes"]
MemoryString = Annotated[str, AfterValidator(lambda v: format_memory(parse_memory(v)))]
TimeString = Annotated[str, AfterValidator(lambda v: format_time(parse_time(v)))]

_ALIASES = {"cleanup_on_success": "cleanup_remote_files"}
_FILE_NAMES = ("clustrix.yml", "clustrix.yaml", "clustrix.json")
_USER_NAMES = ("config.yml", "config.yaml", "config.json")


def search_path() -> list[Path]:
    """Config files clustrix looks for, nearest (highest priority) first."""
    cwd, home = Path.cwd(), Path.home() / ".clustrix"
    return (
        [cwd / n for n in _FILE_NAMES]
        + [home / n for n in _USER_NAMES]
        + [Path("/etc/clustrix") / n for n in _USER_NAMES]
    )


class ClusterConfig(BaseSettings):
    """Which cluster to use and how; the seed's field names are kept.

    ``ClusterConfig(**fields)`` applies the whole priority chain with ``fields`` as
    the runtime layer. Instances are immutable; memory and time strings are
    validated and normalised ("4GB" -> "4G", "90:00" -> "01:30:00").
    """

    model_config = SettingsConfigDict(
        env_prefix="CLUSTRIX_", extra="forbid", frozen=True, validate_default=True
    )

    # which cluster
    cluster_type: ClusterType = "local"
    cluster_host: str | None = None
    cluster_port: int = Field(22, ge=1, le=65535)
    username: str | None = None
    profile: str | None = None
    config_file: Path | None = None
    # SSH
    key_file: str | None = None
    password: SecretStr | None = None
    known_hosts: str | None = None
    accept_new_host_keys: bool = False
    proxy_jump: str | None = None
    connect_timeout: float = Field(30, gt=0)
    max_channels: int = Field(8, ge=1)
    # remote layout and environment
    remote_work_dir: str = "~/.clustrix"
    python_executable: str = "python3"
    environment: str = "inherit"
    replicate_scope: Literal["payload", "all"] = "payload"
    replicate_offline: bool = False
    conda_env_name: str | None = None
    module_loads: list[str] = Field(default_factory=list)
    environment_variables: dict[str, str] = Field(default_factory=dict)
    pre_execution_commands: list[str] = Field(default_factory=list)
    # default resources
    default_cores: int = Field(1, ge=1)
    default_memory: MemoryString | None = None
    default_time: TimeString | None = None
    default_partition: str | None = None
    default_queue: str | None = None
    default_account: str | None = None
    # behaviour
    job_poll_interval: float = Field(30, gt=0)
    result_wait: bool = True
    max_parallel_jobs: int | None = Field(None, ge=1)
    cleanup_remote_files: bool = True
    auto_parallel: bool = True  # parallel=None: run loops proven independent in parallel
    max_payload_size: MemoryString = "2G"
    batch_window: float = Field(0.02, ge=0)  # micro-batching of single calls (_batcher.py)
    batch_max: int = Field(1000, ge=1)
    # local job records (clustrix/_records.py); None = ~/.clustrix/records.db
    records_path: Path | None = None
    records_retention_days: int = Field(30, ge=0)
    # schedulers
    pbs_dialect: Literal["auto", "pro", "torque"] = "auto"
    sge_pe: str = "smp"
    max_array_size: int | None = Field(None, ge=1)
    # kubernetes
    k8s_namespace: str = "default"
    k8s_image: str | None = None
    k8s_context: str | None = None
    kubeconfig: str | None = None
    k8s_service_account: str | None = None
    k8s_image_pull_secrets: list[str] = Field(default_factory=list)
    k8s_job_ttl_seconds: int = Field(600, ge=0)
    k8s_pending_grace_seconds: float = Field(120, gt=0)

    def __init__(self, **values: Any) -> None:
        warn_unknown_variables(ClusterConfig.model_fields, _ALIASES)
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise ConfigError(_explain(exc, values)) from None

    @model_validator(mode="before")
    @classmethod
    def _accept_aliases(cls, data: Any) -> Any:
        return _rename_aliases(data) if isinstance(data, dict) else data

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        assert isinstance(init_settings, InitSettingsSource)
        files = _FileSource(settings_cls, init_settings.init_kwargs)
        return init_settings, files, env_settings

    @property
    def partition(self) -> str | None:
        """The default partition/queue (the two settings are synonyms)."""
        return self.default_partition or self.default_queue

    def cache_key(self) -> str:
        """A stable identity of the settings that decide which cluster this is."""
        return self.model_dump_json(
            exclude={"profile", "config_file", "records_path", "records_retention_days"}
        )


# The fields' meanings live in _config_fields.py (the documentation is generated from
# them); rebuilding puts them into the JSON schema too.
for _name, _field in ClusterConfig.model_fields.items():
    _field.description = FIELD_DESCRIPTIONS.get(_name)
ClusterConfig.model_rebuild(force=True)


def _rename_aliases(data: dict[str, Any]) -> dict[str, Any]:
    renamed = dict(data)
    for alias, name in _ALIASES.items():
        if alias in renamed:
            value = renamed.pop(alias)
            renamed.setdefault(name, value)
    return renamed


class _FileSource(PydanticBaseSettingsSource):
    """The config-file layer: merged files on the search path, one profile applied."""

    def __init__(self, settings_cls: type[BaseSettings], init_kwargs: dict[str, Any]) -> None:
        super().__init__(settings_cls)
        self._init_kwargs = init_kwargs

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        raise NotImplementedError  # __call__ is overridden; pydantic-settings requires it

    def __call__(self) -> dict[str, Any]:
        explicit = self._init_kwargs.get("config_file") or os.environ.get("CLUSTRIX_CONFIG_FILE")
        profile = self._init_kwargs.get("profile") or os.environ.get("CLUSTRIX_PROFILE")
        paths = [Path(explicit).expanduser()] if explicit else search_path()
        if explicit and not paths[0].is_file():
            raise ConfigError(f"config file {paths[0]} does not exist")
        return file_layer([p for p in paths if p.is_file()], profile)


def read_config_file(path: Path) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """Read one YAML/JSON config file -> (top-level fields, profiles), checking names."""
    text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (yaml.YAMLError, json.JSONDecodeError) as exc:
        raise ConfigError(f"config file {path} is not valid YAML/JSON: {exc}") from None
    data = data or {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of field names to values")
    raw_profiles = data.pop("profiles", None) or {}
    if not isinstance(raw_profiles, dict):
        raise ConfigError(f"config file {path}: 'profiles' must map names to field mappings")
    _check_names(data, f"config file {path}")
    profiles: dict[str, dict[str, Any]] = {}
    for name, fields in raw_profiles.items():
        if not isinstance(fields, dict):
            raise ConfigError(f"config file {path}: profile {name!r} must be a mapping")
        _check_names(fields, f"config file {path}, profile {name!r}")
        profiles[str(name)] = _rename_aliases(fields)
    return _rename_aliases(data), profiles


def file_layer(paths: list[Path], profile: str | None) -> dict[str, Any]:
    """Merge files (nearest first wins) and apply `profile`."""
    merged: dict[str, Any] = {}
    profiles: dict[str, dict[str, Any]] = {}
    for path in reversed(paths):  # farthest first, so nearer files overwrite
        top, named = read_config_file(path)
        merged.update(top)
        for name, fields in named.items():
            profiles.setdefault(name, {}).update(fields)
    if profile:
        if profile not in profiles:
            known = ", ".join(sorted(profiles)) or "none"
            where = ", ".join(str(p) for p in paths) or "no config file was found"
            raise ConfigError(
                f"unknown profile {profile!r} (profiles defined: {known}; in {where})"
            )
        merged.update(profiles[profile])
    return merged


def _check_names(data: Mapping[str, Any], where: str) -> None:
    valid = set(ClusterConfig.model_fields) | set(_ALIASES)
    for name in data:
        if name not in valid:
            raise ConfigError(
                f"{where}: unknown field {name!r}; valid fields are: {', '.join(sorted(valid))}"
            )


def _explain(exc: ValidationError, runtime: Mapping[str, Any]) -> str:
    lines = []
    for error in exc.errors():
        field = ".".join(str(p) for p in error["loc"]) or "config"
        top = str(error["loc"][0]) if error["loc"] else ""
        if error["type"] == "extra_forbidden":
            valid = ", ".join(sorted(ClusterConfig.model_fields))
            lines.append(f"unknown field {field!r}; valid fields are: {valid}")
            continue
        origin = "argument" if top in runtime else _origin(top)
        value = error.get("input")
        shown = "<secret>" if top == "password" else repr(value)
        message = str(error["msg"]).removeprefix("Value error, ")
        lines.append(f"{field}={shown} (from {origin}): {message}")
    return "invalid clustrix configuration: " + "; ".join(lines)


def _origin(field: str) -> str:
    env = f"CLUSTRIX_{field.upper()}"
    if env in os.environ:
        return f"environment variable {env}"
    for path in iter_config_files():
        try:
            top, _ = read_config_file(path)
        except ConfigError:
            continue
        if field in top:
            return f"config file {path}"
    return "config file or default"


class _GlobalConfig:
    """The process-wide configuration behind `configure()` and `get_config()`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._overrides: dict[str, Any] = {}
        self._config: ClusterConfig | None = None

    def get(self) -> ClusterConfig:
        with self._lock:
            if self._config is None:
                self._config = ClusterConfig(**self._overrides)
            return self._config

    def clear(self) -> None:
        with self._lock:
            self._overrides, self._config = {}, None

    def update(self, reset: bool, fields: Mapping[str, Any]) -> ClusterConfig:
        with self._lock:
            overrides = {} if reset else dict(self._overrides)
            overrides.update(fields)
            config = ClusterConfig(**overrides)  # validate before committing
            self._overrides, self._config = overrides, config
            return config


_GLOBAL = _GlobalConfig()


def configure(**fields: Any) -> ClusterConfig:
    """Set fields of the global configuration (runtime layer) and return it.

    Later calls add to earlier ones; the result is validated before anything changes.

    Args:
        **fields: `ClusterConfig` fields (or the seed's alias names) and their values.

    Raises:
        ConfigError: an unknown field or an invalid value; the message names the field,
            where its value came from, and what to change.
    """
    return _GLOBAL.update(False, fields)


def load_config(path: str | os.PathLike[str]) -> ClusterConfig:
    """Make the file at `path` the config-file layer of the global configuration.

    Replaces earlier `configure()` overrides; environment variables and defaults
    still fill the fields the file does not set.

    Args:
        path: a YAML or JSON config file (``~`` is expanded).

    Raises:
        ConfigError: the file does not exist, cannot be parsed, or sets an unknown
            field or an invalid value.
    """
    file = Path(path).expanduser()
    if not file.is_file():
        raise ConfigError(f"config file {file} does not exist")
    return _GLOBAL.update(True, {"config_file": file})


def get_config() -> ClusterConfig:
    """The global configuration (built on first use from files, env and defaults).

    Raises:
        ConfigError: a config file or a ``CLUSTRIX_*`` variable holds an invalid value.
    """
    return _GLOBAL.get()


def reset_config() -> None:
    """Forget `configure()`/`load_config()` calls (tests, long-lived processes)."""
    _GLOBAL.clear()


def iter_config_files() -> Iterator[Path]:
    """The config files that exist on the search path, nearest first."""
    return (p for p in search_path() if p.is_file())
