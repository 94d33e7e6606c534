"""Loop parallelization on the lab's Slurm: the corpus, and the seed's filesystem example."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

import clustrix
from clustrix import Client

from ..unit.loop_checks import outcome, probe_evidence, same_outcome
from ..unit.loop_corpus import CORPUS, PROBE_ENV
from .test_conformance import config_for

pytestmark = pytest.mark.lab


def lab_path(lab: dict[str, Any], remote_dir: str, *parts: str) -> Path:
    return Path(lab["home"]) / remote_dir.removeprefix("~/") / Path(*parts)


async def test_corpus_on_slurm_runs_parallel_loops_on_two_cores(
    lab: dict[str, Any], remote_dir: str
) -> None:
    probes = lab_path(lab, remote_dir, "probes")
    config = config_for("slurm", lab, remote_dir, environment_variables={PROBE_ENV: str(probes)})
    expected = [outcome(case) for case in CORPUS]
    async with Client(config):
        jobs = [clustrix.cluster(cores=2)(case.fn)(*case.args) for case in CORPUS]
        got = []
        for job in jobs:
            try:
                got.append(("value", await job))
            except Exception as exc:
                got.append(("raised", (type(exc), str(exc))))
    for case, want, have in zip(CORPUS, expected, got, strict=True):
        assert same_outcome(want, have), (case.fn.__name__, want, have)
        probe_evidence(probes, case)


# -- the seed's "Using Filesystem Utilities" example --------------------------------------
# Changed from the seed only where the issue allows: host values, environment="replicate",
# the two helpers it leaves undefined, and cluster_stat given the path under "input/".
from clustrix import cluster, cluster_glob, cluster_stat  # noqa: E402
from clustrix.config import ClusterConfig  # noqa: E402


def process_small_file(filename: str, config: ClusterConfig) -> tuple[str, str]:
    return filename, "small"


def process_large_file(filename: str, config: ClusterConfig) -> tuple[str, str]:
    return filename, "large"


@cluster(cores=8)
def process_datasets(config):
    # Find all data files on the cluster
    data_files = cluster_glob("*.csv", "input/", config)

    results = []
    for filename in data_files:  # Loop gets parallelized automatically
        # Check file size before processing
        file_info = cluster_stat(f"input/{filename}", config)
        if file_info.size > 100_000_000:  # Large files
            result = process_large_file(filename, config)
        else:
            result = process_small_file(filename, config)
        results.append(result)

    return results


def test_the_seed_example_loop_is_reported_parallel() -> None:
    report = clustrix.explain(process_datasets)
    assert [loop.parallel for loop in report.loops] == [True], str(report)
    assert "cluster_stat()" in report.loops[0].reason  # named as an assumption


@pytest.mark.timeout(900)  # builds the replicated environment first
async def test_the_seed_filesystem_example_runs_on_slurm(
    lab: dict[str, Any], remote_dir: str
) -> None:
    inputs = lab_path(lab, remote_dir, "input")
    inputs.mkdir(parents=True)
    for name in ("a.csv", "b.csv", "c.csv", "notes.txt"):
        (inputs / name).write_text(name * 10)
    owner = f"{lab['user']}:{lab['user']}"
    subprocess.run(["chown", "-R", owner, str(inputs.parent)], check=True)
    config = ClusterConfig(
        cluster_type="slurm",
        cluster_host=lab["host"],
        cluster_port=lab["ports"]["slurm"],
        username=lab["user"],
        key_file=lab["key_file"],
        known_hosts=lab["known_hosts"],
        remote_work_dir=remote_dir,
        job_poll_interval=1,
        environment="replicate",
    )
    async with Client(config):
        results = await process_datasets(config)
    assert results == [("a.csv", "small"), ("b.csv", "small"), ("c.csv", "small")]


async def test_parallel_sweep_fans_a_loop_out_as_a_slurm_array(
    lab: dict[str, Any], remote_dir: str
) -> None:
    """Each iteration runs as its own array element; the result is the sequential one."""
    from ..unit import sweep_loops

    config = config_for("slurm", lab, remote_dir)
    async with Client(config):
        fanned = clustrix.cluster(parallel="sweep")(sweep_loops.collect_on_slurm)
        seen, total = await fanned(5)
    plain_total = sum(i * 0.1 for i in range(5))
    assert [i for i, _ in seen] == list(range(5))
    assert total == plain_total
    elements = [element for _, element in seen]
    assert all(element for element in elements)  # each ran as an array element...
    assert len(set(elements)) == 5  # ...of its own
