"""`@cluster` options: validated once at decoration, resolved against a config per call."""

from __future__ import annotations

import dataclasses
import datetime
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from ._config import ClusterConfig
from ._exceptions import ConfigError
from ._retry import parse_retry_on
from ._states import JobState
from ._units import parse_memory, parse_time

OPTION_NAMES = (
    "cores",
    "memory",
    "time",
    "gpus",
    "partition",
    "queue",
    "account",
    "nodes",
    "environment",
    "parallel",
    "config",
    "profile",
    "extra",
    "max_concurrent",
    "retries",
    "retry_on",
)
ExtraValue = str | int | float | bool | None
_ENVIRONMENT = re.compile(r"^(inherit|replicate|conda:.+|venv:.+|[/~].*|[A-Za-z0-9_.+-]+)$")


@dataclass(frozen=True)
class Inherit:
    """``environment="inherit"``: run `python_executable` as it is."""

    def __str__(self) -> str:
        return "inherit"


@dataclass(frozen=True)
class Replicate:
    """``environment="replicate"``: a venv rebuilt from the local distributions."""

    def __str__(self) -> str:
        return "replicate"


@dataclass(frozen=True)
class Conda:
    """``environment="conda:<name>"`` (or a bare name): activate that conda environment."""

    name: str

    def __str__(self) -> str:
        return f"conda:{self.name}"


@dataclass(frozen=True)
class Venv:
    """``environment="venv:<path>"`` (or a bare path): the user's own venv on the
    cluster; ``path`` as given (``~`` is the remote home)."""

    path: str

    def __str__(self) -> str:
        return f"venv:{self.path}"


#: Where a task's Python comes from; parsed once from the `environment` text.
Environment = Inherit | Replicate | Conda | Venv


def parse_environment(value: object) -> Environment:
    """The typed choice for an `environment` value (ConfigError if not understood)."""
    if not isinstance(value, str) or not _ENVIRONMENT.match(value):
        raise ConfigError(
            f"environment={value!r} is not understood; use 'inherit', 'replicate', "
            "'conda:<name>' (or a bare conda environment name), 'venv:<path>' (or a bare "
            "absolute path to a venv)"
        )
    if value in ("inherit", "replicate"):
        return Inherit() if value == "inherit" else Replicate()
    if value.startswith(("venv:", "/", "~")):
        return Venv(value.removeprefix("venv:"))
    return Conda(value.removeprefix("conda:"))  # a bare name: conda (the seed's meaning)


@dataclass(frozen=True)
class Options:
    """The validated options of a `RemoteFunction` (None = take the config's default)."""

    cores: int | None = None
    memory: int | None = None  # bytes
    time: int | None = None  # seconds
    gpus: int | None = None
    partition: str | None = None
    account: str | None = None
    nodes: int | None = None
    environment: Environment | None = None
    parallel: bool | Literal["cores", "sweep"] | None = None  # None: config.auto_parallel
    config: ClusterConfig | None = None
    extra: Mapping[str, ExtraValue] = field(default_factory=dict)
    max_concurrent: int | None = None
    retries: int | None = None  # None: 0
    retry_on: frozenset[JobState] | None = None  # None: NODE_FAIL, PREEMPTED, LOST

    def merged(self, overrides: Mapping[str, Any]) -> Options:
        """A copy with `overrides` (raw option values) validated and applied."""
        return dataclasses.replace(self, **_validate(overrides))

    def over(self, base: Options) -> Options:
        """These options, with the ones left unset taken from `base` (`extra` merged)."""
        values: dict[str, Any] = {}
        for spec in dataclasses.fields(self):
            mine = getattr(self, spec.name)
            unset: Any = spec.default
            if spec.default_factory is not dataclasses.MISSING:
                unset = spec.default_factory()
            values[spec.name] = getattr(base, spec.name) if mine == unset else mine
        values["extra"] = {**base.extra, **self.extra}
        return Options(**values)

    def resolve(self, config: ClusterConfig) -> Resources:
        """Fill unset options from `config`'s defaults."""
        memory = self.memory
        if memory is None and config.default_memory:
            memory = parse_memory(config.default_memory)
        time = self.time
        if time is None and config.default_time:
            time = parse_time(config.default_time)
        environment = self.environment or parse_environment(config.environment)
        if environment == Inherit() and config.conda_env_name:
            environment = Conda(config.conda_env_name)
        return Resources(
            cores=self.cores or config.default_cores,
            memory=memory,
            time=time,
            gpus=self.gpus,
            partition=self.partition or config.partition,
            account=self.account or config.default_account,
            nodes=self.nodes,
            environment=environment,
            extra=dict(self.extra),
            max_concurrent=self.max_concurrent or config.max_parallel_jobs,
        )


@dataclass(frozen=True)
class Resources:
    """What one submission asks for, with every default filled in."""

    cores: int = 1
    memory: int | None = None
    time: int | None = None
    gpus: int | None = None
    partition: str | None = None
    account: str | None = None
    nodes: int | None = None
    environment: Environment = Inherit()
    extra: Mapping[str, ExtraValue] = field(default_factory=dict)
    max_concurrent: int | None = None


def validate_options(raw: Mapping[str, Any]) -> Options:
    """Turn `@cluster(...)` keywords into `Options`, or raise naming what is wrong."""
    return Options(**_validate(raw))


def _validate(raw: Mapping[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(raw) - set(OPTION_NAMES))
    if unknown:
        raise TypeError(
            f"unknown @cluster option(s) {', '.join(map(repr, unknown))}; valid options "
            f"are: {', '.join(OPTION_NAMES)}"
        )
    values: dict[str, Any] = {}
    for name, value in raw.items():
        if name in ("profile", "queue"):
            continue
        values[name] = _CHECKS[name](value) if value is not None else None
    queue, partition = raw.get("queue"), raw.get("partition")
    if queue is not None and partition is not None and queue != partition:
        raise ConfigError(
            f"partition={partition!r} and queue={queue!r} disagree; they are synonyms, give one"
        )
    if queue is not None:
        values["partition"] = _name("queue", queue)
    profile = raw.get("profile")
    if profile is not None:
        if values.get("config") is not None:
            raise ConfigError("give either config= or profile=, not both")
        values["config"] = ClusterConfig(profile=_name("profile", profile))
    if "extra" in values and values["extra"] is None:
        values["extra"] = {}
    return values


def _positive(name: str, minimum: int = 1) -> Any:
    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ConfigError(f"{name}={value!r} must be an integer >= {minimum}")
        return value

    return check


def _name(option: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip() or any(c in value for c in "\n\r\0"):
        raise ConfigError(f"{option}={value!r} must be a non-empty single-line string")
    return value


def _memory(value: Any) -> int:
    return parse_memory(value)


def _time(value: Any) -> int:
    if not isinstance(value, str | datetime.timedelta):
        raise ConfigError(
            f"time={value!r} is ambiguous; write 'HH:MM:SS', 'D-HH:MM:SS' or 'MM:SS', "
            "or pass a datetime.timedelta"
        )
    return parse_time(value)


def _parallel(value: Any) -> bool | str:
    if isinstance(value, bool):
        return value
    if value not in ("cores", "sweep"):
        raise ConfigError(
            f"parallel={value!r} must be True, False, None (automatic), 'cores' or 'sweep'"
        )
    return str(value)


def _config(value: Any) -> ClusterConfig:
    if not isinstance(value, ClusterConfig):
        raise ConfigError(f"config= takes a ClusterConfig, got {type(value).__name__}")
    return value


def _extra(value: Any) -> dict[str, ExtraValue]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"extra={value!r} must be a dict of scheduler options")
    for key in value:
        if not isinstance(key, str) or not key:
            raise ConfigError(f"extra has a key {key!r}; keys must be non-empty strings")
    return dict(value)


_CHECKS: dict[str, Any] = {
    "cores": _positive("cores"),
    "memory": _memory,
    "time": _time,
    "gpus": _positive("gpus", 0),
    "partition": lambda v: _name("partition", v),
    "account": lambda v: _name("account", v),
    "nodes": _positive("nodes"),
    "environment": parse_environment,
    "parallel": _parallel,
    "config": _config,
    "extra": _extra,
    "max_concurrent": _positive("max_concurrent"),
    "retries": _positive("retries", 0),
    "retry_on": parse_retry_on,
}
