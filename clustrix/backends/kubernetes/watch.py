"""Following one kind of Kubernetes object: list, then watch, resumed and relisted."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, ParamSpec

import aiohttp

from ..._exceptions import ClusterConnectionError
from .api import REQUEST_TIMEOUT, ApiError, api_error

if TYPE_CHECKING:
    from .api import KubeApi

log = logging.getLogger("clustrix")
P = ParamSpec("P")

EventHandler = Callable[[str, dict[str, Any]], None]
RelistHandler = Callable[[list[dict[str, Any]], float], None]
ErrorHandler = Callable[[ApiError], None]

_WATCH_SECONDS = 240  # the server ends a watch after this; it is resumed at once
_BACKOFF = (0.05, 5.0)  # reconnect delay of a failed watch: first, largest


class _Expired(Exception):
    """The watch's resourceVersion is too old (410 Gone): relist."""


class ResourceWatch:
    """List, then watch one kind by label selector, for as long as it runs.

    After a disconnect it resumes from the last resourceVersion it saw; when the
    server says that version is gone (410, as an HTTP status or an ERROR event) it
    lists again, hands the fresh list to `on_relist` and watches from there. Events
    and lists are handed over synchronously, in order. A refusal (401/403: missing
    RBAC rights) goes to `on_refused`; the watch keeps retrying, slowly.
    """

    on_refused: ErrorHandler | None = None

    def __init__(
        self,
        api: KubeApi,
        kind: str,
        lister: Callable[..., Awaitable[Any]],
        namespace: str,
        selector: str,
        on_event: EventHandler,
        on_relist: RelistHandler,
    ) -> None:
        self.kind = kind
        self.resource_version: str | None = None
        self._api = api
        self._lister = lister
        self._namespace = namespace
        self._selector = selector
        self._on_event = guarded(on_event)
        self._on_relist = guarded(on_relist)

    async def run(self) -> None:
        delay = _BACKOFF[0]
        loop = asyncio.get_running_loop()
        while True:
            try:
                if self.resource_version is None:
                    started = loop.time()
                    call = self._lister(
                        self._namespace, label_selector=self._selector, **self._api._opts()
                    )
                    listing = await self._api._json(f"LIST {self.kind}", call)
                    self.resource_version = listing["metadata"]["resourceVersion"]
                    self._on_relist(listing.get("items") or [], started)
                if await self._stream():
                    delay = _BACKOFF[0]
                    continue
            except _Expired:
                log.info("watch of %s expired (410 Gone); listing again", self.kind)
                self.resource_version = None
                continue
            except ApiError as exc:
                log.warning("watch of %s refused (%s); retrying", self.kind, exc)
                if exc.status in (401, 403) and self.on_refused is not None:
                    guarded(self.on_refused)(exc)
                    delay = _BACKOFF[1]
            except (ClusterConnectionError, aiohttp.ClientError, OSError, ValueError) as exc:
                log.warning("watch of %s interrupted (%s); resuming", self.kind, exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, _BACKOFF[1])

    async def _stream(self) -> bool:
        """Follow one watch request; True if it ended cleanly after doing something."""
        call = self._lister(
            self._namespace,
            label_selector=self._selector,
            watch=True,
            resource_version=self.resource_version,
            allow_watch_bookmarks=True,
            timeout_seconds=_WATCH_SECONDS,
            _preload_content=False,
            _request_timeout=(REQUEST_TIMEOUT[0], _WATCH_SECONDS + 30),
        )
        response = await self._api._send(f"WATCH {self.kind}", call)
        events = 0
        try:
            if response.status == 410:
                raise _Expired
            if response.status != 200:
                raise api_error(response.status, await response.read(), f"WATCH {self.kind}")
            while True:
                line = await response.content.readline()
                if not line:
                    return events > 0
                if not line.strip():
                    continue
                event = json.loads(line)
                kind, obj = event.get("type"), event.get("object") or {}
                if kind == "ERROR":
                    if obj.get("code") == 410:
                        raise _Expired
                    raise ApiError(
                        int(obj.get("code") or 0),
                        str(obj.get("reason", "")),
                        str(obj.get("message", "")),
                        f"WATCH {self.kind}",
                    )
                events += 1
                if kind != "BOOKMARK":
                    self._on_event(kind, obj)
                version = (obj.get("metadata") or {}).get("resourceVersion")
                if version:
                    self.resource_version = version
        finally:
            response.close()


def guarded(handler: Callable[P, None]) -> Callable[P, None]:
    """A watch callback that logs its own failure instead of ending the watch."""

    def call(*args: P.args, **kwargs: P.kwargs) -> None:
        try:
            handler(*args, **kwargs)
        except Exception:
            log.exception("handling a Kubernetes watch event failed")

    return call
