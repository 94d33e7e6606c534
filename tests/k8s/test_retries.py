"""`retries=` on the kubernetes backend, against the FAKE API server + cluster
(tests/k8s/fake_*.py, pods are local processes): a pod deleted alone is LOST, and its
task alone goes out again as a new Kubernetes Job."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

from clustrix import Client, JobState
from clustrix.backends.kubernetes.manifests import LABEL_KEY
from clustrix.backends.kubernetes.status import completion_index

from .conftest import Kube
from .test_kubernetes import created_jobs, wait_until


def first_attempt_waits(folder: str, value: int) -> int:
    """The first attempt marks `folder`/started-`value` and waits (to be deleted)."""
    marker = os.path.join(folder, f"started-{value}")
    if os.path.exists(marker):
        return value * 10
    open(marker, "w").close()
    time.sleep(600)
    return -1


async def test_a_pod_deleted_alone_is_lost_and_its_task_retried(
    fake_kube: Kube, tmp_path: Path
) -> None:
    server = fake_kube.server
    assert server is not None
    (tmp_path / "started-1").touch()  # task 0 returns at once
    async with Client(fake_kube.config()) as client:
        sweep = client.options(retries=1).map(
            first_attempt_waits, [str(tmp_path)] * 2, [1, 2], progress=False
        )
        await wait_until(lambda: sweep[1].state is JobState.RUNNING)
        await wait_until(lambda: (tmp_path / "started-2").exists())
        (pod,) = [p for p in server.items("pods") if completion_index(p) == 1]
        server.delete("pods", "default", pod["metadata"]["name"], None)
        assert await asyncio.wait_for(sweep, 60) == [10, 20]
        assert [job.attempts for job in sweep] == [1, 2]
        assert await sweep[1].stdout() == ""  # read from the retry's own Job
    first, again = created_jobs(server)  # the sweep's Job, then the retry's
    assert first["metadata"]["labels"][LABEL_KEY] == sweep.key
    assert again["spec"]["completions"] == 1
