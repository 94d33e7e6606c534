"""Run Python functions as Kubernetes Jobs: one call, then a sweep (one indexed Job).

Needs the Kubernetes extra (`pip install 'clustrix[kubernetes]'`) and a cluster you can
create Jobs, pods and Secrets in. Settings come from `./clustrix.yml` or the environment:

    # clustrix.yml
    cluster_type: kubernetes
    kubeconfig: ~/.kube/config     # empty: $KUBECONFIG, ~/.kube/config, or in-cluster
    k8s_namespace: default
    # k8s_image: python:3.11-slim  # any image with your Python's major.minor

    python examples/kubernetes_job.py            # or CLUSTRIX_CLUSTER_TYPE=kubernetes ...
    python examples/kubernetes_job.py --check    # print the settings, submit nothing

The image needs nothing but Python: clustrix ships the function and its runner.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys

from clustrix import Client, ClusterConfig, cluster


@cluster(cores=1, memory="256MB", time="00:05:00")
def describe(x: int) -> dict[str, object]:
    """x cubed, and the pod and Python that computed it."""
    return {
        "x": x,
        "cube": x**3,
        "pod": os.environ.get("HOSTNAME"),
        "python": platform.python_version(),
    }


async def main(config: ClusterConfig) -> None:
    async with Client(config):  # one API client and one watcher for everything below
        one = await describe(3)  # a Job with one pod
        print(f"one call: 3**3 = {one['cube']} on pod {one['pod']} (Python {one['python']})")
        sweep = describe.map(range(1, 6), progress=False)  # one indexed Job, 5 pods
        cubes = [result["cube"] for result in await sweep]
        print(f"sweep: {cubes} (states: {sweep.counts()})")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="print the settings and exit")
    args = parser.parse_args()
    config = ClusterConfig()  # ./clustrix.yml and CLUSTRIX_* variables
    print(
        f"cluster_type={config.cluster_type} namespace={config.k8s_namespace} "
        f"kubeconfig={config.kubeconfig or '(default)'} image={config.k8s_image or '(default)'}"
    )
    if config.cluster_type != "kubernetes":
        sys.exit("set cluster_type: kubernetes in clustrix.yml (or CLUSTRIX_CLUSTER_TYPE)")
    if not args.check:
        asyncio.run(main(config))
