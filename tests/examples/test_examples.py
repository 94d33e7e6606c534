"""The examples in examples/ run as a user runs them (local backend; no cluster needed).

The ones that need a cluster also run on the lab: test_examples_lab.py.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import py_compile
import re
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

from clustrix import ClusterConfig

from .conftest import EXAMPLES, example_env, run_example, table_rows

EXAMPLE_FILES = sorted(path.name for path in EXAMPLES.glob("*.py"))


@pytest.mark.parametrize("name", EXAMPLE_FILES)
def test_every_example_compiles(name: str, tmp_path: Path) -> None:
    py_compile.compile(str(EXAMPLES / name), cfile=str(tmp_path / "x.pyc"), doraise=True)


def test_the_examples_are_all_tested() -> None:
    tested = {
        "quickstart.py",
        "slurm_sweep.py",
        "fastapi_service.py",
        "data_workflow.py",
        "kubernetes_job.py",
    }
    assert set(EXAMPLE_FILES) == tested


def test_quickstart_runs_a_200_task_sweep(tmp_path: Path) -> None:
    out = run_example(tmp_path, str(EXAMPLES / "quickstart.py")).stdout
    assert "tasks:     200 (states: {'COMPLETED': 200})" in out
    pi = float(re.search(r"pi ~\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    assert abs(pi - math.pi) < 0.01


def test_slurm_sweep_runs_on_the_local_backend_without_a_config(tmp_path: Path) -> None:
    done = run_example(tmp_path, str(EXAMPLES / "slurm_sweep.py"))
    assert "running on: local" in done.stdout
    rows = table_rows(done.stdout)
    assert len(rows) == 9
    assert "{'COMPLETED': 9}" in done.stdout
    for step, steps, mean, ratio, where in rows:
        # the mean distance of a 2-D walk of uniform steps is step*sqrt(steps*pi/6)
        assert float(ratio) == pytest.approx(math.sqrt(math.pi / 6), abs=0.1)
        assert float(mean) == pytest.approx(float(ratio) * float(step) * int(steps) ** 0.5, 0.01)
        assert where.endswith("job -")  # no Slurm here
    assert "9/9" in done.stderr  # the progress bar, forced on outside a terminal


def test_the_slurm_config_example_is_a_valid_config(tmp_path: Path) -> None:
    config = ClusterConfig(config_file=EXAMPLES / "clustrix.example.yml")
    assert config.cluster_type == "slurm"
    assert config.default_partition and config.default_account and config.module_loads
    gpu = ClusterConfig(config_file=EXAMPLES / "clustrix.example.yml", profile="gpu")
    assert (gpu.default_partition, gpu.default_cores) == ("gpu", 8)


def write_csvs(directory: Path, counts: dict[str, int]) -> tuple[int, float, float]:
    """CSV files with a `value` column; returns (rows, sum, max) over all of them."""
    directory.mkdir(parents=True)
    values = []
    for name, count in counts.items():
        rows = [(i, round(i * 1.25 + len(name), 2)) for i in range(count)]
        lines = ["id,value", *(f"{i},{v}" for i, v in rows)]
        (directory / name).write_text("\n".join(lines) + "\n")
        values += [v for _, v in rows]
    (directory / "README.txt").write_text("not a CSV: not processed\n")
    return len(values), sum(values), max(values)


def check_summary(out: str, counts: dict[str, int], totals: tuple[int, float, float]) -> None:
    rows, total, largest = totals
    assert f"found {len(counts)} CSV files under input/" in out
    for name, count in counts.items():
        assert re.search(rf"^\s+{re.escape(name)}\s+{count} rows", out, re.M), out
    assert f"total: {rows} rows, mean value {total / rows:.4f}" in out
    assert f"largest value {largest:.2f}" in out


def test_data_workflow_runs_on_the_local_backend(tmp_path: Path) -> None:
    top = write_csvs(tmp_path / "input", {"a.csv": 5, "b.csv": 40})
    nested = write_csvs(tmp_path / "input" / "sub", {"c.csv": 12})  # found too
    totals = (top[0] + nested[0], top[1] + nested[1], max(top[2], nested[2]))
    out = run_example(tmp_path, str(EXAMPLES / "data_workflow.py")).stdout
    check_summary(out, {"a.csv": 5, "b.csv": 40, "c.csv": 12}, totals)


# -- the notebook ---------------------------------------------------------------------------
def notebook_tools() -> tuple[Any, Any]:
    """nbformat and nbclient; missing, a skip here and a failure in CI (the dev extra)."""
    try:
        import ipykernel  # noqa: F401
        import matplotlib  # noqa: F401
        import nbclient
        import nbformat
    except ImportError as missing:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{missing}: CI installs the dev extra, which includes the notebook's")
        pytest.skip(f"{missing}: pip install -e '.[notebook]'")
    return nbformat, nbclient


def test_the_notebook_runs_in_a_kernel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    nbformat, nbclient = notebook_tools()
    # a kernelspec of THIS interpreter (the venv's), found through JUPYTER_PATH only
    spec = tmp_path / "jupyter" / "kernels" / "clustrix-test"
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(json.dumps({"argv": argv, "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    for name, value in example_env(tmp_path).items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("MPLBACKEND", raising=False)
    work = tmp_path / "work"
    work.mkdir()
    shutil.copy(EXAMPLES / "notebook.ipynb", work)

    notebook = nbformat.read(work / "notebook.ipynb", as_version=4)
    client = nbclient.NotebookClient(
        notebook,
        kernel_name="clustrix-test",
        timeout=180,
        resources={"metadata": {"path": str(work)}},
    )
    client.execute()  # raises CellExecutionError, with the traceback, if a cell fails

    outputs = [out for cell in notebook.cells if cell.cell_type == "code" for out in cell.outputs]
    text = "".join(out.get("text", "") for out in outputs if out.output_type == "stream")
    assert "jobs run on: local" in text
    assert "energy: 1 of 2 for loop(s) run in parallel" in text
    assert "parallel (cores)" in text and "'break'" in text  # the reasons, both loops
    assert "{'COMPLETED': 20}" in text
    assert re.search(r"COMPLETED \d+\.\d+", text)
    images = [out for out in outputs if "image/png" in out.get("data", {})]
    assert len(images) == 1  # the plot, shown once
    assert (work / "damping_sweep.png").stat().st_size > 10_000


# -- Kubernetes -------------------------------------------------------------------------------
def test_kubernetes_example_check_prints_the_settings(tmp_path: Path) -> None:
    (tmp_path / "clustrix.yml").write_text("cluster_type: kubernetes\nk8s_namespace: jobs\n")
    out = run_example(tmp_path, str(EXAMPLES / "kubernetes_job.py"), "--check").stdout
    assert "cluster_type=kubernetes namespace=jobs kubeconfig=(default)" in out


def test_kubernetes_example_refuses_a_config_for_another_cluster(tmp_path: Path) -> None:
    with pytest.raises(AssertionError, match="set cluster_type: kubernetes"):
        run_example(tmp_path, str(EXAMPLES / "kubernetes_job.py"), "--check")


async def test_kubernetes_example_runs_against_the_fake_api_server(tmp_path: Path) -> None:
    """The fake API server + kubelet of tests/k8s (pods are local processes)."""
    pytest.importorskip("kubernetes_asyncio")
    from ..k8s.conftest import start_fake, stop_fake

    kube = await start_fake(tmp_path)
    try:
        work = tmp_path / "work"
        work.mkdir()
        (work / "clustrix.yml").write_text(
            f"cluster_type: kubernetes\nkubeconfig: {kube.kubeconfig}\nk8s_namespace: default\n"
        )
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(EXAMPLES / "kubernetes_job.py"),
            cwd=work,
            env=example_env(work),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            stdout, stderr = await asyncio.wait_for(process.communicate(), 120)
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
        out = stdout.decode()
        assert process.returncode == 0, f"{out}\n{stderr.decode()}"
        assert re.search(r"one call: 3\*\*3 = 27 on pod \S+", out), out
        assert "sweep: [1, 8, 27, 64, 125] (states: {'COMPLETED': 5})" in out
    finally:
        await stop_fake(kube)
