"""A FAKE Kubernetes API server, for tests only (no real kube-apiserver runs here).

It speaks the real REST protocol over HTTP on 127.0.0.1 for exactly what clustrix
and ``kubectl get/delete`` use, with the real JSON shapes:

* discovery: ``/version``, ``/api``, ``/apis``, ``/api/v1``, ``/apis/batch/v1``;
* ``batch/v1`` Jobs, ``v1`` Pods and Secrets: create (POST), get, list, watch,
  delete (with ``propagationPolicy``: Background, Foreground, or the Jobs' default
  Orphan), merge-patch; pod logs (``/pods/NAME/log``);
* label selectors (``=``, ``==``, ``!=``, ``key``, ``!key``) and ``metadata.name``
  / ``metadata.namespace`` field selectors;
* watch streams: newline-delimited ``{"type", "object"}`` events, resumable from a
  ``resourceVersion``; an expired one gets the real ``ERROR`` event with a 410
  ``Status`` (reason ``Expired``); ``timeoutSeconds``; ``BOOKMARK`` events.

Every request is recorded (`requests`) so tests can assert on the protocol. Test
hooks: `drop_watches()` cuts every open watch connection mid-stream, `compact()`
forgets the event history (older resourceVersions become 410 Gone), and
`watch_outage` makes watch requests fail with 503 until it is cleared. The
controllers and the kubelet live in `fake_kubelet.py`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import datetime
import json
import re
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

SECRET_LIMIT = 1024 * 1024
INDEX = "batch.kubernetes.io/job-completion-index"
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_RANDOM = "bcdfghjklmnpqrstvwxz2456789"


@dataclass(frozen=True)
class Kind:
    resource: str
    kind: str
    group: str
    verbs: tuple[str, ...] = ("create", "delete", "get", "list", "patch", "watch")
    short: tuple[str, ...] = ()

    @property
    def api_version(self) -> str:
        return f"{self.group}/v1" if self.group else "v1"


KINDS = {
    "pods": Kind("pods", "Pod", "", short=("po",)),
    "secrets": Kind("secrets", "Secret", ""),
    "jobs": Kind("jobs", "Job", "batch"),
}


@dataclass
class Recorded:
    """One request the fake served."""

    method: str
    path: str
    query: dict[str, str]
    body: Any
    status: int = 0
    watch: bool = False


@dataclass(eq=False)
class _Watch:
    kind: Kind
    namespace: str | None
    matches: Callable[[dict[str, Any]], bool]
    queue: asyncio.Queue[tuple[int, str, dict[str, Any]] | None] = field(
        default_factory=asyncio.Queue
    )
    last_sent: int = 0


def now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def random_suffix() -> str:
    return "".join(secrets.choice(_RANDOM) for _ in range(5))


def status_body(code: int, reason: str, message: str, **details: Any) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success" if code < 400 else "Failure",
        "message": message,
        "reason": reason,
        "details": details,
        "code": code,
    }


class ApiStatus(Exception):
    """Ends a request with a `Status` body."""

    def __init__(self, code: int, reason: str, message: str, **details: Any) -> None:
        super().__init__(message)
        self.body = status_body(code, reason, message, **details)


def label_matcher(selector: str) -> Callable[[dict[str, str]], bool]:
    tests: list[Callable[[dict[str, str]], bool]] = []
    for term in filter(None, (t.strip() for t in selector.split(","))):
        if "!=" in term:
            k, v = (x.strip() for x in term.split("!=", 1))
            tests.append(lambda labels, k=k, v=v: labels.get(k) != v)
        elif "=" in term:
            k, v = (x.strip() for x in term.replace("==", "=").split("=", 1))
            tests.append(lambda labels, k=k, v=v: labels.get(k) == v)
        elif term.startswith("!"):
            tests.append(lambda labels, k=term[1:]: k not in labels)
        else:
            tests.append(lambda labels, k=term: k in labels)
    return lambda labels: all(t(labels) for t in tests)


def field_matcher(selector: str) -> Callable[[dict[str, Any]], bool]:
    tests = []
    for term in filter(None, selector.split(",")):
        key, _, value = term.replace("==", "=").partition("=")
        if key not in ("metadata.name", "metadata.namespace"):
            raise ApiStatus(400, "BadRequest", f'field label not supported: "{key}"')
        tests.append((key.split(".")[1], value))
    return lambda meta: all(meta.get(k) == v for k, v in tests)


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


class FakeApiServer:
    """A FAKE kube-apiserver (see the module docstring); state in memory."""

    def __init__(self) -> None:
        self.objects: dict[str, dict[tuple[str, str], dict[str, Any]]] = {k: {} for k in KINDS}
        self.revision = 100
        self.history: list[tuple[int, str, str, dict[str, Any]]] = []
        self.compacted = 0
        self.requests: list[Recorded] = []
        self.logs: dict[str, bytearray] = {}  # pod uid -> its container's output
        self.listeners: list[Callable[[str, str, dict[str, Any]], None]] = []  # called soon
        # Called at once, for bookkeeping that must not lag (the job-tracking finalizer).
        self.recorders: list[Callable[[str, str, dict[str, Any]], None]] = []
        self.on_pod_delete: Callable[[dict[str, Any]], bool] | None = None
        self.watch_outage = False
        self.forbidden: set[tuple[str, str]] = set()  # (verb, resource) refused with 403
        self._watches: dict[_Watch, web.BaseRequest] = {}
        self._changed = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.url = ""

    # -- lifecycle -------------------------------------------------------------------
    async def start(self) -> str:
        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    async def stop(self) -> None:
        self.drop_watches()
        if self._runner is not None:
            await self._runner.cleanup()

    # -- test hooks ------------------------------------------------------------------
    def drop_watches(self) -> None:
        """Cut every open watch connection, as a network failure would."""
        for watch in list(self._watches):
            watch.queue.put_nowait(None)

    def compact(self) -> None:
        """Forget the event history: resuming from an older version gets 410 Gone."""
        self.compacted = self.revision + 1
        self.history.clear()

    def open_watches(self, resource: str) -> list[_Watch]:
        return [w for w in self._watches if w.kind.resource == resource]

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 30) -> None:
        """Wait until `predicate()` holds, re-checking after every change."""
        async with asyncio.timeout(timeout):
            while not predicate():
                self._changed.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(0.2):
                        await self._changed.wait()

    def get(self, resource: str, namespace: str, name: str) -> dict[str, Any] | None:
        return self.objects[resource].get((namespace, name))

    def items(self, resource: str) -> list[dict[str, Any]]:
        return list(self.objects[resource].values())

    def posts(self, resource: str) -> list[Recorded]:
        return [r for r in self.requests if r.method == "POST" and r.path.endswith(resource)]

    def touch(self) -> None:
        self._changed.set()

    # -- the store -----------------------------------------------------------------------
    def _commit(self, resource: str, event: str, obj: dict[str, Any]) -> dict[str, Any]:
        self.revision += 1
        obj["metadata"]["resourceVersion"] = str(self.revision)
        key = (obj["metadata"]["namespace"], obj["metadata"]["name"])
        if event == "DELETED":
            self.objects[resource].pop(key, None)
        else:
            self.objects[resource][key] = obj
        snapshot = copy.deepcopy(obj)
        self.history.append((self.revision, resource, event, snapshot))
        for watch in self._watches:
            if watch.kind.resource == resource and self._visible(watch, snapshot):
                watch.queue.put_nowait((self.revision, event, snapshot))
        for recorder in self.recorders:
            recorder(resource, event, snapshot)
        for listener in self.listeners:
            asyncio.get_running_loop().call_soon(listener, resource, event, snapshot)
        self._changed.set()
        return obj

    @staticmethod
    def _visible(watch: _Watch, obj: dict[str, Any]) -> bool:
        meta = obj["metadata"]
        return (watch.namespace in (None, meta["namespace"])) and watch.matches(obj)

    def create(self, resource: str, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        kind = KINDS[resource]
        obj = copy.deepcopy(body)
        meta = obj.setdefault("metadata", {})
        if not meta.get("name"):
            if not meta.get("generateName"):
                raise ApiStatus(422, "Invalid", f"{kind.kind} is invalid: metadata.name: Required")
            meta["name"] = meta["generateName"] + random_suffix()
        name = meta["name"]
        if not _NAME.match(name) or len(name) > (63 if resource == "jobs" else 253):
            raise ApiStatus(
                422,
                "Invalid",
                f'{kind.kind} "{name}" is invalid: metadata.name: Invalid value: "{name}": a '
                "lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
                "characters, '-' or '.'",
            )
        if meta.get("namespace", namespace) != namespace:
            raise ApiStatus(400, "BadRequest", "the namespace of the object does not match")
        if (namespace, name) in self.objects[resource]:
            group = f"{resource}.{kind.group}" if kind.group else resource
            raise ApiStatus(
                409, "AlreadyExists", f'{group} "{name}" already exists', name=name, kind=resource
            )
        obj["apiVersion"], obj["kind"] = kind.api_version, kind.kind
        meta.update(namespace=namespace, uid=str(uuid.uuid4()), creationTimestamp=now())
        meta.pop("resourceVersion", None)
        if resource == "secrets":
            size = sum(len(base64.b64decode(v)) for v in (obj.get("data") or {}).values())
            if size > SECRET_LIMIT:
                raise ApiStatus(
                    422,
                    "Invalid",
                    f'Secret "{name}" is invalid: data: Too long: may not be more than '
                    f"{SECRET_LIMIT} bytes",
                )
        if resource == "jobs":
            _job_defaults(obj)
        if resource == "pods":
            obj.setdefault("status", {"phase": "Pending", "qosClass": "Burstable"})
        return self._commit(resource, "ADDED", obj)

    def update(self, resource: str, obj: dict[str, Any]) -> dict[str, Any]:
        """Store a changed object (controllers, kubelet); no-op if nothing changed."""
        key = (obj["metadata"]["namespace"], obj["metadata"]["name"])
        current = self.objects[resource].get(key)
        if current is None or current["metadata"]["uid"] != obj["metadata"]["uid"]:
            return obj
        if json.dumps(current, sort_keys=True) == json.dumps(obj, sort_keys=True):
            return current
        return self._commit(resource, "MODIFIED", copy.deepcopy(obj))

    def remove(self, resource: str, namespace: str, name: str) -> dict[str, Any] | None:
        obj = self.objects[resource].get((namespace, name))
        if obj is None:
            return None
        return self._commit(resource, "DELETED", copy.deepcopy(obj))

    def delete(self, resource: str, namespace: str, name: str, policy: str | None) -> Any:
        """The DELETE verb, with the garbage collector's propagation policies."""
        obj = self.objects[resource].get((namespace, name))
        if obj is None:
            raise ApiStatus(404, "NotFound", _not_found(resource, name), name=name, kind=resource)
        if policy is None:
            policy = "Orphan" if resource == "jobs" else "Background"  # batch/v1 Job default
        uid = obj["metadata"]["uid"]
        if resource == "pods":
            obj = copy.deepcopy(obj)
            obj["metadata"]["deletionTimestamp"] = now()
            obj["metadata"]["deletionGracePeriodSeconds"] = 30
            obj = self.update("pods", obj)
            if self.on_pod_delete is None or not self.on_pod_delete(obj):
                return self.remove("pods", namespace, name)
            return obj
        if policy == "Foreground":
            obj = copy.deepcopy(obj)
            obj["metadata"]["deletionTimestamp"] = now()
            obj["metadata"]["finalizers"] = ["foregroundDeletion"]
            obj = self.update(resource, obj)
            asyncio.get_running_loop().create_task(self._foreground(resource, namespace, name))
            return obj
        gone = self.remove(resource, namespace, name)
        for dependent_kind in ("pods", "secrets", "jobs"):
            for dep in self.items(dependent_kind):
                refs = dep["metadata"].get("ownerReferences") or []
                if not any(r.get("uid") == uid for r in refs):
                    continue
                if policy == "Orphan":
                    dep = copy.deepcopy(dep)
                    dep["metadata"]["ownerReferences"] = [r for r in refs if r.get("uid") != uid]
                    self.update(dependent_kind, dep)
                else:
                    meta = dep["metadata"]
                    with contextlib.suppress(ApiStatus):
                        self.delete(dependent_kind, meta["namespace"], meta["name"], "Background")
        return gone

    async def _foreground(self, resource: str, namespace: str, name: str) -> None:
        obj = self.objects[resource].get((namespace, name))
        if obj is None:
            return
        uid = obj["metadata"]["uid"]

        def dependents() -> list[tuple[str, dict[str, Any]]]:
            return [
                (k, d)
                for k in ("pods", "secrets")
                for d in self.items(k)
                if any(r.get("uid") == uid for r in d["metadata"].get("ownerReferences") or [])
            ]

        for kind, dep in dependents():
            with contextlib.suppress(ApiStatus):
                self.delete(kind, namespace, dep["metadata"]["name"], "Background")
        await self.wait_for(lambda: not dependents(), timeout=60)
        self.remove(resource, namespace, name)

    # -- HTTP ----------------------------------------------------------------------------
    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body: Any = None
        if request.can_read_body:
            raw = await request.read()
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = raw.decode(errors="replace")
        query = dict(request.query)
        record = Recorded(request.method, request.path, query, body)
        record.watch = _true(query.get("watch"))
        self.requests.append(record)
        self._changed.set()
        try:
            response = await self._route(request, query, body, record)
        except ApiStatus as status:
            response = web.json_response(status.body, status=status.body["code"])
        record.status = response.status
        return response

    async def _route(
        self, request: web.Request, query: dict[str, str], body: Any, record: Recorded
    ) -> web.StreamResponse:
        parts = [p for p in request.path.split("/") if p]
        if parts == ["version"]:
            return web.json_response(_VERSION)
        if parts == ["api"]:
            return web.json_response(self._api_versions(request))
        if parts == ["apis"]:
            return web.json_response(_GROUPS)
        if parts == ["api", "v1"]:
            return web.json_response(_resource_list("v1", ("pods", "secrets")))
        if parts == ["apis", "batch", "v1"]:
            return web.json_response(_resource_list("batch/v1", ("jobs",)))
        if parts == ["apis", "batch"]:
            return web.json_response(_GROUPS["groups"][0] | {"kind": "APIGroup"})
        if parts[:2] == ["api", "v1"]:
            group, rest = "", parts[2:]
        elif parts[:3] == ["apis", "batch", "v1"]:
            group, rest = "batch", parts[3:]
        else:
            raise ApiStatus(404, "NotFound", "the server could not find the requested resource")
        namespace: str | None = None
        if rest[:1] == ["namespaces"] and len(rest) >= 3:
            namespace, rest = rest[1], rest[2:]
        elif rest[:1] == ["namespaces"] and group == "":
            return web.json_response(_namespace(rest[1] if len(rest) > 1 else "default"))
        resource = rest[0]
        if resource not in KINDS or KINDS[resource].group != group:
            raise ApiStatus(404, "NotFound", "the server could not find the requested resource")
        self._authorize(request.method, record.watch, resource, rest, namespace)
        if len(rest) == 1:
            if request.method == "GET":
                if record.watch:
                    return await self._watch(request, resource, namespace, query)
                return web.json_response(self._list(resource, namespace, query))
            if request.method == "POST" and namespace is not None:
                if _strict(query) and resource == "jobs":
                    _check_fields(body or {})
                obj = self.create(resource, namespace, body or {})
                return web.json_response(obj, status=201)
            raise ApiStatus(405, "MethodNotAllowed", "method not allowed")
        if namespace is None:
            raise ApiStatus(404, "NotFound", "the server could not find the requested resource")
        name = rest[1]
        if len(rest) == 3 and resource == "pods" and rest[2] == "log":
            return self._log(namespace, name, query)
        if len(rest) != 2:
            raise ApiStatus(404, "NotFound", "the server could not find the requested resource")
        if request.method == "GET":
            obj = self.get(resource, namespace, name)
            if obj is None:
                raise ApiStatus(404, "NotFound", _not_found(resource, name), name=name)
            return web.json_response(obj)
        if request.method == "DELETE":
            options = body if isinstance(body, dict) else {}
            policy = options.get("propagationPolicy") or query.get("propagationPolicy")
            return web.json_response(self.delete(resource, namespace, name, policy))
        if request.method == "PATCH":
            obj = self.get(resource, namespace, name)
            if obj is None:
                raise ApiStatus(404, "NotFound", _not_found(resource, name), name=name)
            patched = merge_patch(obj, body)
            if resource == "jobs" and patched.get("spec") != obj.get("spec"):
                patched["metadata"]["generation"] = obj["metadata"].get("generation", 1) + 1
            return web.json_response(self.update(resource, patched))
        raise ApiStatus(405, "MethodNotAllowed", "method not allowed")

    def _authorize(
        self, method: str, watch: bool, resource: str, rest: list[str], namespace: str | None
    ) -> None:
        """RBAC, as far as tests need it: refuse the (verb, resource) pairs in `forbidden`."""
        if len(rest) == 1:
            verb = {"GET": "watch" if watch else "list", "POST": "create"}.get(method, "")
        else:
            verb = {"GET": "get", "DELETE": "delete", "PATCH": "patch"}.get(method, "")
            resource = "pods/log" if rest[2:] == ["log"] else resource
        if (verb, resource) in self.forbidden:
            group = KINDS[resource.split("/")[0]].group
            raise ApiStatus(
                403,
                "Forbidden",
                f'{resource} is forbidden: User "system:serviceaccount:default:fake" cannot '
                f'{verb} resource "{resource}" in API group "{group}" in the namespace '
                f'"{namespace}"',
            )

    def _api_versions(self, request: web.Request) -> dict[str, Any]:
        host = request.host
        return {
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": host}],
        }

    def _selector(self, query: dict[str, str]) -> Callable[[dict[str, Any]], bool]:
        labels = label_matcher(query.get("labelSelector", ""))
        fields = field_matcher(query.get("fieldSelector", ""))
        return lambda obj: labels(obj["metadata"].get("labels") or {}) and fields(obj["metadata"])

    def _list(self, resource: str, namespace: str | None, query: dict[str, str]) -> dict[str, Any]:
        kind = KINDS[resource]
        matches = self._selector(query)
        items = []
        for (ns, _), obj in sorted(self.objects[resource].items()):
            if namespace in (None, ns) and matches(obj):
                item = copy.deepcopy(obj)
                item.pop("apiVersion", None)  # list items carry no kind, as in the real API
                item.pop("kind", None)
                items.append(item)
        return {
            "kind": f"{kind.kind}List",
            "apiVersion": kind.api_version,
            "metadata": {"resourceVersion": str(self.revision)},
            "items": items,
        }

    async def _watch(
        self, request: web.Request, resource: str, namespace: str | None, query: dict[str, str]
    ) -> web.StreamResponse:
        if self.watch_outage:
            raise ApiStatus(503, "ServiceUnavailable", "the server is currently unable to serve")
        watch = _Watch(KINDS[resource], namespace, self._selector(query))
        version = query.get("resourceVersion", "")
        backlog: list[tuple[int, str, dict[str, Any]]] = []
        expired = False
        if version in ("", "0"):
            for _, obj in sorted(self.objects[resource].items()):
                if self._visible(watch, obj):
                    rv = int(obj["metadata"]["resourceVersion"])
                    backlog.append((rv, "ADDED", copy.deepcopy(obj)))
        elif int(version) < self.compacted:
            expired = True
        else:
            for rv, res, event, obj in self.history:
                if res == resource and rv > int(version) and self._visible(watch, obj):
                    backlog.append((rv, event, obj))
        if not expired:  # registered before any await, so no event can slip past
            self._watches[watch] = request
            for item in backlog:
                watch.queue.put_nowait(item)
        response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        try:
            await response.prepare(request)
            if expired:
                gone = status_body(
                    410, "Expired", f"too old resource version: {version} ({self.compacted})"
                )
                await response.write(_line({"type": "ERROR", "object": gone}))
            elif not await self._stream(request, response, watch, query):
                return response  # cut: no orderly end
            if _true(query.get("allowWatchBookmarks")) and not expired:
                kind = KINDS[watch.kind.resource]
                mark = {
                    "kind": kind.kind,
                    "apiVersion": kind.api_version,
                    "metadata": {"resourceVersion": str(self.revision)},
                }
                await response.write(_line({"type": "BOOKMARK", "object": mark}))
            await response.write_eof()
        except (ConnectionResetError, RuntimeError):
            pass  # the client went away
        finally:
            self._watches.pop(watch, None)
        return response

    async def _stream(
        self, request: web.Request, response: web.StreamResponse, watch: _Watch, query: Any
    ) -> bool:
        """Send events until timeoutSeconds (True) or until a test drops it (False)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(float(query.get("timeoutSeconds") or 1800)):
                while True:
                    item = await watch.queue.get()
                    if item is None:  # dropped by the test: cut the connection mid-stream
                        if request.transport is not None:
                            request.transport.abort()
                        return False
                    rv, event, obj = item
                    await response.write(_line({"type": event, "object": obj}))
                    watch.last_sent = rv
        return True

    def _log(self, namespace: str, name: str, query: dict[str, str]) -> web.Response:
        pod = self.get("pods", namespace, name)
        if pod is None:
            raise ApiStatus(404, "NotFound", _not_found("pods", name), name=name, kind="pods")
        containers = [c["name"] for c in pod["spec"]["containers"]]
        container = query.get("container") or containers[0]
        if container not in containers:
            raise ApiStatus(400, "BadRequest", f"container {container} is not valid for pod {name}")
        data = self.logs.get(pod["metadata"]["uid"])
        if data is None:
            raise ApiStatus(
                400,
                "BadRequest",
                f'container "{container}" in pod "{name}" is waiting to start: ContainerCreating',
            )
        text = bytes(data)
        if query.get("tailLines"):
            text = b"".join(text.splitlines(keepends=True)[-int(query["tailLines"]) :])
        return web.Response(body=text, content_type="text/plain")


# Field names of the objects clustrix sends, for fieldValidation=Strict (API reference v1.32).
_POD_SPEC_FIELDS = frozenset(
    [
        "activeDeadlineSeconds",
        "affinity",
        "automountServiceAccountToken",
        "containers",
        "dnsConfig",
        "dnsPolicy",
        "enableServiceLinks",
        "ephemeralContainers",
        "hostAliases",
        "hostIPC",
        "hostNetwork",
        "hostPID",
        "hostUsers",
        "hostname",
        "imagePullSecrets",
        "initContainers",
        "nodeName",
        "nodeSelector",
        "os",
        "overhead",
        "preemptionPolicy",
        "priority",
        "priorityClassName",
        "readinessGates",
        "resourceClaims",
        "resources",
        "restartPolicy",
        "runtimeClassName",
        "schedulerName",
        "schedulingGates",
        "securityContext",
        "serviceAccount",
        "serviceAccountName",
        "setHostnameAsFQDN",
        "shareProcessNamespace",
        "subdomain",
        "terminationGracePeriodSeconds",
        "tolerations",
        "topologySpreadConstraints",
        "volumes",
    ]
)
_CONTAINER_FIELDS = frozenset(
    [
        "args",
        "command",
        "env",
        "envFrom",
        "image",
        "imagePullPolicy",
        "lifecycle",
        "livenessProbe",
        "name",
        "ports",
        "readinessProbe",
        "resizePolicy",
        "resources",
        "restartPolicy",
        "securityContext",
        "startupProbe",
        "stdin",
        "stdinOnce",
        "terminationMessagePath",
        "terminationMessagePolicy",
        "tty",
        "volumeDevices",
        "volumeMounts",
        "workingDir",
    ]
)


def _strict(query: dict[str, str]) -> bool:
    return query.get("fieldValidation") == "Strict"


def _check_fields(job: dict[str, Any]) -> None:
    """fieldValidation=Strict: unknown fields of the pod template are a 400."""
    spec = job.get("spec", {}).get("template", {}).get("spec", {})
    unknown = [f"spec.template.spec.{k}" for k in spec if k not in _POD_SPEC_FIELDS]
    for i, container in enumerate(spec.get("containers", [])):
        unknown += [
            f"spec.template.spec.containers[{i}].{k}"
            for k in container
            if k not in _CONTAINER_FIELDS
        ]
    if unknown:
        fields = ", ".join(f'unknown field "{u}"' for u in unknown)
        raise ApiStatus(
            400,
            "BadRequest",
            f'Job in version "v1" cannot be handled as a Job: strict decoding error: {fields}',
        )


def _true(value: str | None) -> bool:
    """A boolean query parameter, as Go's strconv.ParseBool reads it."""
    return (value or "").lower() in ("1", "t", "true")


def _line(event: dict[str, Any]) -> bytes:
    return json.dumps(event).encode() + b"\n"


def _not_found(resource: str, name: str) -> str:
    group = f"{resource}.{KINDS[resource].group}" if KINDS[resource].group else resource
    return f'{group} "{name}" not found'


def _namespace(name: str) -> dict[str, Any]:
    return {
        "kind": "Namespace",
        "apiVersion": "v1",
        "metadata": {"name": name, "uid": str(uuid.uuid5(uuid.NAMESPACE_DNS, name))},
        "status": {"phase": "Active"},
    }


def _job_defaults(job: dict[str, Any]) -> None:
    """What the real API server fills in on a new batch/v1 Job."""
    meta, spec = job["metadata"], job.setdefault("spec", {})
    uid, name = meta["uid"], meta["name"]
    meta["generation"] = 1
    spec.setdefault("parallelism", 1)
    spec.setdefault("completions", 1)
    spec.setdefault("completionMode", "NonIndexed")
    spec.setdefault("suspend", False)
    spec.setdefault("manualSelector", None)
    spec.pop("manualSelector")
    if spec.get("backoffLimitPerIndex") is not None:
        spec.setdefault("backoffLimit", 2147483647)
    spec.setdefault("backoffLimit", 6)
    spec.setdefault("podReplacementPolicy", "TerminatingOrFailed")
    selector_labels = {"batch.kubernetes.io/controller-uid": uid}
    spec["selector"] = {"matchLabels": selector_labels}
    template = spec.setdefault("template", {})
    labels = template.setdefault("metadata", {}).setdefault("labels", {})
    labels.update(
        {
            "batch.kubernetes.io/controller-uid": uid,
            "batch.kubernetes.io/job-name": name,
            "controller-uid": uid,
            "job-name": name,
        }
    )
    labels = meta.setdefault("labels", {})
    for key, value in (("batch.kubernetes.io/job-name", name), ("job-name", name)):
        labels.setdefault(key, value)
    job["status"] = {}


def _resource_list(group_version: str, names: tuple[str, ...]) -> dict[str, Any]:
    resources = []
    for name in names:
        kind = KINDS[name]
        entry: dict[str, Any] = {
            "name": name,
            "singularName": kind.kind.lower(),
            "namespaced": True,
            "kind": kind.kind,
            "verbs": list(kind.verbs),
        }
        if kind.short:
            entry["shortNames"] = list(kind.short)
        if name in ("pods", "jobs"):
            entry["categories"] = ["all"]
        resources.append(entry)
        if name == "pods":
            resources.append(
                {
                    "name": "pods/log",
                    "singularName": "",
                    "namespaced": True,
                    "kind": "Pod",
                    "verbs": ["get"],
                }
            )
        if name == "jobs":
            resources.append(
                {
                    "name": "jobs/status",
                    "singularName": "",
                    "namespaced": True,
                    "kind": "Job",
                    "verbs": ["get", "patch", "update"],
                }
            )
    if group_version == "v1":
        resources.append(
            {
                "name": "namespaces",
                "singularName": "namespace",
                "namespaced": False,
                "kind": "Namespace",
                "verbs": ["get", "list"],
                "shortNames": ["ns"],
            }
        )
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": resources,
    }


_VERSION = {
    "major": "1",
    "minor": "32",
    "gitVersion": "v1.32.0-fake",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2025-01-01T00:00:00Z",
    "goVersion": "go1.23.0",
    "compiler": "gc",
    "platform": "linux/amd64",
}
_GROUPS = {
    "kind": "APIGroupList",
    "apiVersion": "v1",
    "groups": [
        {
            "name": "batch",
            "versions": [{"groupVersion": "batch/v1", "version": "v1"}],
            "preferredVersion": {"groupVersion": "batch/v1", "version": "v1"},
        }
    ],
}
