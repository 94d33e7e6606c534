"""Pure parts of the kubernetes backend: names, quantities, manifests, states, logs."""

from __future__ import annotations

import base64

import pytest

from clustrix import ClusterConfig, ConfigError, JobState, SerializationError
from clustrix._options import Replicate, Resources
from clustrix._payload import Payload
from clustrix.backends.kubernetes import manifests as m
from clustrix.backends.kubernetes.status import job_outcome, parse_log, pod_view
from clustrix.oncluster.runner import frame_result


def _config(**fields: object) -> ClusterConfig:
    return ClusterConfig(cluster_type="kubernetes", **fields)  # type: ignore[arg-type]


def _job(resources: Resources | None = None, **fields: object) -> dict:  # type: ignore[type-arg]
    return m.job_manifest(
        name="f-cx1",
        namespace="ns",
        function="f",
        labels={m.LABEL_KEY: "cx1"},
        resources=resources or Resources(),
        config=_config(**fields),
        elements=4,
        indexed=True,
    )


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        (4 << 30, "4Gi"),
        (512 << 20, "512Mi"),
        (1536 << 20, "1536Mi"),
        (3 << 10, "3Ki"),
        (1 << 40, "1Ti"),
        (1000, "1000"),
    ],
)
def test_memory_becomes_a_kubernetes_quantity(size: int, expected: str) -> None:
    assert m.quantity(size) == expected


def test_names_are_dns_1123_labels() -> None:
    assert m.dns_label("Test_single.<locals>.Square!!") == "test-single-locals-square"
    assert m.dns_label("___") == "task"
    name = m.job_name("a" * 80 + ".b", "cx0123456789ab")
    assert name.endswith("-cx0123456789ab") and len(name) <= 63
    assert all(c.isalnum() or c == "-" for c in name) and name[0].isalnum()


def test_resources_map_to_requests_limits_and_gpus() -> None:
    resources = Resources(cores=2, memory=4 << 30, gpus=1, max_concurrent=3)
    job = _job(resources)
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"] == {
        "requests": {"cpu": "2", "memory": "4Gi"},
        "limits": {"cpu": "2", "memory": "4Gi", "nvidia.com/gpu": "1"},
    }
    assert job["spec"]["parallelism"] == 3 and job["spec"]["completions"] == 4
    assert container["image"] == m.default_image()


def test_config_fields_reach_the_pod() -> None:
    job = _job(
        k8s_image="ghcr.io/me/img:1",
        k8s_service_account="runner",
        k8s_image_pull_secrets=["regcred"],
        k8s_job_ttl_seconds=30,
        environment_variables={"OMP_NUM_THREADS": "1"},
    )
    pod = job["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "runner"
    assert pod["imagePullSecrets"] == [{"name": "regcred"}]
    assert job["spec"]["ttlSecondsAfterFinished"] == 30
    assert {"name": "OMP_NUM_THREADS", "value": "1"} in pod["containers"][0]["env"]
    assert pod["containers"][0]["image"] == "ghcr.io/me/img:1"


def test_extra_merges_lists_and_mappings() -> None:
    extra = {
        "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "big"}}],
        "volumeMounts": [{"name": "data", "mountPath": "/data"}],
        "nodeSelector": {"disk": "ssd"},
        "labels": {"team": "x"},
        "container": {"securityContext": {"runAsNonRoot": True}},
    }
    job = _job(Resources(extra=extra))
    pod = job["spec"]["template"]["spec"]
    assert [v["name"] for v in pod["volumes"]] == ["clustrix-payload", "clustrix-work", "data"]
    mounts = pod["containers"][0]["volumeMounts"]
    assert mounts[-1] == {"name": "data", "mountPath": "/data"} and len(mounts) == 3
    assert pod["nodeSelector"] == {"disk": "ssd"}
    assert (
        job["metadata"]["labels"]["team"] == job["spec"]["template"]["metadata"]["labels"]["team"]
    )
    assert pod["containers"][0]["securityContext"] == {"runAsNonRoot": True}


@pytest.mark.parametrize(
    "extra",
    [
        {"containers": []},
        {"restartPolicy": "Always"},
        {"labels": {m.LABEL_KEY: "x"}},
        {"labels": ["x"]},
        {"env": "X=1"},
        {"nodeSelector": {"a": object()}},
    ],
)
def test_bad_extra_is_a_config_error(extra: dict) -> None:  # type: ignore[type-arg]
    with pytest.raises(ConfigError):
        _job(Resources(extra=extra))


def test_unsupported_options() -> None:
    with pytest.raises(ConfigError, match="k8s_image"):
        m.check_supported(Resources(environment=Replicate()), _config())
    with pytest.raises(ConfigError, match="nodes"):
        m.check_supported(Resources(nodes=2), _config())
    with pytest.raises(ConfigError, match="module_loads"):
        m.check_supported(Resources(), _config(module_loads=["gcc"]))


def test_secret_carries_payload_and_is_size_checked() -> None:
    payload = Payload(b"fn", [b"a", b"bb"])
    files = m.payload_files(payload, chunksize=1)
    m.check_payload_size(files, "f")
    secret = m.secret_manifest("f-cx1", "ns", files, {}, "uid-1")
    assert base64.b64decode(secret["data"]["args.bin"]) == b"abb"
    assert secret["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
    assert secret["immutable"] is True
    paths = {i["path"] for i in _job()["spec"]["template"]["spec"]["volumes"][0]["secret"]["items"]}
    assert {p.replace("/", ".") for p in paths} >= set(secret["data"])
    big = m.payload_files(Payload(b"x" * m.SECRET_LIMIT, [b""]), chunksize=1)
    with pytest.raises(SerializationError, match="volume"):
        m.check_payload_size(big, "f")


def _pod(phase: str, **status: object) -> dict:  # type: ignore[type-arg]
    return {"metadata": {"name": "p"}, "status": {"phase": phase, **status}}


def _terminated(reason: str, code: int) -> list[dict]:  # type: ignore[type-arg]
    return [{"name": "task", "state": {"terminated": {"reason": reason, "exitCode": code}}}]


def test_pod_states() -> None:
    assert pod_view(_pod("Running")).state is JobState.RUNNING
    assert pod_view(_pod("Unknown")).state is JobState.RUNNING
    ok = pod_view(_pod("Succeeded", containerStatuses=_terminated("Completed", 0)))
    assert ok.state is JobState.COMPLETED and ok.terminal
    oom = pod_view(_pod("Failed", containerStatuses=_terminated("OOMKilled", 137)))
    assert oom.state is JobState.OUT_OF_MEMORY and oom.exit_code == 137
    late = pod_view(
        _pod("Failed", reason="DeadlineExceeded", containerStatuses=_terminated("Error", 137))
    )
    assert late.state is JobState.TIMEOUT
    crash = pod_view(_pod("Failed", containerStatuses=_terminated("Error", 3)))
    assert crash.state is JobState.FAILED and crash.exit_code == 3
    evicted = pod_view(_pod("Failed", reason="Evicted", message="low on memory"))
    assert evicted.state is JobState.NODE_FAIL
    pull = [{"name": "task", "state": {"waiting": {"reason": "ImagePullBackOff", "message": "m"}}}]
    stuck = pod_view(_pod("Pending", containerStatuses=pull))
    assert stuck.state is JobState.QUEUED and stuck.stuck and stuck.reason == "ImagePullBackOff"
    unscheduled = [
        {
            "type": "PodScheduled",
            "status": "False",
            "reason": "Unschedulable",
            "message": "0/3 nodes are available",
        }
    ]
    view = pod_view(_pod("Pending", conditions=unscheduled))
    assert view.reason == "Unschedulable" and not view.stuck and "0/3" in view.message


def test_job_outcomes() -> None:
    def job(kind: str, reason: str) -> dict:  # type: ignore[type-arg]
        return {"status": {"conditions": [{"type": kind, "status": "True", "reason": reason}]}}

    assert job_outcome({"status": {}}) is None
    assert job_outcome(job("Failed", "DeadlineExceeded"))[0] is JobState.TIMEOUT  # type: ignore[index]
    assert job_outcome(job("Failed", "BackoffLimitExceeded"))[0] is JobState.FAILED  # type: ignore[index]
    assert job_outcome(job("Complete", "CompletionsReached"))[0] is JobState.COMPLETED  # type: ignore[index]


def test_log_parsing_splits_tasks_and_checks_bodies() -> None:
    framed = frame_result(b"body")
    block = base64.encodebytes(framed).decode()
    log = (
        "::clustrix:: task 4 begin\nno newline at end"
        f"\n::clustrix:: task 4 result {len(framed)}\n{block}::clustrix:: task 4 end\n"
        "::clustrix:: task 5 begin\n"
        "::clustrix:: task 5 too-large 9000000 4194304\n"
        "::clustrix:: task 6 begin\nline\n"
        f"\n::clustrix:: task 6 result {len(framed)}\n{block[:10]}\n"  # truncated: no end
        "::clustrix:: task 7 begin\nkilled mid-way\n"
        "\n::clustrix:: task 7 timeout 30\n"
    )
    parsed = parse_log(log)
    assert parsed.tasks[4].output == "no newline at end" and parsed.tasks[4].result == framed
    assert parsed.tasks[5].too_large == (9000000, 4194304) and parsed.tasks[5].output == ""
    assert parsed.tasks[6].output == "line\n" and parsed.tasks[6].corrupt
    assert parsed.tasks[7].output == "killed mid-way\n" and parsed.tasks[7].result is None
    assert parsed.tasks[7].timeout == 30
    assert parse_log("::clustrix:: python-mismatch 3.12 3.11\n").mismatch == ("3.12", "3.11")
