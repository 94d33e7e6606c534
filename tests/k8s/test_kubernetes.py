"""The kubernetes backend end to end: the real backend and kubernetes-asyncio client
against the FAKE API server + cluster (tests/k8s/fake_*.py), whose pods are local
processes running the real entry point, runner and shipped cloudpickle. Tests taking
`kube` also run against a real cluster when ``CLUSTRIX_TEST_KUBECONFIG`` is set.
"""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from clustrix import (
    Client,
    CommandError,
    ConfigError,
    EnvironmentMismatchError,
    JobCancelledError,
    JobFailedError,
    JobLostError,
    JobOutOfMemoryError,
    JobState,
    JobTimeoutError,
    SerializationError,
    SubmissionError,
)
from clustrix.backends.kubernetes.manifests import LABEL_KEY

from .conftest import Kube
from .fake_apiserver import INDEX, FakeApiServer


class Odd(ValueError):
    pass


def square(x: int) -> int:
    print(f"squaring {x}")
    return x * x


def reject_odd(x: int) -> int:
    if x % 2:
        raise Odd(f"{x} is odd")
    return x


def sleep_for(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def hog_memory(megabytes: int) -> int:
    block = b"\x01" * (megabytes << 20)  # touches every page
    time.sleep(30)
    return len(block)


def where_is_cloudpickle() -> str:
    import cloudpickle

    return str(cloudpickle.__file__)


def talk_then_wait(path: str) -> str:
    print("started and talking", flush=True)
    while not Path(path).exists():
        time.sleep(0.01)
    return "done"


def wait_for_file(path: str, value: int) -> int:
    while not Path(path).exists():
        time.sleep(0.01)
    return value


async def wait_until(predicate: Callable[[], bool], timeout: float = 30) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.02)


def created_jobs(server: FakeApiServer) -> list[dict[str, Any]]:
    return [r.body for r in server.posts("/jobs") if r.status == 201]


# -- conformance (fake, and a real cluster when configured) ---------------------------------
async def test_single_call_is_one_job_with_an_owned_payload_secret(kube: Kube) -> None:
    async with Client(kube.config()) as client:
        job = client.submit(square, 7)
        assert await job == 49
        assert job.state is JobState.COMPLETED
        assert job.job_id is not None and job.job_id.startswith("square-")
        assert "/" not in job.job_id  # a call is a plain Job, no index
        assert "squaring 7" in await job.stdout()
    server = kube.fake
    if server is None:
        return
    (manifest,) = created_jobs(server)
    spec = manifest["spec"]
    assert manifest["metadata"]["labels"][LABEL_KEY] == job.key
    assert spec["completions"] == 1 and spec["backoffLimit"] == 0
    assert "completionMode" not in spec and spec["suspend"] is True  # released after the Secret
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    mount = pod["containers"][0]["volumeMounts"][0]
    assert mount["readOnly"] is True and mount["mountPath"] == "/clustrix/payload"
    (secret,) = [r.body for r in server.posts("/secrets")]
    (owner,) = secret["metadata"]["ownerReferences"]
    assert owner["kind"] == "Job" and owner["name"] == job.job_id
    shipped = {k: base64.b64decode(v) for k, v in secret["data"].items()}
    assert b"def dumps" in shipped["lib.cloudpickle.cloudpickle.py"]  # zero-install
    assert b"def frame_result" in shipped["clustrix_runner.py"]
    patch = next(r for r in server.requests if r.method == "PATCH")
    assert patch.body == {"spec": {"suspend": False}}
    # cleanup_remote_files: the Job is deleted in the background, its pods and Secret follow
    await server.wait_for(lambda: not any(server.items(k) for k in ("jobs", "pods", "secrets")))
    delete = next(r for r in server.requests if r.method == "DELETE")
    assert delete.body == {"propagationPolicy": "Background"}


async def test_sweep_of_50_is_one_indexed_job(kube: Kube) -> None:
    async with Client(kube.config()) as client:
        sweep = client.map(square, range(50), progress=False)
        assert await sweep == [x * x for x in range(50)]
        name = sweep[0].job_id.split("/")[0]  # type: ignore[union-attr]
        assert [job.job_id for job in sweep] == [f"{name}/{i}" for i in range(50)]
        assert "squaring 31" in await sweep[31].stdout()
    server = kube.fake
    if server is None:
        return
    (manifest,) = created_jobs(server)  # ONE submission
    spec = manifest["spec"]
    assert spec["completionMode"] == "Indexed" and spec["completions"] == 50
    assert spec["parallelism"] == 50 and spec["backoffLimitPerIndex"] == 0
    assert len(server.posts("/secrets")) == 1
    logs = [r.path for r in server.requests if r.path.endswith("/log")]
    assert len(logs) == len(set(logs)) == 50  # each pod's log read exactly once
    assert kube.cluster is not None and len(kube.cluster.started_pods) == 50


async def test_user_exception_is_reraised_as_its_type(kube: Kube) -> None:
    async with Client(kube.config()) as client:
        with pytest.raises(Odd, match="3 is odd") as info:
            await client.submit(reject_odd, 3)
        assert "Remote traceback" in "\n".join(info.value.__notes__)
        results = await client.map(reject_odd, range(4), return_exceptions=True, progress=False)
        assert results[0::2] == [0, 2]
        assert all(isinstance(r, Odd) for r in results[1::2])


async def test_cancel_deletes_the_job_in_background(kube: Kube) -> None:
    async with Client(kube.config()) as client:
        job = client.submit(sleep_for, 600)
        await wait_until(lambda: job.state is JobState.RUNNING, 120)
        await job.cancel()
        assert job.state is JobState.CANCELLED
        with pytest.raises(JobCancelledError):
            await job
    server = kube.fake
    if server is None:
        return
    (delete,) = [r for r in server.requests if r.method == "DELETE"]
    assert delete.path.endswith(f"/jobs/{job.job_id}")
    assert delete.body == {"propagationPolicy": "Background"}
    await server.wait_for(lambda: not server.items("pods") and not server.items("secrets"))
    assert kube.cluster is not None and not kube.cluster._processes  # the process was killed


async def test_time_limit_is_active_deadline_and_times_out(kube: Kube) -> None:
    async with Client(kube.config()) as client:
        job = client.options(time="00:00:02").submit(sleep_for, 60)
        with pytest.raises(JobTimeoutError) as info:
            await job
        assert info.value.state is JobState.TIMEOUT and job.state is JobState.TIMEOUT
        assert "DeadlineExceeded" in str(info.value) or "deadline" in str(info.value)
    if kube.fake is not None:
        (manifest,) = created_jobs(kube.fake)
        assert manifest["spec"]["template"]["spec"]["activeDeadlineSeconds"] == 2


async def test_time_limit_applies_per_task_in_a_chunked_sweep(kube: Kube) -> None:
    async with Client(kube.config()) as client:
        view = client.options(time="00:00:02")
        sweep = view.map(sleep_for, [0.1, 60, 0.1], chunksize=3, progress=False)
        results = await asyncio.gather(*sweep, return_exceptions=True)
    assert results[0] == 0.1
    assert isinstance(results[1], JobTimeoutError) and "time limit of 00:00:02" in str(results[1])
    assert isinstance(results[2], JobTimeoutError) and "never started" in str(results[2])
    if kube.fake is not None:
        (manifest,) = created_jobs(kube.fake)
        pod = manifest["spec"]["template"]["spec"]
        assert pod["activeDeadlineSeconds"] == 2 * 3 + 60  # a backstop; the entry times tasks
        assert {"name": "CLUSTRIX_K8S_TASK_TIME", "value": "2"} in pod["containers"][0]["env"]


async def test_oom_killed_is_out_of_memory(kube: Kube) -> None:
    async with Client(kube.config()) as client:
        job = client.options(memory="100M").submit(hog_memory, 400)
        with pytest.raises(JobOutOfMemoryError) as info:
            await job
        assert info.value.state is JobState.OUT_OF_MEMORY
        assert "OOMKilled" in str(info.value)
    if kube.fake is not None:
        (manifest,) = created_jobs(kube.fake)
        limits = manifest["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
        assert limits["memory"] == "100Mi"


async def test_unschedulable_pod_shows_the_reason(kube: Kube) -> None:
    async with Client(kube.config()) as client:
        job = client.options(cores=512).submit(square, 2)
        await wait_until(lambda: bool(job.reason) and "Insufficient cpu" in job.reason, 60)
        assert job.state is JobState.QUEUED
        assert job.reason is not None and job.reason.startswith("Unschedulable")
        assert "Insufficient cpu" in repr(job)
        await job.cancel()
        assert job.state is JobState.CANCELLED


async def test_image_pull_failure_is_a_clear_error_after_the_grace(kube: Kube) -> None:
    image = "registry.invalid/clustrix/no-such-image:1"
    async with Client(kube.config(k8s_image=image)) as client:
        job = client.submit(square, 2)
        await wait_until(lambda: bool(job.reason) and "Image" in job.reason, 60)
        assert job.state is JobState.QUEUED  # visible while the grace period runs
        with pytest.raises(JobFailedError) as info:
            await job
        message = str(info.value)
        assert "could not start" in message and "k8s_image" in message
        assert info.value.reason in ("ErrImagePull", "ImagePullBackOff")
    if kube.fake is not None:
        server = kube.fake
        await server.wait_for(lambda: not server.items("jobs"))  # given up: deleted


async def test_payload_too_large_fails_before_anything_is_created(kube: Kube) -> None:
    async with Client(kube.config()) as client:
        with pytest.raises(SerializationError, match="1 MiB") as info:
            await client.submit(len, b"x" * 1_100_000)
        assert "volume" in str(info.value)
    if kube.fake is not None:
        assert not [r for r in kube.fake.requests if r.method in ("POST", "PATCH", "DELETE")]


async def test_result_too_large_for_the_log_is_a_clear_error(kube: Kube) -> None:
    async with Client(kube.config()) as client:
        with pytest.raises(SerializationError, match="pod log") as info:
            await client.submit(bytes, 5 << 20)
        assert "volume" in str(info.value)


async def test_chunked_sweep_keeps_each_tasks_output(kube: Kube) -> None:
    async with Client(kube.config()) as client:
        sweep = client.map(square, range(10), chunksize=4, progress=False)
        assert await sweep == [x * x for x in range(10)]
        name = sweep[0].job_id.split("/")[0]  # type: ignore[union-attr]
        assert [j.job_id for j in sweep] == [f"{name}/{i // 4}" for i in range(10)]
        assert await sweep[5].stdout() == "squaring 5\n"
    if kube.fake is not None:
        (manifest,) = created_jobs(kube.fake)
        assert manifest["spec"]["completions"] == 3


async def test_short_tasks_are_packed_into_few_pods(fake_kube: Kube) -> None:
    # 100 tasks declared one minute, no chunksize: the default rule packs them.
    assert fake_kube.fake is not None
    async with Client(fake_kube.config()) as client:
        sweep = client.options(time="00:01:00").map(square, range(100), progress=False)
        assert await sweep == [x * x for x in range(100)]
        assert await sweep[57].stdout() == "squaring 57\n"
    (manifest,) = created_jobs(fake_kube.fake)
    pods = {
        obj["metadata"]["name"]
        for _, kind, event, obj in fake_kube.fake.history
        if kind == "pods" and event == "ADDED"
    }
    assert manifest["spec"]["completions"] == len(pods) <= 16
    assert len({job.job_id for job in sweep}) == len(pods)


async def test_cloudpickle_is_shipped_not_installed(kube: Kube) -> None:
    async with Client(kube.config()) as client:
        path = await client.submit(where_is_cloudpickle)
    # the Secret's copy (mounted at /clustrix/payload), not one installed in the image
    assert path.endswith("/clustrix/payload/lib/cloudpickle/__init__.py")


async def test_cancelling_part_of_a_sweep(kube: Kube) -> None:
    async with Client(kube.config()) as client:
        sweep = client.map(sleep_for, [0.5, 600, 0.5, 0.5], progress=False)
        await wait_until(lambda: sweep[1].state is JobState.RUNNING, 120)
        await sweep[1].cancel()  # one task: its pod is deleted, the others run on
        assert sweep[1].state is JobState.CANCELLED
        results = await asyncio.gather(*sweep, return_exceptions=True)
        assert results[0] == 0.5 and results[2:] == [0.5, 0.5]
        assert isinstance(results[1], JobCancelledError)
        rest = client.map(sleep_for, [600] * 3, progress=False)
        await wait_until(lambda: all(j.state is JobState.RUNNING for j in rest), 120)
        await rest.cancel()  # everything left: ONE delete of the Job
        assert all(j.state is JobState.CANCELLED for j in rest)
    if kube.fake is not None:
        deletes = [r.path for r in kube.fake.requests if r.method == "DELETE"]
        first = str(sweep[1].job_id).split("/")[0]
        (pod,) = [p for p in deletes if "/pods/" in p]
        assert f"/pods/{first}-1-" in pod  # the cancelled index's pod, and only it
        name = str(rest[0].job_id).split("/")[0]
        assert sum(p.endswith(f"/jobs/{name}") for p in deletes) == 1


# -- fake only: protocol records and fault injection ------------------------------------------
async def test_max_concurrent_is_parallelism(fake_kube: Kube, tmp_path: Path) -> None:
    server, cluster = fake_kube.server, fake_kube.cluster
    assert server is not None and cluster is not None
    gate = tmp_path / "go"
    async with Client(fake_kube.config()) as client:
        sweep = client.map(wait_for_file, [str(gate)] * 6, range(6), max_concurrent=2)
        await wait_until(lambda: sum(j.state is JobState.RUNNING for j in sweep) == 2)
        pods = server.items("pods")
        assert len(pods) == 2  # the controller honours parallelism: no third pod yet
        gate.touch()
        assert await sweep == list(range(6))
    (manifest,) = created_jobs(server)
    assert manifest["spec"]["parallelism"] == 2


async def test_watch_resumes_after_disconnect_and_relists_after_410(
    fake_kube: Kube, tmp_path: Path
) -> None:
    server = fake_kube.server
    assert server is not None
    first, second = tmp_path / "first", tmp_path / "second"
    gates = [str(first)] * 3 + [str(second)] * 3
    async with Client(fake_kube.config()) as client:
        sweep = client.map(wait_for_file, gates, range(6), progress=False)
        await wait_until(lambda: all(j.state is JobState.RUNNING for j in sweep))
        # 1. A dropped connection: the watch resumes from the last version it saw.
        (pod_watch,) = server.open_watches("pods")
        seen = pod_watch.last_sent
        server.drop_watches()
        await server.wait_for(
            lambda: any(
                r.watch and "/pods" in r.path and r.query.get("resourceVersion") == str(seen)
                for r in server.requests
            )
        )
        await server.wait_for(lambda: len(server.open_watches("pods")) == 1)
        # 2. An outage during which pods end and the history is compacted: 410, relist.
        server.watch_outage = True
        server.drop_watches()
        await server.wait_for(lambda: any(r.status == 503 for r in server.requests))
        first.touch()
        await server.wait_for(lambda: _succeeded(server) == 3)
        server.compact()
        second.touch()
        await server.wait_for(lambda: _succeeded(server) == 6)
        marker = len(server.requests)
        server.watch_outage = False
        assert await sweep == list(range(6))
    after = server.requests[marker:]
    gone = [r for r in after if r.watch and "/pods" in r.path and r.status == 200]
    relists = [r for r in after if not r.watch and r.path.endswith("/pods")]
    assert gone and relists, "a 410 must be followed by a relist"
    assert int(gone[0].query["resourceVersion"]) < server.compacted
    logs = [r.path for r in server.requests if r.path.endswith("/log")]
    assert len(logs) == len(set(logs)) == 6  # no result lost, none read twice


def _succeeded(server: FakeApiServer) -> int:
    return sum(p["status"].get("phase") == "Succeeded" for p in server.items("pods"))


async def test_output_streams_to_the_log_while_running(fake_kube: Kube, tmp_path: Path) -> None:
    gate = tmp_path / "go"
    async with Client(fake_kube.config()) as client:
        job = client.submit(talk_then_wait, str(gate))
        await wait_until(lambda: job.state is JobState.RUNNING)
        await fake_kube.server.wait_for(  # type: ignore[union-attr]
            lambda: any(b"talking" in log for log in fake_kube.server.logs.values())  # type: ignore[union-attr]
        )
        assert await job.stdout() == "started and talking\n"
        gate.touch()
        assert await job == "done"


async def test_python_mismatch_is_an_environment_error(fake_kube: Kube) -> None:
    # An image whose Python differs: simulated by overriding what the pod expects.
    config = fake_kube.config(environment_variables={"CLUSTRIX_K8S_PYTHON": "3.99"})
    async with Client(config) as client:
        with pytest.raises(EnvironmentMismatchError, match=r"runs Python 3\.11, this client 3\.99"):
            await client.submit(square, 2)


async def test_pod_deleted_alone_is_lost(fake_kube: Kube) -> None:
    server = fake_kube.server
    assert server is not None
    async with Client(fake_kube.config()) as client:
        job = client.submit(sleep_for, 600)
        await wait_until(lambda: job.state is JobState.RUNNING)
        (pod,) = server.items("pods")
        server.delete("pods", "default", pod["metadata"]["name"], None)
        with pytest.raises(JobLostError, match="deleted or evicted"):
            await job


async def test_job_deleted_from_outside_is_cancelled(fake_kube: Kube) -> None:
    server = fake_kube.server
    assert server is not None
    async with Client(fake_kube.config()) as client:
        sweep = client.map(sleep_for, [600, 600], progress=False)
        await wait_until(lambda: all(j.state is JobState.RUNNING for j in sweep))
        (job,) = server.items("jobs")
        server.delete("jobs", "default", job["metadata"]["name"], "Foreground")
        results = await asyncio.gather(*sweep, return_exceptions=True)
        assert all(isinstance(r, JobCancelledError) for r in results)
        assert all("from outside" in str(r) for r in results)


async def test_kubectl_sees_the_fake_and_deletes_a_running_job(fake_kube: Kube) -> None:
    server = fake_kube.server
    assert server is not None
    async with Client(fake_kube.config()) as client:
        job = client.submit(sleep_for, 600)
        await wait_until(lambda: job.state is JobState.RUNNING)
        code, out, err = await fake_kube.kubectl("get", "jobs,pods", "-o", "json")
        assert code == 0, err
        listing = json.loads(out)
        kinds = sorted(item["kind"] for item in listing["items"])
        assert kinds == ["Job", "Pod"]
        pod = next(i for i in listing["items"] if i["kind"] == "Pod")
        assert pod["status"]["phase"] == "Running"
        assert pod["metadata"]["labels"][LABEL_KEY] == job.key
        code, out, err = await fake_kube.kubectl("delete", "job", str(job.job_id))
        assert code == 0, err
        assert f'job.batch "{job.job_id}" deleted' in out
        with pytest.raises(JobCancelledError, match="from outside"):
            await job
        code, out, err = await fake_kube.kubectl("get", "jobs", "-o", "json")
        assert code == 0 and json.loads(out)["items"] == []
    deletes = [r for r in server.requests if r.method == "DELETE" and "/jobs/" in r.path]
    assert deletes[0].body.get("propagationPolicy") == "Background"  # kubectl's default


async def test_leaving_with_cancel_on_exit_deletes_running_jobs(fake_kube: Kube) -> None:
    server = fake_kube.server
    assert server is not None
    async with Client(fake_kube.config(), cancel_on_exit=True) as client:
        job = client.submit(sleep_for, 600)
        await wait_until(lambda: job.state is JobState.RUNNING)
    with pytest.raises(JobCancelledError):
        await job
    await server.wait_for(lambda: not server.items("jobs") and not server.items("pods"))


async def test_extra_is_merged_into_the_pod(fake_kube: Kube) -> None:
    server = fake_kube.server
    assert server is not None
    extra = {
        "nodeSelector": {"disk": "ssd"},
        "tolerations": [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}],
        "labels": {"team": "physics"},
        "annotations": {"note": "hello"},
    }
    async with Client(fake_kube.config(k8s_service_account="runner")) as client:
        assert await client.options(extra=extra, cores=2, gpus=0).submit(square, 3) == 9
    (manifest,) = created_jobs(server)
    template = manifest["spec"]["template"]
    assert template["metadata"]["labels"]["team"] == "physics"
    assert template["metadata"]["annotations"]["note"] == "hello"
    assert template["spec"]["nodeSelector"] == {"disk": "ssd"}
    assert template["spec"]["tolerations"][0]["key"] == "gpu"
    assert template["spec"]["serviceAccountName"] == "runner"
    assert template["spec"]["containers"][0]["resources"]["requests"]["cpu"] == "2"


# -- configuration ---------------------------------------------------------------------------
async def test_missing_extra_is_a_config_error(
    fake_kube: Kube, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "kubernetes_asyncio", None)  # as if not installed
    async with Client(fake_kube.config()) as client:
        with pytest.raises(ConfigError, match=r"pip install 'clustrix\[kubernetes\]'"):
            client.submit(square, 1)


def test_clustrix_imports_without_the_extra() -> None:
    code = (
        "import sys; sys.modules['kubernetes_asyncio'] = None\n"
        "import clustrix\n"
        "from clustrix.backends import create_backend\n"
        "try:\n"
        "    create_backend(clustrix.ClusterConfig(cluster_type='kubernetes'))\n"
        "except clustrix.ConfigError as e:\n"
        "    print('ConfigError:', e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "ConfigError: cluster_type='kubernetes' needs the kubernetes extra" in out.stdout


async def test_unsupported_options_are_refused_before_submission(fake_kube: Kube) -> None:
    server = fake_kube.server
    assert server is not None
    async with Client(fake_kube.config()) as client:
        with pytest.raises(ConfigError, match="k8s_image"):
            await client.options(environment="conda:physics").submit(square, 1)
        with pytest.raises(ConfigError, match="containers"):
            await client.options(extra={"containers": []}).submit(square, 1)
    assert not server.posts("/jobs")


async def test_a_misspelt_extra_field_is_refused_by_the_server(fake_kube: Kube) -> None:
    server = fake_kube.server
    assert server is not None
    async with Client(fake_kube.config()) as client:
        with pytest.raises(SubmissionError, match=r'unknown field "spec\.template\.spec\.qos"'):
            await client.options(extra={"qos": "debug"}).submit(square, 1)
    (post,) = server.posts("/jobs")
    assert post.query.get("fieldValidation") == "Strict" and post.status == 400
    assert not server.items("jobs") and not server.posts("/secrets")


async def test_missing_rbac_rights_fail_the_jobs_clearly(fake_kube: Kube) -> None:
    server = fake_kube.server
    assert server is not None
    server.forbidden = {("list", "pods"), ("watch", "pods")}
    async with Client(fake_kube.config()) as client:
        with pytest.raises(CommandError, match="cannot list resource") as info:
            await client.submit(square, 1)
        assert info.value.exit_status == 403 and "watch on pods" in str(info.value)


async def test_an_index_pod_label_carries_the_index(fake_kube: Kube) -> None:
    server = fake_kube.server
    assert server is not None
    async with Client(fake_kube.config(cleanup_remote_files=False)) as client:
        sweep = client.map(square, range(3), progress=False)
        assert await sweep == [0, 1, 4]
    pods = server.items("pods")
    assert sorted(p["metadata"]["labels"][INDEX] for p in pods) == ["0", "1", "2"]
    (job,) = server.items("jobs")  # kept: cleanup_remote_files=False (ttl governs)
    assert job["spec"]["ttlSecondsAfterFinished"] == 600
    assert any(c["type"] == "Complete" for c in job["status"]["conditions"])
