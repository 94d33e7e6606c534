"""What every batch scheduler module provides, and the value objects they share.

A scheduler is *pure*: it builds argument vectors and parses the text the scheduler
prints, and never runs anything itself. One generic batch backend does all I/O
(staging, SSH, polling) against the :class:`Scheduler` class below, so a new
scheduler is one small class plus one template.

Conventions every module follows:

* argv lists are handed to the backend, which joins them with :func:`shlex.join`
  before sending them over SSH (a remote exec runs through the login shell).
* ``parse_status``/``parse_accounting`` are keyed by the **element** job id (the
  native id of one array element, see ``element_job_id``) and may contain ids that
  were not asked for: look up only the ids you asked about.
* An id missing from a status answer (or marked ``outcome_unknown``) has left the
  scheduler's live view; ask ``accounting_argv`` next, and fall back on the runner's
  exit-code file. An element missing everywhere while ids of its own submission are
  still listed, and which never started, was cancelled outside clustrix while it was
  pending (Slurm and Grid Engine keep no record of such an element).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from .._exceptions import ConfigError
from .._states import JobState

PbsDialect = Literal["pro", "torque"]

JOB_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,15}$")
_OPTION_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")
# Characters a directive line cannot carry safely: schedulers parse these lines with
# their own ad-hoc rules (quotes, comments, `$` pseudo-variables), so refuse them.
_UNSAFE_DIRECTIVE_CHARS = frozenset("'\"`$;#\\")


@dataclass(frozen=True)
class ArraySpec:
    """An array of ``count`` elements, indexed 0..count-1; at most ``throttle`` at once."""

    count: int
    throttle: int | None = None

    def __post_init__(self) -> None:
        if isinstance(self.count, bool) or not isinstance(self.count, int) or self.count < 1:
            raise ConfigError(f"an array needs at least one element, got count={self.count!r}")
        if self.throttle is not None and (
            isinstance(self.throttle, bool)
            or not isinstance(self.throttle, int)
            or self.throttle < 1
        ):
            raise ConfigError(f"array throttle must be a positive integer, got {self.throttle!r}")


@dataclass(frozen=True)
class BatchResources:
    """What one batch submission asks of the scheduler.

    ``memory`` is in bytes per task (Slurm ``--mem`` per node, SGE ``h_vmem`` per slot
    = memory/cores, PBS ``mem``); ``time`` is in seconds. ``extra`` holds raw
    directives keyed by option name without leading dashes (``{"qos": "debug"}`` ->
    ``#SBATCH --qos=debug``); ``True``/``None`` give a bare flag, ``False`` omits it.
    ``job_name`` is clustrix's unique key for the submission, already sanitised.
    """

    job_name: str
    log_dir: str
    cores: int = 1
    memory: int | None = None
    time: int | None = None
    gpus: int | None = None
    nodes: int | None = None
    queue: str | None = None
    account: str | None = None
    extra: Mapping[str, str | int | bool | None] = field(default_factory=dict)
    array: ArraySpec | None = None
    hold: bool = False


@dataclass(frozen=True)
class TaskStatus:
    """One element as the scheduler sees it.

    ``exit_code`` is what a shell would report: the exit status, or 128+N for a
    process killed by signal N. ``raw`` is the scheduler's own state text.
    ``outcome_unknown`` marks an element the scheduler lists as ended without saying
    how (Grid Engine's finished-jobs list): the backend asks the accounting command
    and the runner's files, and knows the element did leave the queue.
    """

    state: JobState
    reason: str | None = None
    exit_code: int | None = None
    raw: str = ""
    outcome_unknown: bool = False


# --- helpers shared by the scheduler modules -------------------------------------


def check_job_name(name: str) -> str:
    """Return ``name`` if it is a valid clustrix job name, else raise ConfigError."""
    if not isinstance(name, str) or not JOB_NAME.match(name):
        raise ConfigError(
            f"job name {name!r} must be 1-15 characters of letters, digits, '_', '.' or '-'"
        )
    return name


def check_path(what: str, path: str) -> str:
    """An absolute path without whitespace or control characters (for directive lines;
    log directories go through :func:`check_log_dir` instead)."""
    if not isinstance(path, str) or not path.startswith("/"):
        raise ConfigError(f"{what} must be an absolute path, got {path!r}")
    if any(ch.isspace() or ord(ch) < 32 or ch in _UNSAFE_DIRECTIVE_CHARS for ch in path):
        raise ConfigError(
            f"{what} {path!r} contains whitespace, quotes or shell characters, which a "
            "scheduler directive cannot carry; choose a plainer directory"
        )
    return path.rstrip("/") or "/"


def check_log_dir(scheduler: str, path: str, refuse: Mapping[str, str] | None = None) -> str:
    """The absolute log directory, as a submit command line carries it (any characters).

    The log directory never goes into a directive line: each scheduler module puts it
    on the submit command (sent as argv through :func:`shlex.join`) or makes the log
    file names relative to it. ``refuse`` maps what ``scheduler`` truly cannot take
    (substrings) to the reason, which the ConfigError names.
    """
    if not isinstance(path, str) or not path.startswith("/"):
        raise ConfigError(f"log_dir must be an absolute path, got {path!r}")
    if "\0" in path:
        raise ConfigError(f"log_dir {path!r} contains a NUL character")
    for text, why in (refuse or {}).items():
        if text in path:
            raise ConfigError(
                f"{scheduler} cannot take the run directory {path!r}: it contains {text!r}, "
                f"and {why}; choose a remote_work_dir without it"
            )
    return path.rstrip("/") or "/"


def directive_value(what: str, value: object) -> str:
    """Render one directive value, refusing what a directive line cannot carry."""
    if isinstance(value, bool) or value is None:
        raise ConfigError(f"{what} needs a value, got {value!r}")
    text = str(value)
    if not text:
        raise ConfigError(f"{what} must not be empty")
    bad = sorted(
        {ch for ch in text if ch.isspace() or ord(ch) < 32 or ch in _UNSAFE_DIRECTIVE_CHARS}
    )
    if bad:
        raise ConfigError(
            f"{what} {text!r} contains {''.join(bad)!r}: whitespace, quotes, '$', ';', '#' "
            "and backslashes cannot be carried safely by a scheduler directive"
        )
    return text


def extra_options(extra: Mapping[str, str | int | bool | None]) -> list[tuple[str, str | None]]:
    """Validated ``(option, value)`` pairs of ``extra``; value None means a bare flag."""
    options: list[tuple[str, str | None]] = []
    for key, value in extra.items():
        name = key.lstrip("-") if isinstance(key, str) else key
        if not isinstance(name, str) or not _OPTION_NAME.match(name):
            raise ConfigError(
                f"extra option name {key!r} must be a letter followed by letters, digits, "
                "'_' or '-'"
            )
        if value is False:
            continue
        if value is True or value is None:
            options.append((name, None))
        else:
            options.append((name, directive_value(f"extra option {name!r}", value)))
    return options


def clock(what: str, seconds: int | None, *, pad_hours: bool = True) -> str | None:
    """``HH:MM:SS`` (``H:MM:SS`` without ``pad_hours``) of a positive time, or None."""
    if positive(what, seconds) is None:
        return None
    hours, rest = divmod(seconds or 0, 3600)
    return (
        f"{hours:02d}:{rest // 60:02d}:{rest % 60:02d}"
        if pad_hours
        else (f"{hours}:{rest // 60:02d}:{rest % 60:02d}")
    )


def queue_and_account(res: BatchResources) -> list[str]:
    """``-q QUEUE`` and ``-A ACCOUNT`` (PBS and Grid Engine spell them alike)."""
    lines = [] if res.queue is None else [f"-q {directive_value('queue', res.queue)}"]
    if res.account is not None:
        lines.append(f"-A {directive_value('account', res.account)}")
    return lines


def dash_options(res: BatchResources) -> list[str]:
    """``extra`` as ``-KEY VALUE`` (or ``-KEY``) lines, validated."""
    return [f"-{key}" if v is None else f"-{key} {v}" for key, v in extra_options(res.extra)]


def positive(what: str, value: int | None) -> int | None:
    """``value`` if it is None or a positive int, else ConfigError."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{what} must be a positive integer, got {value!r}")
    return value


def signal_exit_code(code: int, signal: int) -> int:
    """A shell-style exit code: 128+signal when a signal ended the process."""
    return 128 + signal if signal else code


def expand_indices(spec: str) -> list[int]:
    """Expand ``"1,3-5"``, ``"6-99%4"`` or SGE ``"7-10:2"`` into the listed indices."""
    indices: list[int] = []
    for part in spec.split("%", 1)[0].split(","):
        part = part.strip()
        if not part:
            continue
        step = 1
        if ":" in part:
            part, step_text = part.split(":", 1)
            step = int(step_text)
        if "-" in part:
            first, last = (int(x) for x in part.split("-", 1))
            indices.extend(range(first, last + 1, max(step, 1)))
        else:
            indices.append(int(part))
    return indices


def unique_sorted_ids(ids: Sequence[str]) -> list[str]:
    """Ids without duplicates, numerically sorted where they start with a number."""

    def key(job_id: str) -> tuple[int, str]:
        match = re.match(r"\d+", job_id)
        return (int(match.group()) if match else -1, job_id)

    return sorted(set(ids), key=key)
