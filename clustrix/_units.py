"""Memory and time strings: parsed once, validated, normalised.

Memory takes K/M/G/T with an optional ``B`` or ``iB``; all are powers of 1024, as
schedulers read them ("4GB" = "4G" = "4GiB"). Time takes ``D-HH:MM:SS``,
``HH:MM:SS``, ``MM:SS`` or a :class:`datetime.timedelta`; a bare number is refused
because schedulers disagree on its unit.
"""

from __future__ import annotations

import datetime
import re

from ._exceptions import ConfigError

_MEMORY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(I?B)?\s*$", re.IGNORECASE)
_FACTORS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
_TIME = re.compile(r"^(?:(\d+)-)?(\d+)(?::(\d{1,2}))?(?::(\d{1,2}))?$")


def parse_memory(value: str | int) -> int:
    """Return the number of bytes in a memory string such as ``"4GB"`` or ``"512M"``."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ConfigError(f"memory must be a string like '4GB', got {value!r}")
    if isinstance(value, int):
        raise ConfigError(
            f"memory {value!r} has no unit; write it with one, e.g. '{value}M' or '{value}G'"
        )
    match = _MEMORY.match(value)
    if not match or (not match.group(2) and not match.group(3)):
        raise ConfigError(
            f"memory {value!r} is not understood; use a number with K, M, G or T "
            "(optionally followed by B or iB), e.g. '4GB' or '512M'"
        )
    number = float(match.group(1))
    size = int(number * _FACTORS[match.group(2).upper()])
    if size <= 0:
        raise ConfigError(f"memory {value!r} must be larger than zero")
    return size


def format_memory(size: int) -> str:
    """Render bytes in the largest unit that divides them exactly: ``"4G"``, ``"1536M"``."""
    for unit in ("T", "G", "M", "K"):
        if size % _FACTORS[unit] == 0:
            return f"{size // _FACTORS[unit]}{unit}"
    return f"{-(-size // 1024)}K"


def parse_time(value: str | datetime.timedelta) -> int:
    """Return whole seconds for a walltime such as ``"1-02:00:00"`` or ``"10:00"``."""
    if isinstance(value, datetime.timedelta):
        seconds = int(value.total_seconds())
        if seconds <= 0:
            raise ConfigError(f"time {value!r} must be longer than zero")
        return seconds
    if not isinstance(value, str):
        raise ConfigError(
            f"time {value!r} is ambiguous; write it as 'HH:MM:SS', 'D-HH:MM:SS', 'MM:SS' "
            "or pass a datetime.timedelta"
        )
    if value.strip().isdigit():
        raise ConfigError(
            f"time {value!r} is ambiguous (minutes? seconds?); write it as 'HH:MM:SS', "
            "'D-HH:MM:SS' or 'MM:SS', or pass a datetime.timedelta"
        )
    match = _TIME.match(value.strip())
    if not match or (match.group(3) is None and match.group(1) is None):
        raise ConfigError(
            f"time {value!r} is not understood; write it as 'HH:MM:SS', 'D-HH:MM:SS' "
            "or 'MM:SS', or pass a datetime.timedelta"
        )
    days, first, second, third = match.groups()
    parts = [int(first)] + [int(p) for p in (second, third) if p is not None]
    if days is not None and len(parts) == 1:
        parts = [parts[0], 0, 0]  # "1-02" is days-hours
    if len(parts) == 2 and days is None:
        hours, minutes, seconds = 0, parts[0], parts[1]  # MM:SS
    else:
        parts += [0] * (3 - len(parts))  # D-HH, D-HH:MM
        hours, minutes, seconds = parts
    clock_has_hours = days is not None or len(parts) == 3
    if seconds >= 60 or (clock_has_hours and minutes >= 60):
        raise ConfigError(f"time {value!r} has minutes or seconds of 60 or more")
    total = (int(days or 0) * 24 + hours) * 3600 + minutes * 60 + seconds
    if total <= 0:
        raise ConfigError(f"time {value!r} must be longer than zero")
    return total


def format_time(seconds: int) -> str:
    """Render seconds as ``D-HH:MM:SS`` (days only when needed), as Slurm writes it."""
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    clock = f"{hours:02d}:{minutes:02d}:{secs:02d}"
    return f"{days}-{clock}" if days else clock
