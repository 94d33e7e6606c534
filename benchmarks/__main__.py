"""Run clustrix's benchmarks against their floors and write benchmarks/RESULTS.md.

    python -m benchmarks [--only NAME[,NAME]] [--rounds N] [--quick] [--output PATH]

Each group measures clustrix and its floor (and the peers) in alternating rounds of
one run; see each module's docstring for what exactly is timed. Most groups need the
test lab (tests/lab/up.sh) and root (the peers run as the lab user, the fs tree is
written into its home). A benchmark is not a test and does not run in CI.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from . import local_sweep, memory, remote_fs, replicate, slurm_calls, ssh_calls, sweeps
from ._lab import lab_up
from ._report import Figure, render

Runner = Callable[[int, bool], Awaitable[list[Figure]]]
GROUPS: dict[str, tuple[str, bool]] = {
    "local_sweep": ("local backend sweep vs ProcessPoolExecutor.map", False),
    "slurm_calls": ("Slurm: one call vs the floor; 20 and 200 concurrent calls", True),
    "ssh": ("ssh backend: 20 concurrent calls vs one call; a sweep vs one OpenSSH session", True),
    "sweeps": ("Slurm: 500-task sweeps (default, chunksize=1, 25) vs the array floor", True),
    "submitit": ("peer: submitit on the login node, 500 tasks vs the array floor", True),
    "dask": ("peer: dask-jobqueue on the login node, 500 tasks vs the array floor", True),
    "memory": ("client memory per in-flight job, on every backend", True),
    "remote_fs": ("cluster_du / cluster_count_files vs du / find on the same tree", True),
    "replicate": ('environment="replicate": cold build vs warm reuse', True),
}
ALIASES = {"peers": ["submitit", "dask"], "all": list(GROUPS)}
RUNNERS: dict[str, Runner] = {
    "local_sweep": local_sweep.run,
    "slurm_calls": slurm_calls.run,
    "ssh": ssh_calls.run,
    "memory": memory.run,
    "remote_fs": remote_fs.run,
    "replicate": replicate.run,
}
NOTES = [
    "The lab runs on this one machine (real sshd, Slurm 22.05 with accounting, loopback "
    "only); its node is declared 16 CPUs on 2 real cores.",
    "Other engineers run lab tests on the same Slurm and sshd at the same time, so the "
    "seconds (and some ratios) are noisy; rounds alternate systems so each ratio compares "
    "neighbours in time.",
    "Slurm submissions are counted from the job ids clustrix reports (distinct ids before "
    "an array's `_`); SSH logins from sshd's log, only lines whose source port is one of "
    "this process's sockets.",
    "Scheduler commands per poll tick are clustrix internals (no public API): read "
    "defensively, n/a when absent.",
]


def parse(argv: list[str]) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description=__doc__.split("\n\n")[0],
        epilog="groups: "
        + "; ".join(f"{k} = {v[0]}" for k, v in GROUPS.items())
        + "; peers = submitit,dask; all (default)",
    )
    parser.add_argument("--only", default="all", help="comma-separated groups (see below)")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds (default 5)")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="small sizes and one round, to check that everything runs",
    )
    parser.add_argument("--output", type=Path, default=Path(__file__).parent / "RESULTS.md")
    options = parser.parse_args(argv)
    chosen: list[str] = []
    for name in filter(None, (n.strip() for n in options.only.split(","))):
        if name not in GROUPS and name not in ALIASES:
            parser.error(f"unknown group {name!r}; choose from {', '.join([*GROUPS, *ALIASES])}")
        chosen += [n for n in ALIASES.get(name, [name]) if n not in chosen]
    options.groups = [g for g in GROUPS if g in chosen]
    if options.quick:
        options.rounds = 1
    if options.rounds < 1:
        parser.error("--rounds must be at least 1")
    return options


async def measure(groups: list[str], rounds: int, quick: bool) -> list[Figure]:
    """Run the chosen groups in order; every group's figures, errors included."""
    figures: list[Figure] = []
    lab = lab_up()
    peers: list[str] = [p for p in ("submitit", "dask") if p in groups]
    for group in groups:
        if group in ("submitit", "dask") and ("sweeps" in groups or not peers):
            continue  # measured inside the sweeps' rounds (or the first peer's), same floor
        if GROUPS[group][1] and not lab:
            figures.append(Figure(GROUPS[group][0], "", error="the test lab is not up"))
            continue
        print(f"[{time.strftime('%H:%M:%S')}] {group}: {GROUPS[group][0]}", flush=True)
        if group in ("sweeps", "submitit", "dask"):
            figures += await sweeps.run(rounds, quick, group == "sweeps", peers)
            peers = []  # once
        else:
            figures += await RUNNERS[group](rounds, quick)
    return figures


def main(argv: list[str] | None = None) -> None:
    """Measure, print the table, write RESULTS.md."""
    options = parse(sys.argv[1:] if argv is None else argv)
    started = datetime.datetime.now(datetime.UTC)
    load_before = os.getloadavg()
    clock = time.monotonic()
    figures = asyncio.run(measure(options.groups, options.rounds, options.quick))
    command = "python -m benchmarks " + " ".join(sys.argv[1:] if argv is None else argv)
    notes = [
        f"Rounds: {options.rounds}" + (" (--quick: reduced sizes)" if options.quick else ""),
        *NOTES,
        "Load average (1/5/15 min) at the start: "
        + "/".join(f"{x:.1f}" for x in load_before)
        + "; at the end: "
        + "/".join(f"{x:.1f}" for x in os.getloadavg())
        + f" (on {os.cpu_count()} cores).",
    ]
    text = render(
        figures,
        command=command.strip(),
        started=started,
        seconds=time.monotonic() - clock,
        notes=notes,
    )
    options.output.write_text(text)
    print(text)
    print(f"written to {options.output}")


if __name__ == "__main__":
    main()
