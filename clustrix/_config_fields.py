"""What each `ClusterConfig` field means: the description of its pydantic field.

Kept apart from the declarations so `_config.py` stays short; `_config.py` puts them on
``ClusterConfig.model_fields``. The configuration reference of the documentation is
generated from them (docs/hooks/config_reference.py): a field without a description
fails the documentation build and tests/docs/test_docs.py.
"""

from __future__ import annotations

FIELD_DESCRIPTIONS: dict[str, str] = {
    "cluster_type": (
        "Which backend runs the jobs: `local` (worker processes on this machine), `ssh` "
        "(detached processes on one host), `slurm`, `pbs`, `sge` (batch schedulers, reached "
        "over SSH) or `kubernetes` (an API server)."
    ),
    "cluster_host": (
        "The login node or SSH host; an alias from `~/.ssh/config` works. Empty with a "
        "scheduler type: run the scheduler's commands on this machine (clustrix runs on the "
        "login node itself)."
    ),
    "cluster_port": (
        "SSH port of `cluster_host`; left at 22, a `Port` from `~/.ssh/config` applies."
    ),
    "username": "SSH user name; empty: the `User` from `~/.ssh/config`, else your local user name.",
    "profile": (
        "Name of a profile (`profiles: {name: {...}}`) in the config files to apply on top of "
        "their top-level fields."
    ),
    "config_file": (
        "Read this one config file instead of searching `./clustrix.yml`, "
        "`~/.clustrix/config.yml` and `/etc/clustrix/config.yml`; it must exist."
    ),
    "key_file": (
        "Private key to log in with; empty: the ssh-agent, `IdentityFile` from `~/.ssh/config` "
        "and the default keys, as OpenSSH tries them."
    ),
    "password": (
        "SSH password (prefer keys). A secret: never logged, shown or written to the cluster."
    ),
    "known_hosts": (
        "known_hosts file that host keys are checked against; empty: `~/.ssh/known_hosts`."
    ),
    "accept_new_host_keys": (
        "Trust an unknown host key on first use and append it to `known_hosts` (a changed key "
        "is still refused)."
    ),
    "proxy_jump": (
        "Jump host(s) to reach `cluster_host` through, as OpenSSH's `ProxyJump` "
        "(`user@bastion:port`); a `ProxyJump` in `~/.ssh/config` works without it."
    ),
    "connect_timeout": "Seconds to wait for the SSH connection and login.",
    "max_channels": (
        "Most SSH channels (commands, SFTP sessions) open at once on one connection; keep it "
        "below the server's `MaxSessions` (OpenSSH's default is 10)."
    ),
    "remote_work_dir": (
        "Directory on the cluster for run directories, caches and built environments (created "
        "mode 0700). Must be visible to the compute nodes; `~` is the remote home."
    ),
    "python_executable": (
        "Python on the cluster (a command on PATH or a path); its major.minor must equal yours."
        " The Kubernetes image's Python command."
    ),
    "environment": (
        "Remote environment: `inherit` (run `python_executable` as it is), `replicate` (a venv "
        "with your versions of what the function needs), `conda:<name>` or a bare name, "
        "`venv:<path>` or a bare path."
    ),
    "replicate_scope": (
        "With `environment: replicate`: pin the distributions the payload imports (`payload`) "
        "or everything installed here (`all`, like `pip freeze`)."
    ),
    "replicate_offline": (
        "With `environment: replicate`: download every wheel here and install them on the "
        "cluster with `--no-index` (clusters without internet access)."
    ),
    "conda_env_name": (
        "Conda environment to activate in job scripts (the seed's setting; same as "
        "`environment: conda:<name>`)."
    ),
    "module_loads": (
        "Environment modules to `module load` in every job script, in order (e.g. `[python/3.11]`)."
    ),
    "environment_variables": "Variables exported in every job (and set in Kubernetes containers).",
    "pre_execution_commands": (
        "Your own shell commands, run as written at the start of every job script (not on "
        "Kubernetes; on the `ssh` backend once per submission, before its elements start)."
    ),
    "default_cores": "CPUs per task when `@cluster` does not give `cores`.",
    "default_memory": (
        'Memory per task when `@cluster` does not give `memory` ("4GB", "512M"; powers of '
        "1024); empty: the scheduler's default."
    ),
    "default_time": (
        'Walltime per task when `@cluster` does not give `time` ("HH:MM:SS", "D-HH:MM:SS", '
        '"MM:SS"); empty: the scheduler\'s default.'
    ),
    "default_partition": (
        "Slurm partition (PBS/SGE queue) when `@cluster` gives neither `partition` nor `queue`;"
        " a synonym of `default_queue`."
    ),
    "default_queue": (
        "PBS/SGE queue (Slurm partition); a synonym of `default_partition`, which wins if both "
        "are set."
    ),
    "default_account": (
        "Account/project charged for jobs when `@cluster` does not give `account` (Slurm "
        "`--account`, PBS `-A`, SGE `-A`)."
    ),
    "job_poll_interval": (
        "The slowest interval, in seconds, at which the scheduler is asked about live jobs; "
        "young jobs are polled faster, and results that appear are noticed at once."
    ),
    "result_wait": (
        "Wait for results on the login node: one long-running agent per connection reports "
        "each result as soon as its file is written (inotify where the filesystem allows, a "
        "25 ms stat loop on network filesystems such as NFS), before the scheduler's epilog "
        "and accounting end (it keeps one of the `max_channels` busy; off with "
        "`max_channels=1`). False: results come with the poll ticks."
    ),
    "max_parallel_jobs": (
        "Default `max_concurrent` of sweeps: at most this many tasks of one sweep run at once "
        "(the array throttle, `%K` on Slurm)."
    ),
    "cleanup_remote_files": (
        "Delete a run directory (Kubernetes: the Job) once every result of it was collected; "
        "`cleanup_on_success` is accepted as an alias."
    ),
    "max_payload_size": (
        "Largest pickled function plus arguments a submission may upload; larger is a "
        "`SerializationError` before anything is sent."
    ),
    "batch_window": (
        "Micro-batching: single calls of the same function with the same resources that "
        "arrive while another is being submitted go together as ONE array submission (each "
        "keeps its own Job, job id, cancel and error) as soon as that submission is accepted, "
        "or once no call joined them for this many seconds. A call alone is submitted at once. "
        "`0` turns batching off (one submission per call). Slurm, SGE, PBS Pro and `ssh` only."
    ),
    "batch_max": "Most single calls in one micro-batch (see `batch_window`).",
    "auto_parallel": (
        "With `parallel=None` (the default), run the `for` loops that `explain()` proves "
        "independent across the job's cores when it has more than one; False: never."
    ),
    "records_path": (
        "SQLite file where submissions are recorded on this machine; empty: "
        "`~/.clustrix/records.db`."
    ),
    "records_retention_days": "Days to keep records of finished submissions.",
    "pbs_dialect": (
        "PBS flavour: `pro` (PBS Pro/OpenPBS, `-J` arrays), `torque` (Torque and compatible "
        "wrappers, `-t` arrays) or `auto` (asked from the cluster)."
    ),
    "sge_pe": (
        "Grid Engine parallel environment requested (`-pe NAME cores`) for tasks with more than"
        " one core."
    ),
    "max_array_size": (
        "Most elements in one array job; larger sweeps are split. Empty: asked from the "
        "scheduler where it can be (Slurm's `MaxArraySize`)."
    ),
    "k8s_namespace": "Namespace for Jobs, pods and Secrets.",
    "k8s_image": (
        "Container image; it needs only a Python of your major.minor. Empty: `python:<local "
        "major.minor>-slim`."
    ),
    "k8s_context": "kubeconfig context to use; empty: its current context.",
    "kubeconfig": (
        "kubeconfig file; empty: `$KUBECONFIG`, `~/.kube/config`, or the in-cluster service "
        "account."
    ),
    "k8s_service_account": "`serviceAccountName` of the pods.",
    "k8s_image_pull_secrets": "Names of Secrets for pulling private images.",
    "k8s_job_ttl_seconds": (
        "`ttlSecondsAfterFinished` of every Job; long enough for the client to read the pod logs."
    ),
    "k8s_pending_grace_seconds": (
        "How long a pod may fail to start for a reason that will not fix itself (image pull, "
        "bad container config) before its tasks fail."
    ),
}
