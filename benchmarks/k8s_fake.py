"""The tests' fake Kubernetes API server and node (tests/k8s) in a process of its own.

No real Kubernetes can run on the lab machine (../shared/LAB.md), so the memory
figure for the kubernetes backend is taken against this fake, which speaks the real
API over HTTP; run apart so that its memory is not counted as the client's.
``python -m benchmarks.k8s_fake DIR`` prints the kubeconfig's path once serving,
and stops when its stdin closes.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path


async def serve(root: Path) -> None:
    """Start the fake cluster under `root`; stop once stdin closes."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.k8s.conftest import start_fake, stop_fake

    kube = await start_fake(root)
    print(kube.kubeconfig, flush=True)
    try:
        await asyncio.to_thread(sys.stdin.read)
    finally:
        await stop_fake(kube)


if __name__ == "__main__":
    asyncio.run(serve(Path(sys.argv[1])))
