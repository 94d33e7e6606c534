"""A data workflow: find the input files on the cluster, process each in parallel there,
gather a summary here. (The original clustrix's "Using Filesystem Utilities" example.)

Run it from a directory holding a `clustrix.yml` for your cluster, with CSV files
(`value` column) under `input/` in `remote_work_dir` on the cluster:

    python examples/data_workflow.py            # or: python examples/data_workflow.py data/

Without a `clustrix.yml` it runs on the local backend, on `./input/`.

The files never travel to this machine: the filesystem helpers ask the cluster about
them (over the client's SSH connection), and each task reads its file where it runs.
"""

from __future__ import annotations

import csv
import os
import posixpath
import sys

from clustrix import cluster, cluster_du, cluster_exists, cluster_find, get_config


@cluster(cores=1, memory="1GB", time="00:10:00")
def summarise(path: str) -> dict[str, float | str]:
    """Rows, sum and maximum of the `value` column of one CSV file (runs on the cluster)."""
    with open(os.path.expanduser(path), newline="") as handle:
        values = [float(row["value"]) for row in csv.DictReader(handle)]
    return {
        "file": posixpath.basename(path),
        "rows": len(values),
        "sum": sum(values),
        "max": max(values, default=float("nan")),
    }


def main(directory: str = "input") -> None:
    config = get_config()  # ./clustrix.yml, ~/.clustrix/config.yml, CLUSTRIX_* variables
    # Relative paths start from remote_work_dir on a cluster (the working directory on
    # the local backend), for the helpers here and inside a job alike.
    if not cluster_exists(directory, config):
        sys.exit(f"no {directory!r} on the cluster: put the CSV files there first")

    # 1. Find the files: ONE `find` on the cluster, names relative to `directory`.
    names = cluster_find("*.csv", directory, config)
    usage = cluster_du(directory, config)
    print(f"found {len(names)} CSV files under {directory}/ ({usage.total_bytes} bytes in all)")

    if not names:
        sys.exit("nothing to do")

    # 2. Process each in parallel: one task per file, ONE array job on a scheduler. The
    #    task gets the file's path on the cluster and reads it there with plain Python.
    base = os.getcwd() if config.cluster_type == "local" else config.remote_work_dir
    paths = [posixpath.join(base, directory, name) for name in names]
    summaries = summarise.map(paths).result(timeout=1800)  # blocks; input order kept

    # 3. Gather: combine the per-file summaries here.
    rows = sum(int(s["rows"]) for s in summaries)
    total = sum(float(s["sum"]) for s in summaries)
    largest = max(summaries, key=lambda s: float(s["max"]))
    for s in summaries:
        print(f"  {s['file']:<20} {s['rows']:>6} rows  sum {float(s['sum']):>12.2f}")
    print(f"total: {rows} rows, mean value {total / max(rows, 1):.4f}")
    print(f"largest value {float(largest['max']):.2f} in {largest['file']}")

    # Alternative: one @cluster(cores=8) function that calls cluster_glob/cluster_stat
    # inside the job and loops over the files; clustrix runs such a loop across the
    # job's cores (docs/parallel.md). The helpers then run in the job, so clustrix must
    # be there: give it environment="replicate".


if __name__ == "__main__":
    main(*sys.argv[1:2])
