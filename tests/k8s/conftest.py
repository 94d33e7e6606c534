"""Fixtures of the Kubernetes tests: the FAKE API server + cluster, or a real cluster.

`kube` is parametrised over ``fake`` (always) and ``real`` (only when
``CLUSTRIX_TEST_KUBECONFIG`` names a kubeconfig; read at import time because the
suite's autouse fixture clears every ``CLUSTRIX_*`` variable). Tests that need the
fake's records or hooks use `fake_kube` (or skip when ``kube.fake`` is None).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from clustrix import ClusterConfig
from clustrix.backends.kubernetes.manifests import default_image

from .fake_apiserver import FakeApiServer
from .fake_kubelet import FakeCluster

REAL_KUBECONFIG = os.environ.get("CLUSTRIX_TEST_KUBECONFIG")
REAL_NAMESPACE = os.environ.get("CLUSTRIX_TEST_K8S_NAMESPACE", "default")

KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters:
- name: fake
  cluster:
    server: {url}
contexts:
- name: fake
  context:
    cluster: fake
    user: fake
    namespace: default
current-context: fake
users:
- name: fake
  user:
    token: fake-token
"""


@dataclass
class Kube:
    """Where the tests run: a kubeconfig, and the fake's server and cluster if fake."""

    kubeconfig: Path
    namespace: str
    scratch: Path
    server: FakeApiServer | None = None
    cluster: FakeCluster | None = None

    @property
    def fake(self) -> FakeApiServer | None:
        return self.server

    def config(self, **fields: Any) -> ClusterConfig:
        return ClusterConfig(
            cluster_type="kubernetes",
            kubeconfig=str(self.kubeconfig),
            k8s_namespace=self.namespace,
            **fields,
        )

    async def kubectl(self, *args: str) -> tuple[int, str, str]:
        """Run kubectl (found by `kubectl_path`) against this cluster."""
        process = await asyncio.create_subprocess_exec(
            kubectl_path(),
            f"--kubeconfig={self.kubeconfig}",
            f"--namespace={self.namespace}",
            f"--cache-dir={self.scratch / 'kube-cache'}",
            *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), 60)
        assert process.returncode is not None
        return process.returncode, out.decode(), err.decode()


def kubectl_path() -> str:
    """The kubectl binary; a clear failure in CI (CI=true) if none, else a skip."""
    found = shutil.which("kubectl")
    if found:
        return found
    message = (
        "kubectl is needed to check the fake API server against an independent client; "
        "install it (Debian: apt-get install kubernetes-client)"
    )
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


async def start_fake(root: Path) -> Kube:
    server = FakeApiServer()
    url = await server.start()
    images = {default_image(): [sys.executable, "-S"]}
    cluster = FakeCluster(server, root / "node", images=images)
    kubeconfig = root / "kubeconfig"
    kubeconfig.write_text(KUBECONFIG.format(url=url))
    return Kube(kubeconfig, "default", root, server, cluster)


async def stop_fake(kube: Kube) -> None:
    assert kube.cluster is not None and kube.server is not None
    await kube.cluster.aclose()
    await kube.server.stop()


@pytest.fixture
async def fake_kube(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Kube]:
    """A FAKE API server and cluster on 127.0.0.1 (see fake_apiserver.py)."""
    monkeypatch.setenv("CLUSTRIX_K8S_PENDING_GRACE_SECONDS", "1.5")
    kube = await start_fake(tmp_path)
    try:
        yield kube
    finally:
        await stop_fake(kube)


@pytest.fixture(params=["fake", "real"])
async def kube(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Kube]:
    """The fake cluster, and a real one if ``CLUSTRIX_TEST_KUBECONFIG`` is set."""
    if request.param == "real":
        if not REAL_KUBECONFIG:
            pytest.skip("set CLUSTRIX_TEST_KUBECONFIG to run against a real cluster")
        monkeypatch.setenv("CLUSTRIX_K8S_PENDING_GRACE_SECONDS", "60")
        yield Kube(Path(REAL_KUBECONFIG), REAL_NAMESPACE, tmp_path)
        return
    monkeypatch.setenv("CLUSTRIX_K8S_PENDING_GRACE_SECONDS", "1.5")
    fake = await start_fake(tmp_path)
    try:
        yield fake
    finally:
        await stop_fake(fake)
