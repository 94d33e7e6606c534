"""Run one peer (submitit or dask-jobqueue) on the login side; print one JSON line.

    PEERS_VENV/bin/python peer_script.py submitit|dask TASKS JOB_NAME

Run by `benchmarks.peers` as the lab user inside benchmarks/.peers-venv (it must not
import clustrix). Times from before the executor/cluster is made to every result of
f(x) = x*x back and checked, as a user of each tool would write it.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path


def square(x: int) -> int:
    return x * x


def with_submitit(tasks: int, name: str, folder: Path) -> tuple[float, list[int]]:
    import submitit  # type: ignore[import-not-found]

    started = time.perf_counter()
    executor = submitit.SlurmExecutor(folder=folder / "%j", max_num_timeout=0)
    executor.update_parameters(job_name=name, partition="debug", time=5)
    jobs = executor.map_array(square, range(tasks))
    results = [job.result() for job in jobs]
    return time.perf_counter() - started, results


def with_dask(tasks: int, name: str, folder: Path) -> tuple[float, list[int]]:
    from dask_jobqueue import SLURMCluster  # type: ignore[import-not-found]
    from distributed import Client  # type: ignore[import-not-found]

    started = time.perf_counter()
    cluster = SLURMCluster(
        cores=1,
        processes=1,
        memory="1GB",
        walltime="00:10:00",
        queue="debug",
        job_name=name,
        interface="lo",
        log_directory=str(folder),
        local_directory=str(folder),
    )
    try:
        cluster.scale(jobs=4)
        with Client(cluster) as client:
            results = client.gather(client.map(square, range(tasks)))
            elapsed = time.perf_counter() - started
    finally:
        cluster.close()
    return elapsed, list(results)


def main() -> None:
    peer, tasks, name = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    folder = Path(tempfile.mkdtemp(prefix=f".cx-bench-{peer}-", dir=Path.home()))
    try:
        if peer == "submitit":
            elapsed, results = with_submitit(tasks, name, folder)
            versions = {"submitit": version("submitit")}
        else:
            elapsed, results = with_dask(tasks, name, folder)
            versions = {p: version(p) for p in ("dask-jobqueue", "distributed")}
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    if results != [x * x for x in range(tasks)]:
        raise SystemExit(f"{peer}: wrong results")
    print(json.dumps({"elapsed": elapsed, "versions": versions}))


if __name__ == "__main__":
    main()
