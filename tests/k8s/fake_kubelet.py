"""A FAKE job controller, scheduler and kubelet for `FakeApiServer` (tests only).

They act on the fake's store the way the real ones act on a cluster:

* job controller: creates pods for a released (not suspended) Job, one per index for
  an Indexed Job (``batch.kubernetes.io/job-completion-index`` label and annotation,
  ``JOB_COMPLETION_INDEX`` env), at most ``parallelism`` at once; counts successes and
  failures (``backoffLimit``, ``backoffLimitPerIndex``), enforces the Job's
  ``activeDeadlineSeconds``, writes ``status`` (active/succeeded/failed,
  completedIndexes/failedIndexes, conditions Complete or Failed with the real reasons
  BackoffLimitExceeded, FailedIndexes, DeadlineExceeded) and honours
  ``ttlSecondsAfterFinished``;
* scheduler: binds a pod to the one fake node if its requests (cpu, memory,
  nvidia.com/gpu) fit what is free, else leaves it Pending with ``PodScheduled=False``,
  reason ``Unschedulable`` and the real message; retried whenever a pod ends;
* kubelet: "pulls" the image (only images in `images` exist; others go
  ErrImagePull -> ImagePullBackOff), materialises Secret and emptyDir volumes as
  directories (read-only mounts get read-only permissions), and runs the container's
  command as a LOCAL process: the in-pod paths (mount points) are rewritten to those
  directories in the command, args and env, and ``python3`` is the image's
  interpreter (``sys.executable -S``: the venv's site-packages are NOT visible, so
  the payload's own cloudpickle is what runs). stdout and stderr become the pod log.
  The pod's ``activeDeadlineSeconds`` kills it (phase Failed, reason
  DeadlineExceeded); a memory limit is enforced by watching the process's RSS (no
  cgroups here) and reported as the container's ``OOMKilled``; deleting a pod kills
  its process.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import datetime
import os
import re
import signal
from pathlib import Path
from typing import Any

from .fake_apiserver import INDEX, FakeApiServer, now

NODE = "fake-node"
_UNITS = {
    "Ki": 1024,
    "Mi": 1024**2,
    "Gi": 1024**3,
    "Ti": 1024**4,
    "k": 1000,
    "M": 1000**2,
    "G": 1000**3,
    "m": 0.001,
}


def parse_quantity(value: str | int | float) -> float:
    text = str(value)
    match = re.fullmatch(r"([0-9.]+)([A-Za-z]*)", text)
    if not match:
        raise ValueError(f"bad quantity {value!r}")
    number, unit = float(match.group(1)), match.group(2)
    return number * _UNITS.get(unit, 1)


def _compress(indexes: set[int]) -> str:
    """Index set as the API writes it: '0-3,5'."""
    ranges: list[str] = []
    for i in sorted(indexes):
        if ranges and ranges[-1].split("-")[-1] == str(i - 1):
            ranges[-1] = f"{ranges[-1].split('-')[0]}-{i}"
        else:
            ranges.append(str(i))
    return ",".join(ranges)


def _owner_uid(obj: dict[str, Any]) -> str | None:
    for ref in obj["metadata"].get("ownerReferences") or []:
        if ref.get("kind") == "Job" and ref.get("controller"):
            return str(ref["uid"])
    return None


def _terminal(pod: dict[str, Any]) -> bool:
    return pod.get("status", {}).get("phase") in ("Succeeded", "Failed")


class FakeCluster:
    """A FAKE one-node cluster behind a `FakeApiServer` (see the module docstring)."""

    def __init__(
        self,
        api: FakeApiServer,
        root: Path,
        *,
        images: dict[str, list[str]],
        cpu: float = 8,
        memory: float = 64 * 1024**3,
        gpus: float = 0,
    ) -> None:
        self.api = api
        self.root = root
        self.images = images
        self.capacity = {"cpu": cpu, "memory": memory, "nvidia.com/gpu": gpus}
        self.allocated: dict[str, dict[str, float]] = {}  # pod uid -> requests
        self._processes: dict[str, asyncio.subprocess.Process] = {}
        self._kubelets: dict[str, asyncio.Task[None]] = {}
        self._timers: list[asyncio.TimerHandle] = []
        self._dirty: set[tuple[str, str]] = set()
        self._reconcile_pending = False
        self._secret_added = asyncio.Event()
        # Ended pods per Job uid, as the job-tracking finalizer makes sure they are counted:
        # pod uid -> (phase, completion index). A pod deleted before it ended counts Failed.
        self._ended: dict[str, dict[str, tuple[str, int]]] = {}
        self.started_pods: list[str] = []
        api.listeners.append(self._changed)
        api.recorders.append(self._record)
        api.on_pod_delete = self._pod_deleted

    async def aclose(self) -> None:
        for timer in self._timers:
            timer.cancel()
        for process in list(self._processes.values()):
            _kill(process)
        for process in list(self._processes.values()):
            await process.wait()  # reaped, so no transport outlives the loop
        kubelets = list(self._kubelets.values())
        for task in kubelets:
            task.cancel()
        await asyncio.gather(*kubelets, return_exceptions=True)

    # -- reacting to the store -------------------------------------------------------------
    def _changed(self, resource: str, event: str, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        if resource == "jobs":
            self._mark(meta["namespace"], meta["name"])
        elif resource == "pods":
            owner = _owner_uid(obj)
            if owner is not None:
                for job in self.api.items("jobs"):
                    if job["metadata"]["uid"] == owner:
                        self._mark(meta["namespace"], job["metadata"]["name"])
            if event == "ADDED":
                self._schedule()
        elif resource == "secrets" and event == "ADDED":
            self._secret_added.set()

    def _record(self, resource: str, event: str, obj: dict[str, Any]) -> None:
        """Count a pod that ended (or was deleted before it did) for its Job, at once."""
        owner = _owner_uid(obj) if resource == "pods" else None
        if owner is not None and (_terminal(obj) or event == "DELETED"):
            meta = obj["metadata"]
            index = int(meta.get("annotations", {}).get(INDEX, 0))
            phase = obj["status"]["phase"] if _terminal(obj) else "Failed"
            self._ended.setdefault(owner, {}).setdefault(meta["uid"], (phase, index))

    def _mark(self, namespace: str, name: str) -> None:
        self._dirty.add((namespace, name))
        if not self._reconcile_pending:
            self._reconcile_pending = True
            asyncio.get_running_loop().call_soon(self._reconcile_dirty)

    def _reconcile_dirty(self) -> None:
        self._reconcile_pending = False
        dirty, self._dirty = self._dirty, set()
        for namespace, name in sorted(dirty):
            job = self.api.get("jobs", namespace, name)
            if job is not None and not job["metadata"].get("deletionTimestamp"):
                self._reconcile(copy.deepcopy(job))

    def _later(self, delay: float, callback: Any, *args: Any) -> None:
        self._timers.append(asyncio.get_running_loop().call_later(delay, callback, *args))

    # -- job controller --------------------------------------------------------------------
    def _reconcile(self, job: dict[str, Any]) -> None:
        meta, spec = job["metadata"], job["spec"]
        status = job.setdefault("status", {})
        if any(c["type"] in ("Complete", "Failed") for c in status.get("conditions", [])):
            return
        uid, namespace = meta["uid"], meta["namespace"]
        pods = [p for p in self.api.items("pods") if _owner_uid(p) == uid]
        ended = self._ended.get(uid, {})
        active = [p for p in pods if not _terminal(p) and p["metadata"]["uid"] not in ended]
        succeeded = [i for phase, i in ended.values() if phase == "Succeeded"]
        failed = [i for phase, i in ended.values() if phase == "Failed"]
        if spec.get("suspend"):
            for pod in active:
                self.api.delete("pods", namespace, pod["metadata"]["name"], None)
            self._set_condition(status, "Suspended", "True", "JobSuspended", "Job suspended")
            status["active"] = 0
            self.api.update("jobs", job)
            return
        self._set_condition(status, "Suspended", "False", "JobResumed", "Job resumed")
        start = status.setdefault("startTime", now())
        deadline = spec.get("activeDeadlineSeconds")
        indexed = spec.get("completionMode") == "Indexed"
        completions, parallelism = spec["completions"], spec["parallelism"]
        outcome: tuple[str, str, str] | None = None
        if deadline is not None:
            elapsed = (datetime.datetime.now(datetime.UTC) - _parse_time(start)).total_seconds()
            if elapsed >= deadline:
                outcome = (
                    "Failed",
                    "DeadlineExceeded",
                    "Job was active longer than specified deadline",
                )
            else:
                self._later(deadline - elapsed + 0.01, self._mark, namespace, meta["name"])
        to_create: list[int | None] = []
        if indexed:
            done = set(succeeded)
            per_index = spec.get("backoffLimitPerIndex")
            failures: dict[int, int] = {}
            for index in failed:
                failures[index] = failures.get(index, 0) + 1
            lost = {i for i, n in failures.items() if per_index is not None and n > per_index}
            lost -= done
            if per_index is None and len(failed) > spec["backoffLimit"]:
                outcome = outcome or (
                    "Failed",
                    "BackoffLimitExceeded",
                    "Job has reached the specified backoff limit",
                )
            running = {int(p["metadata"]["annotations"][INDEX]) for p in active}
            waiting = [i for i in range(completions) if i not in done | lost | running]
            to_create = list(waiting[: max(0, parallelism - len(active))])
            status["completedIndexes"] = _compress(done)
            if per_index is not None:
                status["failedIndexes"] = _compress(lost)
            if outcome is None and len(done | lost) == completions:
                outcome = (
                    ("Failed", "FailedIndexes", "Job has failed indexes")
                    if lost
                    else ("Complete", "", "")
                )
        else:
            if len(failed) > spec["backoffLimit"]:
                outcome = outcome or (
                    "Failed",
                    "BackoffLimitExceeded",
                    "Job has reached the specified backoff limit",
                )
            elif len(succeeded) >= completions:
                outcome = outcome or ("Complete", "", "")
            else:
                want = min(parallelism, completions - len(succeeded)) - len(active)
                to_create = [None] * max(0, want)
        if outcome is not None:
            to_create = []
            for pod in active:
                self.api.delete("pods", namespace, pod["metadata"]["name"], None)
        for index in to_create:
            self._create_pod(job, index)
        status["active"] = 0 if outcome else len(active) + len(to_create)
        status["succeeded"] = len(succeeded)
        status["failed"] = len(failed)
        status["ready"] = sum(1 for p in active if p["status"].get("phase") == "Running")
        status["terminating"] = 0
        if outcome is not None:
            kind, reason, message = outcome
            if kind == "Complete":
                status["completionTime"] = now()
                self._set_condition(
                    status,
                    "SuccessCriteriaMet",
                    "True",
                    "CompletionsReached",
                    "Reached expected number of succeeded pods",
                )
                self._set_condition(
                    status,
                    "Complete",
                    "True",
                    "CompletionsReached",
                    "Reached expected number of succeeded pods",
                )
            else:
                self._set_condition(status, "FailureTarget", "True", reason, message)
                self._set_condition(status, "Failed", "True", reason, message)
            ttl = spec.get("ttlSecondsAfterFinished")
            if ttl is not None:
                self._later(ttl, self._expire, namespace, meta["name"], uid)
        self.api.update("jobs", job)

    @staticmethod
    def _set_condition(
        status: dict[str, Any], kind: str, value: str, reason: str, message: str
    ) -> None:
        conditions = status.setdefault("conditions", [])
        for condition in conditions:
            if condition["type"] == kind:
                if condition["status"] != value:
                    condition.update(
                        status=value, reason=reason, message=message, lastTransitionTime=now()
                    )
                return
        if kind == "Suspended" and value == "False":
            return  # only recorded once the Job was suspended and resumed
        conditions.append(
            {
                "type": kind,
                "status": value,
                "reason": reason,
                "message": message,
                "lastProbeTime": now(),
                "lastTransitionTime": now(),
            }
        )

    def _expire(self, namespace: str, name: str, uid: str) -> None:
        """The TTL-after-finished controller."""
        job = self.api.get("jobs", namespace, name)
        if job is not None and job["metadata"]["uid"] == uid:
            self.api.delete("jobs", namespace, name, "Background")

    def _create_pod(self, job: dict[str, Any], index: int | None) -> None:
        meta = job["metadata"]
        template = copy.deepcopy(job["spec"]["template"])
        labels = template.setdefault("metadata", {}).setdefault("labels", {})
        annotations = template["metadata"].setdefault("annotations", {})
        spec = template["spec"]
        if index is not None:
            labels[INDEX] = annotations[INDEX] = str(index)
            spec.setdefault("hostname", f"{meta['name']}-{index}")
            ref = f"metadata.annotations['{INDEX}']"
            for container in spec["containers"]:
                container.setdefault("env", []).append(
                    {
                        "name": "JOB_COMPLETION_INDEX",
                        "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": ref}},
                    }
                )
        spec.setdefault("schedulerName", "default-scheduler")
        spec.setdefault("terminationGracePeriodSeconds", 30)
        spec.setdefault("dnsPolicy", "ClusterFirst")
        spec.setdefault("serviceAccountName", "default")
        pod = {
            "metadata": {
                "generateName": f"{meta['name']}-{index}-"
                if index is not None
                else f"{meta['name']}-",
                "labels": labels,
                "annotations": annotations,
                "ownerReferences": [
                    {
                        "apiVersion": "batch/v1",
                        "kind": "Job",
                        "name": meta["name"],
                        "uid": meta["uid"],
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            },
            "spec": spec,
        }
        self.api.create("pods", meta["namespace"], pod)

    # -- scheduler ---------------------------------------------------------------------------
    @staticmethod
    def _requests(pod: dict[str, Any]) -> dict[str, float]:
        total = {"cpu": 0.0, "memory": 0.0, "nvidia.com/gpu": 0.0}
        for container in pod["spec"]["containers"]:
            resources = container.get("resources") or {}
            wanted = {**(resources.get("limits") or {}), **(resources.get("requests") or {})}
            for name in total:
                if name in wanted:
                    total[name] += parse_quantity(wanted[name])
        return total

    def _schedule(self) -> None:
        free = dict(self.capacity)
        for used in self.allocated.values():
            for name, amount in used.items():
                free[name] -= amount
        pending = [
            p
            for p in self.api.items("pods")
            if not p["spec"].get("nodeName") and not p["metadata"].get("deletionTimestamp")
        ]
        pending.sort(key=lambda p: int(p["metadata"]["resourceVersion"]))
        for pod in pending:
            pod = copy.deepcopy(pod)
            wanted = self._requests(pod)
            short = [n for n, amount in wanted.items() if amount > free[n] + 1e-9]
            if short:
                message = (
                    "0/1 nodes are available: "
                    + ", ".join(f"1 Insufficient {n}" for n in short)
                    + ". preemption: 0/1 nodes are available: 1 No preemption victims found "
                    "for incoming pod."
                )
                self._pod_condition(pod, "PodScheduled", "False", "Unschedulable", message)
                self.api.update("pods", pod)
                continue
            for name, amount in wanted.items():
                free[name] -= amount
            uid = pod["metadata"]["uid"]
            self.allocated[uid] = wanted
            pod["spec"]["nodeName"] = NODE
            self._pod_condition(pod, "PodScheduled", "True", "", "")
            self.api.update("pods", pod)
            self._kubelets[uid] = asyncio.get_running_loop().create_task(self._kubelet(pod))

    @staticmethod
    def _pod_condition(
        pod: dict[str, Any], kind: str, value: str, reason: str, message: str
    ) -> None:
        conditions = pod.setdefault("status", {}).setdefault("conditions", [])
        entry: dict[str, Any] = {
            "type": kind,
            "status": value,
            "lastProbeTime": None,
            "lastTransitionTime": now(),
        }
        if reason:
            entry.update(reason=reason, message=message)
        for i, condition in enumerate(conditions):
            if condition["type"] == kind:
                if {k: v for k, v in condition.items() if k != "lastTransitionTime"} != {
                    k: v for k, v in entry.items() if k != "lastTransitionTime"
                }:
                    conditions[i] = entry
                return
        conditions.append(entry)

    # -- kubelet ---------------------------------------------------------------------------
    def _current(self, pod: dict[str, Any]) -> dict[str, Any] | None:
        meta = pod["metadata"]
        current = self.api.get("pods", meta["namespace"], meta["name"])
        if current is None or current["metadata"]["uid"] != meta["uid"]:
            return None
        return copy.deepcopy(current)

    def _set_status(self, pod: dict[str, Any], **changes: Any) -> dict[str, Any] | None:
        current = self._current(pod)
        if current is None:
            return None
        current["status"].update(changes)
        return self.api.update("pods", current)

    def _container_status(
        self, pod: dict[str, Any], state: dict[str, Any], **more: Any
    ) -> list[dict[str, Any]]:
        container = pod["spec"]["containers"][0]
        return [
            {
                "name": container["name"],
                "image": container["image"],
                "imageID": "",
                "ready": False,
                "restartCount": 0,
                "started": False,
                "state": state,
                **more,
            }
        ]

    async def _kubelet(self, pod: dict[str, Any]) -> None:
        uid = pod["metadata"]["uid"]
        try:
            await self._run(pod)
        finally:
            self.allocated.pop(uid, None)
            self._kubelets.pop(uid, None)
            current = self._current(pod)
            if current is not None and current["metadata"].get("deletionTimestamp"):
                meta = current["metadata"]
                self.api.remove("pods", meta["namespace"], meta["name"])
            with contextlib.suppress(RuntimeError):
                self._schedule()

    async def _run(self, pod: dict[str, Any]) -> None:
        container = pod["spec"]["containers"][0]
        waiting = {"waiting": {"reason": "ContainerCreating"}}
        self._set_status(
            pod,
            hostIP="10.0.0.1",
            startTime=now(),
            containerStatuses=self._container_status(pod, waiting),
        )
        interpreter = self.images.get(container["image"])
        if interpreter is None:
            await self._pull_failure(pod, container["image"])
            return
        directory = self.root / pod["metadata"]["name"]
        mounts = await self._volumes(pod, directory)
        if mounts is None:
            return
        argv = [*container.get("command", []), *container.get("args", [])]
        argv = [self._path(a, mounts) for a in argv]
        if (argv and argv[0] in ("python", "python3")) or (argv and argv[0].startswith("python3.")):
            argv = [*interpreter, *argv[1:]]
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOSTNAME": pod["metadata"]["name"],
            "HOME": str(directory / "home"),
            "LANG": "C.UTF-8",
        }
        for var in container.get("env", []):
            env[var["name"]] = self._path(self._env_value(pod, var), mounts)
        (directory / "home").mkdir(parents=True, exist_ok=True)
        current = self._current(pod)
        if current is None or current["metadata"].get("deletionTimestamp"):
            return
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            cwd=str(directory / "home"),
            env=env,
            start_new_session=True,
        )
        self._processes[pod["metadata"]["uid"]] = process
        self.started_pods.append(pod["metadata"]["name"])
        log = self.api.logs.setdefault(pod["metadata"]["uid"], bytearray())
        started = now()
        running = {"running": {"startedAt": started}}
        current = self._current(pod)
        if current is not None:
            self._pod_condition(current, "Ready", "True", "", "")
            current["status"].update(
                phase="Running",
                podIP=f"10.1.0.{len(self.started_pods) % 250 + 2}",
                containerStatuses=self._container_status(pod, running, ready=True, started=True),
            )
            self.api.update("pods", current)
        if current is not None and current["metadata"].get("deletionTimestamp"):
            _kill(process)
        flags: dict[str, bool] = {"oom": False, "deadline": False}
        watchers = [asyncio.create_task(self._pump(process, log))]
        limit = container.get("resources", {}).get("limits", {}).get("memory")
        if limit is not None:
            watchers.append(
                asyncio.create_task(self._memory(process, parse_quantity(limit), flags))
            )
        deadline = pod["spec"].get("activeDeadlineSeconds")
        if deadline is not None:
            watchers.append(asyncio.create_task(self._deadline(process, deadline, flags)))
        try:
            code = await process.wait()
            await watchers[0]
        finally:
            for watcher in watchers:
                watcher.cancel()
            await asyncio.gather(*watchers, return_exceptions=True)
            self._processes.pop(pod["metadata"]["uid"], None)
        exit_code = code if code >= 0 else 128 - code
        reason = "OOMKilled" if flags["oom"] else ("Completed" if exit_code == 0 else "Error")
        terminated = {
            "terminated": {
                "exitCode": exit_code,
                "reason": reason,
                "startedAt": started,
                "finishedAt": now(),
                "containerID": f"fake://{pod['metadata']['uid']}",
            }
        }
        current = self._current(pod)
        if current is None:
            return
        self._pod_condition(current, "Ready", "False", "PodCompleted", "")
        changes: dict[str, Any] = {
            "phase": "Succeeded" if exit_code == 0 and not flags["deadline"] else "Failed",
            "containerStatuses": self._container_status(pod, terminated),
        }
        if flags["deadline"]:
            changes.update(
                reason="DeadlineExceeded",
                message="Pod was active on the node longer than the specified deadline",
            )
        current["status"].update(changes)
        self.api.update("pods", current)

    async def _pull_failure(self, pod: dict[str, Any], image: str) -> None:
        reference = image if "/" in image else f"docker.io/library/{image}"
        pull = {
            "waiting": {
                "reason": "ErrImagePull",
                "message": f'failed to pull and unpack image "{reference}": failed to '
                f'resolve reference "{reference}": {reference}: not found',
            }
        }
        self._set_status(pod, containerStatuses=self._container_status(pod, pull))
        await asyncio.sleep(0.05)
        backoff = {
            "waiting": {
                "reason": "ImagePullBackOff",
                "message": f'Back-off pulling image "{image}"',
            }
        }
        self._set_status(pod, containerStatuses=self._container_status(pod, backoff))
        await self.api.wait_for(
            lambda: (
                self._current(pod) is None
                or bool(self._current(pod)["metadata"].get("deletionTimestamp"))
            ),
            timeout=3600,
        )  # type: ignore[index]

    async def _volumes(self, pod: dict[str, Any], directory: Path) -> dict[str, str] | None:
        """Materialise the pod's volumes; {mountPath: local directory}."""
        namespace = pod["metadata"]["namespace"]
        local: dict[str, Path] = {}
        for volume in pod["spec"].get("volumes", []):
            target = directory / "volumes" / volume["name"]
            if "emptyDir" in volume:
                target.mkdir(parents=True, exist_ok=True)
            elif "hostPath" in volume:
                target = Path(volume["hostPath"]["path"])
            elif "secret" in volume:
                source = volume["secret"]
                secret = self.api.get("secrets", namespace, source["secretName"])
                while secret is None:  # the kubelet retries the mount until the Secret exists
                    self._secret_added.clear()
                    if self._current(pod) is None:
                        return None
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(0.5):
                            await self._secret_added.wait()
                    secret = self.api.get("secrets", namespace, source["secretName"])
                data = secret.get("data") or {}
                items = source.get("items") or [{"key": k, "path": k} for k in data]
                for item in items:
                    path = target / item["path"]
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_bytes(base64.b64decode(data[item["key"]]))
                    path.chmod(item.get("mode", source.get("defaultMode", 0o644)))
            else:
                raise NotImplementedError(f"the fake kubelet has no volume type in {volume}")
            local[volume["name"]] = target
        mounts: dict[str, str] = {}
        for mount in pod["spec"]["containers"][0].get("volumeMounts", []):
            path = local[mount["name"]]
            if mount.get("readOnly"):
                for sub in [path, *path.rglob("*")]:
                    if sub.is_dir():
                        sub.chmod(0o555)
            # The container's view: <pod dir>/rootfs/<mountPath> is the volume, so a
            # translated path ends with the in-pod path.
            seen_as = directory / "rootfs" / mount["mountPath"].lstrip("/")
            seen_as.parent.mkdir(parents=True, exist_ok=True)
            seen_as.symlink_to(path, target_is_directory=True)
            mounts[mount["mountPath"]] = str(seen_as)
        return mounts

    @staticmethod
    def _path(value: str, mounts: dict[str, str]) -> str:
        for mount in sorted(mounts, key=len, reverse=True):
            if value == mount or value.startswith(mount.rstrip("/") + "/"):
                return mounts[mount] + value[len(mount) :]
        return value

    def _env_value(self, pod: dict[str, Any], var: dict[str, Any]) -> str:
        if "value" in var:
            return str(var["value"])
        field = var.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath", "")
        match = re.fullmatch(r"metadata\.(annotations|labels)\['(.+)'\]", field)
        if match:
            return str(pod["metadata"].get(match.group(1), {}).get(match.group(2), ""))
        if field in ("metadata.name", "metadata.namespace", "metadata.uid"):
            return str(pod["metadata"][field.split(".")[1]])
        return ""

    @staticmethod
    async def _pump(process: asyncio.subprocess.Process, log: bytearray) -> None:
        assert process.stdout is not None
        while chunk := await process.stdout.read(65536):
            log.extend(chunk)

    @staticmethod
    async def _memory(
        process: asyncio.subprocess.Process, limit: float, flags: dict[str, bool]
    ) -> None:
        """The memory cgroup: kill the container when its resident memory passes the limit."""
        while process.returncode is None:
            try:
                text = Path(f"/proc/{process.pid}/status").read_text()
            except OSError:
                return
            match = re.search(r"^VmRSS:\s+(\d+) kB", text, re.M)
            if match and int(match.group(1)) * 1024 > limit:
                flags["oom"] = True
                _kill(process)
                return
            await asyncio.sleep(0.01)

    @staticmethod
    async def _deadline(
        process: asyncio.subprocess.Process, seconds: float, flags: dict[str, bool]
    ) -> None:
        await asyncio.sleep(seconds)
        if process.returncode is None:
            flags["deadline"] = True
            _kill(process)

    def _pod_deleted(self, pod: dict[str, Any]) -> bool:
        """DELETE on a pod: kill its process; True if the kubelet will remove the pod."""
        uid = pod["metadata"]["uid"]
        process = self._processes.get(uid)
        if process is not None:
            _kill(process)
            return True
        task = self._kubelets.get(uid)
        if task is not None:  # pulling or mounting: stop it, the kubelet removes the pod
            task.cancel()
            return True
        self.allocated.pop(uid, None)
        return False


def _kill(process: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


def _parse_time(text: str) -> datetime.datetime:
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.UTC)
