"""The scheduler argv against the real lab schedulers (the ``lab`` fixture; marker ``lab``).

Each test renders a real job script, submits it with ``submit_argv``, follows it with
``status_argv``/``accounting_argv``, cancels one element with ``cancel_argv`` and finds
the job again with ``lookup_argv``, all over ssh as the lab user. The runner is a
stand-in that exits with a per-element status (element 1 exits 3, the last sleeps
until it is cancelled). Skipped when the lab is not up (a failure in CI).
"""

from __future__ import annotations

import shlex
import subprocess
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from clustrix._states import JobState
from clustrix.schedulers import (
    ArraySpec,
    BatchResources,
    Scheduler,
    ScriptContext,
    TaskStatus,
    get_scheduler,
    pbs,
    render_script,
)

pytestmark = pytest.mark.lab

# Like the real runner: records exit 0 itself (the job script records other statuses).
RUNNER = """import os, sys, time
element = int(sys.argv[4])
if element == int(os.environ.get("CLX_LAST", "-1")):
    time.sleep(600)
if element == 1:
    sys.exit(3)
os.makedirs(os.path.join(sys.argv[2], "elements"), exist_ok=True)
with open(os.path.join(sys.argv[2], "elements", "%d.exit" % element), "w") as f:
    f.write("0\\n")
"""


class Remote:
    def __init__(self, lab: dict[str, Any], port: int) -> None:
        options = ["IdentitiesOnly=yes", "BatchMode=yes", "StrictHostKeyChecking=yes",
                   f"UserKnownHostsFile={lab['known_hosts']}"]  # fmt: skip
        self.base = ["ssh", "-p", str(port), "-i", str(lab["key_file"])]
        self.base += [arg for option in options for arg in ("-o", option)]
        self.base.append(f"{lab['user']}@{lab['host']}")
        probe = self.run(["true"])
        assert probe.returncode == 0, f"lab ssh on port {port} fails: {probe.stderr.strip()}"

    def run(self, argv: list[str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self.base, shlex.join(argv)], input=stdin, capture_output=True, text=True, timeout=120
        )


def wait_for(what: str, check: Callable[[], bool], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def state_of(remote: Remote, sched: Scheduler, job_id: str) -> JobState:
    return status(remote, sched, [job_id]).get(job_id, TaskStatus(JobState.PENDING)).state


def status(remote: Remote, sched: Scheduler, ids: list[str]) -> dict[str, TaskStatus]:
    done = remote.run(sched.status_argv(ids))
    assert done.returncode == 0 or sched.status_error_is_benign(done.returncode, done.stderr), (
        done.stderr
    )
    return sched.parse_status(done.stdout)


def submit(
    lab: dict[str, Any], remote: Remote, sched: Scheduler, res: BatchResources, last: int
) -> tuple[str, str]:
    home = f"/home/{lab['user']}/.clustrix-sched-tests/{res.job_name}"
    ctx = ScriptContext(
        run_dir=f"{home}/run",
        python=str(lab.get("remote_python", "python3")),
        runner=f"{home}/runner.py",
        environment_variables={"CLX_LAST": str(last)},
    )
    assert remote.run(["mkdir", "-p", f"{home}/run", f"{home}/logs"]).returncode == 0
    assert remote.run(["sh", "-c", 'cat > "$1"', "sh", f"{home}/runner.py"], RUNNER).returncode == 0
    script = render_script(sched, res, ctx)
    assert remote.run(["sh", "-c", 'cat > "$1"', "sh", f"{home}/job.sh"], script).returncode == 0
    done = remote.run(sched.submit_argv(f"{home}/job.sh", res))
    assert done.returncode == 0, done.stderr
    return sched.parse_submit(done.stdout), f"{home}/run"


def exit_files(remote: Remote, run_dir: str) -> dict[str, str]:
    done = remote.run(
        ["sh", "-c", 'cd "$1/elements" 2>/dev/null && grep -H . *.exit', "sh", run_dir]
    )
    return {line.split(".exit:")[0]: line.split(":", 1)[1] for line in done.stdout.split()}


def name() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.mark.parametrize("scheduler", ["slurm", "sge"])
def test_array_lifecycle(lab: dict[str, Any], scheduler: str) -> None:
    remote = Remote(lab, int(lab["ports"][scheduler]))
    sched = get_scheduler(scheduler)
    home = f"/home/{lab['user']}/.clustrix-sched-tests"
    job = name()
    res = BatchResources(job, f"{home}/{job}/logs", array=ArraySpec(3, 2))
    master, run_dir = submit(lab, remote, sched, res, last=2)
    ids = [sched.element_job_id(master, e, res) for e in range(3)]
    assert sched.parse_lookup(remote.run(sched.lookup_argv(job)).stdout) == [master]

    wait_for("element 2 to run", lambda: state_of(remote, sched, ids[2]) is JobState.RUNNING)
    assert remote.run(sched.cancel_argv([ids[2]])).returncode == 0
    wait_for("every element to leave", lambda: not {
        i for i, s in status(remote, sched, ids).items() if i in ids and not s.state.final
    })  # fmt: skip

    accounting = sched.accounting_argv(ids)
    assert accounting is not None
    outcome: dict[str, TaskStatus] = {}

    def settled() -> bool:
        outcome.update(sched.parse_accounting(remote.run(accounting).stdout))
        return all(i in outcome and outcome[i].state.final for i in ids)

    wait_for("accounting records", settled)
    assert [outcome[i].state for i in ids] == [
        JobState.COMPLETED,
        JobState.FAILED,
        JobState.CANCELLED,
    ]
    assert outcome[ids[1]].exit_code == 3
    assert exit_files(remote, run_dir) == {"0": "0", "1": "3"}
    out, _ = sched.log_paths(res, master, 1)
    assert remote.run(["test", "-f", out]).returncode == 0

    # a purged id next to known ones, and alone, is not an error (status() checks rc)
    assert "999999" not in status(remote, sched, [ids[0], "999999"])
    assert "999999" not in status(remote, sched, ["999999"])
    remote.run(["rm", "-rf", f"{home}/{job}"])


def test_pbs_wrappers_lifecycle(lab: dict[str, Any]) -> None:
    remote = Remote(lab, int(lab["ports"]["pbs"]))
    assert pbs.parse_probe(remote.run(pbs.probe_argv()).stdout) == "slurm-wrappers"
    sched = get_scheduler("pbs", "torque")
    home = f"/home/{lab['user']}/.clustrix-sched-tests"
    job = name()
    res = BatchResources(job, f"{home}/{job}/logs", cores=2, memory=256 * 1024**2, time=600)
    # two single jobs: element 0 (exits 0) and, with element_offset 2, element 2 (sleeps)
    first, run_dir = submit(lab, remote, sched, res, last=2)
    second_res = BatchResources(f"{job}b", res.log_dir, cores=1)
    script_ctx_offset = ScriptContext(
        run_dir=run_dir, python=str(lab.get("remote_python", "python3")),
        runner=f"{home}/{job}/runner.py", element_offset=2,
        environment_variables={"CLX_LAST": "2"},
    )  # fmt: skip
    script = render_script(sched, second_res, script_ctx_offset)
    remote.run(["sh", "-c", 'cat > "$1"', "sh", f"{home}/{job}/job2.sh"], script)
    second = sched.parse_submit(
        remote.run(sched.submit_argv(f"{home}/{job}/job2.sh", second_res)).stdout
    )
    assert sched.parse_lookup(remote.run(sched.lookup_argv(job)).stdout) == [first]

    wait_for("the second job to run", lambda: state_of(remote, sched, second) is JobState.RUNNING)
    assert remote.run(sched.cancel_argv([second])).returncode == 0
    wait_for(
        "both to end",
        lambda: all(s.raw == "C" for s in status(remote, sched, [first, second]).values()),
    )
    assert sched.accounting_argv([first]) is None
    # the wrappers say C for both; the exit-code files tell them apart
    assert exit_files(remote, run_dir) == {"0": "0"}
    assert set(status(remote, sched, [first, "999999"])) == {first}
    done = remote.run(sched.status_argv(["999999"]))
    assert done.returncode == 153 and sched.status_error_is_benign(done.returncode, done.stderr)
    remote.run(["rm", "-rf", f"{home}/{job}"])
