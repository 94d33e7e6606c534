"""Filesystem helpers on 10,000 remote files against the local tools on the same tree.

The lab host is this machine (run as root), so `du -sb` and `find | wc -l` run locally
on the very tree that `cluster_du` and `cluster_count_files` reach over SSH, through
a Client that is already logged in.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from pathlib import Path

from clustrix import Client
from clustrix import fs as cfs

from ._lab import LAB, lab_config
from ._report import Figure

WORK = "~/.clustrix-bench-fs"


def make_tree(dirs: int) -> Path:
    """`dirs` x 100 small files under the lab user's home; the tree's root."""
    root = Path(LAB["home"]) / WORK.removeprefix("~/") / "tree"
    shutil.rmtree(root.parent, ignore_errors=True)
    for d in range(dirs):
        folder = root / f"d{d:02d}"
        folder.mkdir(parents=True)
        for f in range(100):
            (folder / f"f{f:03d}.dat").write_bytes(b"x" * f)
    subprocess.run(["chown", "-R", f"{LAB['user']}:{LAB['user']}", str(root.parent)], check=True)
    return root


def timed(command: list[str]) -> float:
    """Seconds a local command takes."""
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - started


async def run(rounds: int, quick: bool) -> list[Figure]:
    """Figures: cluster_du vs du -sb, cluster_count_files vs find | wc -l."""
    dirs = 10 if quick else 100
    files = dirs * 100
    du = Figure(f"remote fs: cluster_du, {files:,} files", "s", floor_name="local du -sb")
    count = Figure(
        f"remote fs: cluster_count_files, {files:,} files", "s", floor_name="local find | wc -l"
    )
    root = await asyncio.to_thread(make_tree, dirs)
    config = lab_config("ssh", WORK)
    try:
        async with Client(config):
            await cfs.ls(".", config)  # log in first: the ratio is about the work
            for number in range(1, rounds + 1):
                du.floor.append(await asyncio.to_thread(timed, ["du", "-sb", str(root)]))
                started = time.perf_counter()
                usage = await cfs.du("tree", config)
                du.samples.append(time.perf_counter() - started)
                count.floor.append(
                    await asyncio.to_thread(timed, ["sh", "-c", f"find '{root}' -type f | wc -l"])
                )
                started = time.perf_counter()
                found = await cfs.count_files("tree", "*", config)
                count.samples.append(time.perf_counter() - started)
                if usage.file_count != files or found != files:
                    raise RuntimeError(f"counted {usage.file_count}/{found} of {files} files")
                print(
                    f"  remote fs round {number}: du {du.samples[-1] * 1e3:.0f} ms vs "
                    f"{du.floor[-1] * 1e3:.0f} ms, count {count.samples[-1] * 1e3:.0f} ms vs "
                    f"{count.floor[-1] * 1e3:.0f} ms",
                    flush=True,
                )
    except Exception as error:
        for figure in (du, count):
            figure.error = f"{type(error).__name__}: {error}"
    finally:
        shutil.rmtree(root.parent, ignore_errors=True)
    return [du, count]
