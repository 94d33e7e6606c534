"""The test lab's description and a ClusterConfig for it (shared by the benchmarks)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from clustrix import ClusterConfig

LAB: dict[str, Any] = json.loads(Path("/var/lib/clustrix-lab/lab.json").read_text())


def lab_config(cluster_type: str, remote_work_dir: str, **fields: Any) -> ClusterConfig:
    """A config that logs into the lab as its user, with its key and known_hosts."""
    return ClusterConfig(
        cluster_type=cluster_type,
        cluster_host=LAB["host"],
        cluster_port=LAB["ports"][cluster_type],
        username=LAB["user"],
        key_file=LAB["key_file"],
        known_hosts=LAB["known_hosts"],
        remote_work_dir=remote_work_dir,
        **fields,
    )
