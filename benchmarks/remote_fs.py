"""Filesystem helpers on 10,000 remote files against the local tools on the same tree.

    python benchmarks/remote_fs.py [--rounds 5]

Needs the test lab (tests/lab/up.sh; run as root). The lab host is this machine, so
`du -sb` and `find | wc -l` run locally on the very tree that `cluster_du` and
`cluster_count_files` reach over SSH (through a Client that is already logged in).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import subprocess
import time
from pathlib import Path

from _lab import LAB, lab_config

from clustrix import Client
from clustrix import fs as cfs

WORK = "~/.clustrix-bench-fs"


def make_tree() -> Path:
    root = Path(LAB["home"]) / WORK.removeprefix("~/") / "tree"
    shutil.rmtree(root.parent, ignore_errors=True)
    for d in range(100):
        folder = root / f"d{d:02d}"
        folder.mkdir(parents=True)
        for f in range(100):
            (folder / f"f{f:03d}.dat").write_bytes(b"x" * f)
    subprocess.run(["chown", "-R", f"{LAB['user']}:{LAB['user']}", str(root.parent)], check=True)
    return root


def timed(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - started


async def main(rounds: int) -> None:
    root = make_tree()
    config = lab_config("ssh", WORK)
    du_ratios, count_ratios = [], []
    async with Client(config):
        await cfs.ls(".", config)  # log in first: the ratio is about the work, not the login
        for number in range(1, rounds + 1):
            local_du = timed(["du", "-sb", str(root)])
            started = time.perf_counter()
            usage = await cfs.du("tree", config)
            ours_du = time.perf_counter() - started
            local_count = timed(["sh", "-c", f"find '{root}' -type f | wc -l"])
            started = time.perf_counter()
            count = await cfs.count_files("tree", "*", config)
            ours_count = time.perf_counter() - started
            assert usage.file_count == count == 10_000
            du_ratios.append(ours_du / local_du)
            count_ratios.append(ours_count / local_count)
            print(
                f"round {number}: cluster_du {ours_du * 1e3:.0f} ms vs du -sb "
                f"{local_du * 1e3:.0f} ms ({ours_du / local_du:.1f}x); cluster_count_files "
                f"{ours_count * 1e3:.0f} ms vs find|wc -l {local_count * 1e3:.0f} ms "
                f"({ours_count / local_count:.1f}x)"
            )
    shutil.rmtree(root.parent, ignore_errors=True)
    print(
        f"median ratios over SSH vs local tools, 10,000 files: cluster_du "
        f"{statistics.median(du_ratios):.1f}x, cluster_count_files "
        f"{statistics.median(count_ratios):.1f}x"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    asyncio.run(main(parser.parse_args().rounds))
