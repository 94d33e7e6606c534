"""Environment variables: a ``CLUSTRIX_*`` variable that names no field is warned about."""

from __future__ import annotations

import difflib
import os
import warnings
from collections.abc import Iterable, Mapping

# CLUSTRIX_* variables that name no field but are clustrix's own: set by the runner in
# jobs and by the Kubernetes manifests, read by the test suite and the lab.
_OWN_VARIABLES = frozenset(
    {
        "CLUSTRIX_IN_JOB",
        "CLUSTRIX_TASK_INDEX",
        "CLUSTRIX_K8S_PAYLOAD",
        "CLUSTRIX_K8S_WORK",
        "CLUSTRIX_K8S_PYTHON",
        "CLUSTRIX_K8S_RESULT_LIMIT",
        "CLUSTRIX_K8S_TASK_TIME",
        "CLUSTRIX_UPDATE_GOLDEN",
        "CLUSTRIX_LOOP_WORKER",
    }
)
_OWN_PREFIXES = ("CLUSTRIX_TEST_", "CLUSTRIX_LAB_")


def warn_unknown_variables(field_names: Iterable[str], aliases: Mapping[str, str]) -> None:
    """Warn about each ``CLUSTRIX_*`` variable that names no field (a typo would
    otherwise be ignored without a word), naming the closest field."""
    names = list(field_names)
    fields = {f"CLUSTRIX_{name.upper()}" for name in names}
    for variable in os.environ:
        upper = variable.upper()  # pydantic-settings reads them case-insensitively
        if (
            not upper.startswith("CLUSTRIX_")
            or upper in fields
            or upper in _OWN_VARIABLES
            or upper.startswith(_OWN_PREFIXES)
        ):
            continue
        name = upper.removeprefix("CLUSTRIX_").lower()
        close = difflib.get_close_matches(name, names, n=1)
        field = aliases.get(name) or (close[0] if close else None)
        hint = f"; did you mean CLUSTRIX_{field.upper()} (field {field!r})?" if field else ""
        warnings.warn(
            f"environment variable {variable} names no clustrix configuration field and "
            f"is ignored{hint}",
            UserWarning,
            stacklevel=2,
        )
