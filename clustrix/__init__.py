"""clustrix: run ordinary Python functions on SLURM, PBS, SGE, Kubernetes or SSH hosts.

from clustrix import cluster

@cluster(cores=2, memory="4GB", time="00:10:00")
def simulate(x: float) -> float: ...

result = await simulate(1.5)              # a Job is awaitable
results = await simulate.map(range(500))  # one array job for the sweep
"""

from ._attach import attach
from ._client import Client
from ._config import ClusterConfig, configure, get_config, load_config, reset_config
from ._decorator import RemoteFunction, cluster
from ._exceptions import (
    AttachError,
    AuthenticationError,
    ClusterConnectionError,
    ClusterMismatchError,
    ClustrixError,
    CommandError,
    ConfigError,
    EnvironmentMismatchError,
    HostKeyError,
    JobCancelledError,
    JobError,
    JobFailedError,
    JobLostError,
    JobOutOfMemoryError,
    JobTimeoutError,
    NodeFailureError,
    RemoteError,
    ResultIntegrityError,
    SerializationError,
    SubmissionError,
    UnknownKeyError,
    UsageError,
)
from ._job import Cancellation, Job
from ._loops import ExplainReport, LoopReport, explain
from ._record_types import JobRecord, SubmissionRecord, SweepRecord
from ._states import JobState
from ._sweep import Sweep
from ._version import __version__
from ._view import ClientView
from .fs import (
    DiskUsage,
    FileInfo,
    cluster_count_files,
    cluster_du,
    cluster_exists,
    cluster_find,
    cluster_glob,
    cluster_isdir,
    cluster_isfile,
    cluster_ls,
    cluster_stat,
)

__all__ = [
    "AttachError",
    "AuthenticationError",
    "Cancellation",
    "Client",
    "ClientView",
    "ClusterConfig",
    "ClusterConnectionError",
    "ClusterMismatchError",
    "ClustrixError",
    "CommandError",
    "ConfigError",
    "DiskUsage",
    "EnvironmentMismatchError",
    "ExplainReport",
    "FileInfo",
    "HostKeyError",
    "Job",
    "JobCancelledError",
    "JobError",
    "JobFailedError",
    "JobLostError",
    "JobOutOfMemoryError",
    "JobRecord",
    "JobState",
    "JobTimeoutError",
    "LoopReport",
    "NodeFailureError",
    "RemoteError",
    "RemoteFunction",
    "ResultIntegrityError",
    "SerializationError",
    "SubmissionError",
    "SubmissionRecord",
    "Sweep",
    "SweepRecord",
    "UnknownKeyError",
    "UsageError",
    "__version__",
    "attach",
    "cluster",
    "cluster_count_files",
    "cluster_du",
    "cluster_exists",
    "cluster_find",
    "cluster_glob",
    "cluster_isdir",
    "cluster_isfile",
    "cluster_ls",
    "cluster_stat",
    "configure",
    "explain",
    "get_config",
    "load_config",
    "reset_config",
]

# Public names show as ``clustrix.X`` in reprs and tracebacks, as httpx does. Pickles
# of them (a clustrix error raised inside a task) name ``clustrix.X`` too, which loads
# wherever clustrix is importable.
for _name in __all__:
    if not _name.startswith("__"):
        globals()[_name].__module__ = __name__
del _name
