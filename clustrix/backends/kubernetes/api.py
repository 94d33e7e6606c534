"""The Kubernetes API as the kubernetes backend uses it: one ApiClient, raw JSON.

Every call goes through kubernetes-asyncio with ``_preload_content=False`` and the
JSON is read here, so the backend works on the API's own shapes (dicts) and every
failure is translated at this edge: network trouble becomes
`ClusterConnectionError`, an HTTP error `ApiError`. The client is built from a
kubeconfig (``kubeconfig``/``k8s_context``, else ``$KUBECONFIG`` or
``~/.kube/config``) or from the in-cluster service account, into its own
``Configuration`` - never the library's global default one.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
from kubernetes_asyncio import client as kclient
from kubernetes_asyncio import config as kconfig

from ..._config import ClusterConfig
from ..._exceptions import ClusterConnectionError, CommandError, ConfigError, SubmissionError
from ..._tasks import TaskSet

if TYPE_CHECKING:
    from .watch import ErrorHandler, EventHandler, RelistHandler, ResourceWatch

log = logging.getLogger("clustrix")
REQUEST_TIMEOUT = (30.0, 120.0)  # (connect, read) seconds of an ordinary request
_LOG_READS = 16  # pod logs read at once


class ApiError(Exception):
    """The API server answered with an error status (its `Status` message kept)."""

    def __init__(self, status: int, reason: str, message: str, request: str) -> None:
        super().__init__(f"{request}: HTTP {status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message
        self.request = request


def _kubeconfig_path(config: ClusterConfig) -> Path | None:
    if config.kubeconfig:
        path = Path(config.kubeconfig).expanduser()
        if not path.is_file():
            raise ConfigError(f"kubeconfig={config.kubeconfig!r}: no such file")
        return path
    if os.environ.get("KUBECONFIG"):
        return Path(os.environ["KUBECONFIG"])
    default = Path.home() / ".kube" / "config"
    return default if default.is_file() else None


class KubeApi:
    """One ApiClient and the few calls the backend makes, on raw JSON."""

    def __init__(self, api_client: Any, tasks: TaskSet) -> None:
        self._client = api_client
        self.host: str = api_client.configuration.host
        # Typed as Any: the backend passes and receives raw JSON, not the models.
        self.batch: Any = kclient.BatchV1Api(api_client)
        self.core: Any = kclient.CoreV1Api(api_client)
        self._tasks = tasks
        self._log_reads = asyncio.Semaphore(_LOG_READS)

    @classmethod
    async def connect(cls, config: ClusterConfig, tasks: TaskSet) -> KubeApi:
        """Build the client from the kubeconfig or the in-cluster service account."""
        configuration = kclient.Configuration()
        path = _kubeconfig_path(config)
        try:
            if path is not None:
                loader = await kconfig.load_kube_config(
                    config_file=str(path),
                    context=config.k8s_context,
                    client_configuration=configuration,
                    persist_config=False,
                )
                if loader.provider == "gcp" or "exec" in (loader._user or {}):
                    # Short-lived tokens (cloud plugins): refreshed by a task we own.
                    tasks.spawn(kconfig.refresh_token(loader, configuration), name="k8s-token")
            elif os.environ.get("KUBERNETES_SERVICE_HOST"):
                incluster: Any = kconfig.load_incluster_config
                incluster(client_configuration=configuration)
            else:
                raise ConfigError(
                    "cluster_type='kubernetes' needs a kubeconfig: set kubeconfig= (and "
                    "k8s_context=), or $KUBECONFIG, or ~/.kube/config, or run inside a pod"
                )
        except ConfigError:
            raise
        except Exception as exc:  # ConfigException, bad YAML, a missing context, ...
            where = f"kubeconfig {path}" if path else "the in-cluster configuration"
            raise ConfigError(f"{where} cannot be used: {exc}") from None
        return cls(kclient.ApiClient(configuration=configuration), tasks)

    async def aclose(self) -> None:
        await self._client.close()

    # -- requests ----------------------------------------------------------------------
    async def _json(self, what: str, call: Awaitable[Any]) -> dict[str, Any]:
        status, body = await self._body(what, call)
        if not 200 <= status < 300:
            raise api_error(status, body, what)
        data: dict[str, Any] = json.loads(body) if body else {}
        return data

    async def _body(self, what: str, call: Awaitable[Any]) -> tuple[int, bytes]:
        """The HTTP status and the whole body of a request's answer."""
        response = await self._send(what, call)
        try:
            return response.status, await response.read()
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise self._unreachable(exc) from None
        finally:
            response.release()

    async def _send(self, what: str, call: Awaitable[Any]) -> Any:
        try:
            return await call
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise self._unreachable(exc) from None

    def _unreachable(self, exc: BaseException) -> ClusterConnectionError:
        return ClusterConnectionError(
            f"cannot reach the Kubernetes API server at {self.host}: {exc or type(exc).__name__}",
            host=self.host,
            transient=True,
        )

    def _opts(self) -> dict[str, Any]:
        return {"_preload_content": False, "_request_timeout": REQUEST_TIMEOUT}

    async def create_job(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        # Strict: a misspelt field in `extra` is refused, not silently dropped.
        call = self.batch.create_namespaced_job(
            namespace, body, field_validation="Strict", **self._opts()
        )
        return await self._json(f"POST job {body['metadata']['name']}", call)

    async def resume_job(self, namespace: str, name: str) -> dict[str, Any]:
        call = self.batch.patch_namespaced_job(
            name,
            namespace,
            {"spec": {"suspend": False}},
            _content_type="application/merge-patch+json",
            **self._opts(),
        )
        return await self._json(f"PATCH job {name}", call)

    async def read_job(self, namespace: str, name: str) -> dict[str, Any] | None:
        call = self.batch.read_namespaced_job(name, namespace, **self._opts())
        try:
            return await self._json(f"GET job {name}", call)
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    async def delete_job(self, namespace: str, name: str) -> bool:
        """Delete with Background propagation (its pods and Secret go too); False if gone."""
        call = self.batch.delete_namespaced_job(
            name, namespace, body={"propagationPolicy": "Background"}, **self._opts()
        )
        return await self._delete(f"DELETE job {name}", call)

    async def delete_pod(self, namespace: str, name: str) -> bool:
        call = self.core.delete_namespaced_pod(name, namespace, **self._opts())
        return await self._delete(f"DELETE pod {name}", call)

    async def _delete(self, what: str, call: Awaitable[Any]) -> bool:
        try:
            await self._json(what, call)
        except ApiError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    async def create_secret(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        call = self.core.create_namespaced_secret(namespace, body, **self._opts())
        return await self._json(f"POST secret {body['metadata']['name']}", call)

    async def list_pods(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        call = self.core.list_namespaced_pod(namespace, label_selector=selector, **self._opts())
        items: list[dict[str, Any]] = (await self._json("LIST pods", call))["items"]
        return items

    async def pod_log(self, namespace: str, name: str, container: str) -> str | None:
        """The pod's log (stdout and stderr interleaved); None if the pod is gone."""
        call = self.core.read_namespaced_pod_log(
            name, namespace, container=container, **self._opts()
        )
        status, body = await self._body(f"GET log {name}", call)
        if status == 404:
            return None
        if not 200 <= status < 300:
            raise api_error(status, body, f"GET log {name}")
        text: str = body.decode(errors="replace")
        return text

    async def start_job(
        self,
        namespace: str,
        job: dict[str, Any],
        secret_for: Callable[[str], dict[str, Any]],
        abandon: Callable[[], object],
    ) -> None:
        """Create the Job suspended, then its Secret (``secret_for(uid)``), then release
        it; on any failure `abandon()`, delete the Job (its Secret goes with it), raise."""
        name = job["metadata"]["name"]
        try:
            created = await self.create_job(namespace, job)
            await self.create_secret(namespace, secret_for(created["metadata"]["uid"]))
            await self.resume_job(namespace, name)
        except BaseException as error:
            abandon()  # before the deletion: its events must not settle the jobs
            await finish_anyway(self.delete_quietly("Job", namespace, name))
            if isinstance(error, ApiError):
                raise submission_error(error, name, namespace) from None
            raise

    async def read_log(self, namespace: str, pod: str, container: str) -> str | None:
        """`pod_log`, retried on server and network errors; None if it cannot be read."""
        async with self._log_reads:
            for attempt in range(4):
                try:
                    return await self.pod_log(namespace, pod, container)
                except (ApiError, ClusterConnectionError) as exc:
                    log.warning("reading the log of pod %s failed: %s", pod, exc)
                    if isinstance(exc, ApiError) and exc.status < 500:
                        return None  # e.g. the container never started: nothing to retry
                    await asyncio.sleep(0.2 * 2**attempt)
        return None

    async def job_deleted(self, namespace: str, name: str) -> bool:
        """True if the Job is gone or being deleted (False if that cannot be read)."""
        try:
            owner = await self.read_job(namespace, name)
        except (ApiError, ClusterConnectionError) as exc:
            log.warning("could not read Kubernetes Job %s: %s", name, exc)
            return False
        return owner is None or bool(owner["metadata"].get("deletionTimestamp"))

    async def delete_quietly(self, kind: str, namespace: str, name: str) -> None:
        """Delete a Job or a pod; a failure is logged, not raised (cleanup)."""
        delete = self.delete_job if kind == "Job" else self.delete_pod
        try:
            await delete(namespace, name)
        except (ApiError, ClusterConnectionError) as exc:
            log.warning("could not delete Kubernetes %s %s: %s", kind, name, exc)

    def watcher(
        self,
        kind: str,
        namespace: str,
        selector: str,
        on_event: EventHandler,
        on_relist: RelistHandler,
        on_refused: ErrorHandler,
    ) -> ResourceWatch:
        from .watch import ResourceWatch  # it uses this module's errors

        lister = self.batch.list_namespaced_job if kind == "jobs" else self.core.list_namespaced_pod
        watch = ResourceWatch(self, kind, lister, namespace, selector, on_event, on_relist)
        watch.on_refused = on_refused
        return watch


def command_error(error: ApiError, message: str) -> CommandError:
    """`error` as the clustrix error of a failed API call (HTTP status as exit status)."""
    return CommandError(
        f"{message}: {error.message or error.reason}",
        argv=[error.request],
        exit_status=error.status,
        stderr=error.message,
    )


def submission_error(error: ApiError, name: str, namespace: str) -> SubmissionError:
    return SubmissionError(
        f"Kubernetes refused {name} in namespace {namespace!r}: {error.message or error.reason}",
        argv=[error.request],
        stderr=error.message,
    )


def refusal_error(error: ApiError, namespace: str, job: str) -> CommandError:
    """The error of a task whose status the API server refuses to show (RBAC)."""
    return command_error(
        error,
        f"Kubernetes refused to {error.request.lower()} in namespace {namespace!r} (clustrix "
        "needs get/list/watch on pods and jobs, get on pods/log, create/patch/delete on jobs "
        f"and create on secrets; the Job {job} may still run)",
    )


def api_error(status: int, body: bytes, what: str) -> ApiError:
    try:
        data = json.loads(body)
        return ApiError(status, str(data.get("reason", "")), str(data.get("message", "")), what)
    except ValueError:
        return ApiError(status, "", body.decode(errors="replace")[:500], what)


async def finish_anyway(work: Coroutine[Any, Any, None]) -> None:
    """Run cleanup to its end even if the caller is cancelled meanwhile (then re-raise)."""
    task = asyncio.ensure_future(work)
    cancelled = False
    while not task.done():
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            cancelled = True
    if cancelled:
        raise asyncio.CancelledError
