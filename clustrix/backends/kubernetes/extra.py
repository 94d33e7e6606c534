"""`extra=` on Kubernetes: the user's pod-spec fragment, merged into the Job's pod."""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import Any

from ..._exceptions import ConfigError

_NOT_OVERRIDABLE = ("containers", "restartPolicy")
_CONTAINER_LISTS = ("env", "envFrom", "volumeMounts")


def apply_extra(
    metadata: dict[str, Any],
    pod: dict[str, Any],
    container: dict[str, Any],
    extra: dict[str, Any],
    *,
    reserved: tuple[str, ...],
) -> None:
    """Merge the user's pod-spec fragment: lists are appended, mappings merged; the
    `reserved` labels (clustrix's own) cannot be set."""
    for key, value in extra.items():
        if key in ("labels", "annotations"):
            if not isinstance(value, Mapping) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in value.items()
            ):
                raise ConfigError(f"extra[{key!r}] must map strings to strings")
            if key == "labels" and set(value) & set(reserved):
                raise ConfigError(f"extra['labels'] may not set {', '.join(reserved)}")
            metadata[key].update(value)
        elif key in _NOT_OVERRIDABLE:
            raise ConfigError(
                f"extra[{key!r}] cannot be overridden on Kubernetes; use extra['container'] "
                "to change the task's container"
            )
        elif key == "container":
            if not isinstance(value, Mapping):
                raise ConfigError("extra['container'] must be a mapping (container fields)")
            for field, part in value.items():
                container[field] = _merge(container.get(field), part)
        elif key in _CONTAINER_LISTS:
            container[key] = _merge(container.get(key), _as_list(key, value))
        else:
            pod[key] = _merge(pod.get(key), _plain(value))


def _as_list(key: str, value: Any) -> list[Any]:
    if not isinstance(value, list | tuple):
        raise ConfigError(f"extra[{key!r}] must be a list")
    return list(_plain(value))


def _plain(value: Any) -> Any:
    """A JSON-compatible deep copy (also refuses what JSON cannot carry)."""
    try:
        return json.loads(json.dumps(value))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"extra holds a value Kubernetes cannot take: {exc}") from None


def _merge(base: Any, addition: Any) -> Any:
    if isinstance(base, dict) and isinstance(addition, Mapping):
        merged = dict(base)
        for key, value in addition.items():
            merged[key] = _merge(merged.get(key), value)
        return merged
    if isinstance(base, list) and isinstance(addition, list | tuple):
        return base + list(addition)
    return copy.deepcopy(addition)
