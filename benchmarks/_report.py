"""Figures, their summary (median, min-max, ratio to the floor) and RESULTS.md."""

from __future__ import annotations

import datetime
import os
import platform
import statistics
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

DASH = "\N{EN DASH}"


@dataclass
class Figure:
    """One line of the results table.

    `samples` and `floor` are paired by position (same round); the ratio of each pair
    is what is summarised. `check` decides whether the goal is met from the
    figure itself (None: nothing to meet, reported only).
    """

    name: str
    unit: str
    samples: list[float] = field(default_factory=list)
    floor_name: str = ""
    floor: list[float] = field(default_factory=list)
    goal: str = "—"
    check: Callable[[Figure], bool] | None = None
    notes: list[str] = field(default_factory=list)
    error: str | None = None

    def ratios(self) -> list[float]:
        """Per-round ratios sample / floor."""
        return [s / f for s, f in zip(self.samples, self.floor, strict=False) if f > 0]

    def median(self) -> float | None:
        """Median of the samples, None if there are none."""
        return statistics.median(self.samples) if self.samples else None

    def ratio(self) -> float | None:
        """Median of the per-round ratios, None if there is no floor."""
        ratios = self.ratios()
        return statistics.median(ratios) if ratios else None

    def met(self) -> str:
        """``yes``/``no``, ``—`` when there is no goal, ``error`` when it did not run."""
        if self.error is not None and not self.samples:
            return "error"
        if self.check is None:
            return "—"
        if not self.samples:
            return "n/a"
        return "yes" if self.check(self) else "**no**"


def ratio_at_most(limit: float) -> Callable[[Figure], bool]:
    """Goal: the median ratio to the floor is at most `limit`."""
    return lambda f: (f.ratio() or float("inf")) <= limit


def value_at_most(limit: float) -> Callable[[Figure], bool]:
    """Goal: every sample is at most `limit`."""
    return lambda f: max(f.samples) <= limit


def both(*checks: Callable[[Figure], bool]) -> Callable[[Figure], bool]:
    """Goal: all of `checks`."""
    return lambda f: all(check(f) for check in checks)


def fmt(value: float) -> str:
    """Three significant digits, no exponent for the usual ranges."""
    if value == 0:
        return "0"
    if abs(value) >= 100:
        return f"{value:.0f}"
    return f"{value:.3g}"


def spread(values: list[float], unit: str = "") -> str:
    """``median (min-max) unit`` of `values`, with an en dash."""
    if not values:
        return "—"
    tail = f" {unit}" if unit else ""
    if min(values) == max(values):
        return f"{fmt(values[0])}{tail}"
    mid = statistics.median(values)
    return f"{fmt(mid)} ({fmt(min(values))}{DASH}{fmt(max(values))}){tail}"


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def _command(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "n/a"
    text = (out.stdout or out.stderr).strip()
    return text.splitlines()[0] if text else "n/a"


def _os_name() -> str:
    debian = _read("/etc/debian_version").strip()
    return f"Debian {debian}" if debian else platform.platform()


def machine() -> list[tuple[str, str]]:
    """What the numbers were measured on."""
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in _read("/proc/cpuinfo").splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "n/a",
    )
    mem_kb = next(
        (
            int(line.split()[1])
            for line in _read("/proc/meminfo").splitlines()
            if line.startswith("MemTotal:")
        ),
        0,
    )
    return [
        ("CPU", cpu),
        ("cores", f"{os.cpu_count()} (usable here: {len(os.sched_getaffinity(0))})"),
        ("memory", f"{mem_kb / 1024 / 1024:.1f} GiB"),
        ("kernel", f"{platform.system()} {platform.release()}"),
        ("OS", _os_name()),
        ("Python", platform.python_version()),
        ("Slurm", _command(["sinfo", "--version"])),
        ("OpenSSH", _command(["ssh", "-V"])),
        ("clustrix commit", _command(["git", "rev-parse", "--short", "HEAD"])),
    ]


def render(
    figures: list[Figure],
    *,
    command: str,
    started: datetime.datetime,
    seconds: float,
    notes: list[str],
) -> str:
    """The RESULTS.md text."""
    lines = [
        "# clustrix benchmark results",
        "",
        f"Written by `{command}` on {started:%Y-%m-%d %H:%M %Z} (took {seconds / 60:.0f} min).",
        f"Figures: median (min{DASH}max) over the rounds; the ratio is taken against the floor",
        "measured in the same round (rounds alternate the systems), then summarised the same",
        "way. Ratios, not seconds, are the figures that matter.",
        "",
        *[f"- {note}" for note in notes],
        "",
        "## Machine",
        "",
        *[f"- {key}: {value}" for key, value in machine()],
        "",
        "## Figures",
        "",
        "| figure | clustrix | floor | ratio | goal | met |",
        "|---|---|---|---|---|---|",
    ]
    for figure in figures:
        floor = (
            f"{figure.floor_name}: {spread(figure.floor, 's')}"
            if figure.floor
            else (figure.floor_name or "—")
        )
        value = spread(figure.samples, figure.unit) if figure.samples else "did not run"
        ratio = spread(figure.ratios()) + "x" if figure.ratios() else "—"
        cells = [figure.name, value, floor, ratio, figure.goal, figure.met()]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    details = [f for f in figures if f.notes or f.error]
    if details:
        lines += ["", "## Notes per figure", ""]
        for figure in details:
            parts = list(figure.notes)
            if figure.error:
                parts.append(f"error: `{figure.error}`")
            lines.append(f"- **{figure.name}**: " + "; ".join(parts))
    return "\n".join(lines) + "\n"
