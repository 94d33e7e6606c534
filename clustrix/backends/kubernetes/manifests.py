"""Pure Kubernetes knowledge of the kubernetes backend: names, quantities, manifests.

A submission becomes two objects, both built here without any I/O:

* a ``batch/v1`` Job: one pod for a call, or ONE Indexed Job for a sweep
  (``completionMode: Indexed``, ``completions`` = elements, ``parallelism`` from
  ``max_concurrent``); created suspended, released once its payload is in place;
* a Secret owned by that Job (``ownerReferences``: deleting the Job deletes it) that
  holds the payload, the runner, the in-pod entry point and the pure-Python source
  of the local cloudpickle (zero-install: the image needs only a matching Python).

The Secret is mounted read-only at ``/clustrix/payload``; the pod works in an
``emptyDir`` at ``/clustrix/work`` and prints framed results to its log.
"""

from __future__ import annotations

import base64
import copy
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import cloudpickle

from ..._config import ClusterConfig
from ..._exceptions import ConfigError, SerializationError
from ..._options import Inherit, Resources
from ..._payload import Payload
from ...oncluster import k8s_entry, layout
from ...oncluster import runner as _runner
from ..base import Submission
from .extra import apply_extra

LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_KEY = "clustrix.io/key"
LABEL_CLIENT = "clustrix.io/client"
ANNOTATION_FUNCTION = "clustrix.io/function"
ANNOTATION_CHUNKSIZE = "clustrix.io/chunksize"  # tasks per pod (for reattaching)
INDEX_ANNOTATION = "batch.kubernetes.io/job-completion-index"
CONTAINER = "task"
PAYLOAD_DIR = "/clustrix/payload"
WORK_DIR = "/clustrix/work"
SECRET_LIMIT = 1024 * 1024  # the API server refuses Secrets whose data exceed 1 MiB
RESULT_LIMIT = 4 * 1024 * 1024  # kubelets rotate container logs at 10 MiB by default
LOCAL_PYTHON = f"{sys.version_info[0]}.{sys.version_info[1]}"
_RESERVED_LABELS = (LABEL_MANAGED_BY, LABEL_KEY, LABEL_CLIENT)


def dns_label(text: str, max_length: int = 63) -> str:
    """`text` made a DNS-1123 label: lowercase alphanumerics and '-', at most 63 long."""
    label = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:max_length].strip("-")
    return label or "task"


def job_name(name: str, key: str) -> str:
    """The Job's name: the function's name, sanitised, then the submission key.

    Kept short: pods are named ``<job>-<index>-<random>`` and the name is a label value.
    """
    return f"{dns_label(name, 30)}-{dns_label(key)}"


def quantity(size: int) -> str:
    """Bytes as a Kubernetes quantity: ``4Gi``, ``512Mi``, or plain bytes."""
    for suffix, factor in (("Ti", 1024**4), ("Gi", 1024**3), ("Mi", 1024**2), ("Ki", 1024)):
        if size % factor == 0:
            return f"{size // factor}{suffix}"
    return str(size)


def default_image() -> str:
    """An official Python image of this interpreter's major.minor (pickles match)."""
    return f"python:{LOCAL_PYTHON}-slim"


@cache
def _support_files() -> tuple[tuple[str, bytes], ...]:
    """The runner, the entry point and the pure-Python cloudpickle package (cached)."""
    files = [
        ("entry.py", Path(k8s_entry.__file__).read_bytes()),
        ("clustrix_runner.py", Path(_runner.__file__).read_bytes()),
        ("clustrix_layout.py", Path(layout.__file__).read_bytes()),
    ]
    package = Path(cloudpickle.__file__).parent
    for source in sorted(package.glob("*.py")):
        files.append((f"lib/cloudpickle/{source.name}", source.read_bytes()))
    return tuple(files)


def payload_files(payload: Payload, *, chunksize: int) -> dict[str, bytes]:
    """Every file of the Secret, by its path below the mount point."""
    files = dict(_support_files())
    # No runner time limit: its watchdog kills its own process group, which inside a
    # pod is the container; time is enforced by the pod deadline and the entry point.
    spec = payload.spec_json(chunksize, time_limit=None)
    files.update(layout.payload_files(payload.function, payload.args_blob(), spec))
    return files


def check_payload_size(files: Mapping[str, bytes], name: str) -> None:
    """Refuse, before anything is created, a payload no Secret can hold."""
    total = sum(len(data) for data in files.values())
    if total <= SECRET_LIMIT:
        return
    support = sum(len(data) for _, data in _support_files())
    raise SerializationError(
        f"the payload of {name!r} is {total:,} bytes, but the Kubernetes Secret that "
        f"carries it holds at most 1 MiB ({SECRET_LIMIT:,} bytes; clustrix's runner and "
        f"cloudpickle take {support:,} of them). Put large inputs on a volume the pods "
        "mount (extra={'volumes': [...], 'volumeMounts': [...]}) and pass their paths."
    )


def _key(path: str) -> str:
    return path.replace("/", ".")


def secret_manifest(
    name: str,
    namespace: str,
    files: Mapping[str, bytes],
    labels: Mapping[str, str],
    owner_uid: str,
) -> dict[str, Any]:
    """The payload Secret, owned by the Job `name` (garbage-collected with it)."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": dict(labels),
            "ownerReferences": [
                {
                    "apiVersion": "batch/v1",
                    "kind": "Job",
                    "name": name,
                    "uid": owner_uid,
                    "blockOwnerDeletion": False,
                }
            ],
        },
        "type": "Opaque",
        "immutable": True,
        "data": {_key(p): base64.b64encode(data).decode() for p, data in files.items()},
    }


def _resources(resources: Resources) -> dict[str, dict[str, str]]:
    amounts = {"cpu": str(resources.cores)}
    if resources.memory:
        amounts["memory"] = quantity(resources.memory)
    limits = dict(amounts)
    if resources.gpus:
        limits["nvidia.com/gpu"] = str(resources.gpus)
    return {"requests": amounts, "limits": limits}


def check_supported(resources: Resources, config: ClusterConfig) -> None:
    """Refuse options that mean nothing on Kubernetes, before anything is created."""
    if not isinstance(resources.environment, Inherit):
        raise ConfigError(
            f"environment={str(resources.environment)!r} is not supported on Kubernetes: the "
            "pod runs the image's Python; build an image with what the function needs "
            "and set k8s_image"
        )
    if resources.nodes and resources.nodes > 1:
        raise ConfigError(f"nodes={resources.nodes}: a Kubernetes task is one pod; use nodes=1")
    for field in ("module_loads", "pre_execution_commands"):
        if getattr(config, field):
            raise ConfigError(
                f"{field} is not supported on Kubernetes (there is no shell script); "
                "bake the setup into the image named by k8s_image"
            )


def job_manifest(
    *,
    name: str,
    namespace: str,
    function: str,
    labels: Mapping[str, str],
    resources: Resources,
    config: ClusterConfig,
    elements: int,
    indexed: bool,
    chunksize: int = 1,
) -> dict[str, Any]:
    """The Job, created suspended (`spec.suspend`); extra is merged into its pod."""
    env = [
        {"name": "CLUSTRIX_K8S_PAYLOAD", "value": PAYLOAD_DIR},
        {"name": "CLUSTRIX_K8S_WORK", "value": WORK_DIR},
        {"name": "CLUSTRIX_K8S_PYTHON", "value": LOCAL_PYTHON},
        {"name": "CLUSTRIX_K8S_RESULT_LIMIT", "value": str(RESULT_LIMIT)},
        {"name": "PYTHONUNBUFFERED", "value": "1"},
        {"name": "PYTHONDONTWRITEBYTECODE", "value": "1"},
    ]
    env += [{"name": k, "value": v} for k, v in config.environment_variables.items()]
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": config.k8s_image or default_image(),
        "command": [config.python_executable, f"{PAYLOAD_DIR}/entry.py"],
        "env": env,
        "resources": _resources(resources),
        "volumeMounts": [
            {"name": "clustrix-payload", "mountPath": PAYLOAD_DIR, "readOnly": True},
            {"name": "clustrix-work", "mountPath": WORK_DIR},
        ],
    }
    items = [{"key": _key(p), "path": p} for p in _all_paths()]
    pod: dict[str, Any] = {
        "restartPolicy": "Never",
        "enableServiceLinks": False,
        "containers": [container],
        "volumes": [
            {
                "name": "clustrix-payload",
                "secret": {"secretName": name, "defaultMode": 0o444, "items": items},
            },
            {"name": "clustrix-work", "emptyDir": {}},
        ],
    }
    if resources.time and chunksize == 1:
        pod["activeDeadlineSeconds"] = resources.time
    elif resources.time:  # the entry point times each task; the deadline is a backstop
        env.append({"name": "CLUSTRIX_K8S_TASK_TIME", "value": str(resources.time)})
        pod["activeDeadlineSeconds"] = resources.time * chunksize + 60
    if config.k8s_service_account:
        pod["serviceAccountName"] = config.k8s_service_account
    if config.k8s_image_pull_secrets:
        pod["imagePullSecrets"] = [{"name": s} for s in config.k8s_image_pull_secrets]
    metadata: dict[str, Any] = {
        "labels": dict(labels),
        "annotations": {ANNOTATION_FUNCTION: function[:250], ANNOTATION_CHUNKSIZE: str(chunksize)},
    }
    apply_extra(metadata, pod, container, dict(resources.extra), reserved=_RESERVED_LABELS)
    spec: dict[str, Any] = {
        "completions": elements,
        "parallelism": min(elements, resources.max_concurrent or elements),
        "suspend": True,
        "ttlSecondsAfterFinished": config.k8s_job_ttl_seconds,
        "template": {"metadata": copy.deepcopy(metadata), "spec": pod},
    }
    if indexed:
        # A failed index is not retried and does not stop the other indexes.
        spec.update(completionMode="Indexed", backoffLimitPerIndex=0)
    else:
        spec["backoffLimit"] = 0
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": namespace, **metadata},
        "spec": spec,
    }


def _all_paths() -> list[str]:
    return [p for p, _ in _support_files()] + [layout.FUNCTION, layout.ARGS, layout.SPEC]


@dataclass(frozen=True)
class Plan:
    """Everything a submission creates: the Job, and the Secret once the Job's uid is known."""

    name: str
    namespace: str
    labels: dict[str, str]
    files: dict[str, bytes]
    job: dict[str, Any]

    def secret(self, owner_uid: str) -> dict[str, Any]:
        return secret_manifest(self.name, self.namespace, self.files, self.labels, owner_uid)


def plan(
    submission: Submission,
    *,
    namespace: str,
    client_id: str,
    chunksize: int,
    elements: int,
    indexed: bool,
) -> Plan:
    """Check and build a submission's objects; raises before anything is created."""
    resources, config = submission.resources, submission.config
    check_supported(resources, config)
    files = payload_files(
        submission.payload,
        chunksize=chunksize,
    )
    check_payload_size(files, submission.name)
    name = job_name(submission.name, submission.key)
    labels = {LABEL_MANAGED_BY: "clustrix", LABEL_KEY: submission.key, LABEL_CLIENT: client_id}
    job = job_manifest(
        name=name,
        namespace=namespace,
        function=submission.name,
        labels=labels,
        resources=resources,
        config=config,
        elements=elements,
        indexed=indexed,
        chunksize=chunksize,
    )
    return Plan(name, namespace, labels, files, job)
