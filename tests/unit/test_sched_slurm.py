"""Slurm argv builders and parsers, on output recorded from Slurm 22.05.

``lab_*.txt`` files are LAB.md's "Output samples" verbatim; the other files in
``tests/data/slurm`` were recorded on the lab with exactly the argv these functions
build (see test_sched_lab.py for the live checks).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from clustrix._exceptions import ConfigError, SubmissionError
from clustrix._states import JobState
from clustrix.schedulers import ArraySpec, BatchResources, TaskStatus
from clustrix.schedulers.slurm import SLURM as slurm
from clustrix.schedulers.slurm import wait_status_exit_code

DATA = Path(__file__).parent.parent / "data" / "slurm"


def read(name: str) -> str:
    return (DATA / name).read_text()


def res(**kw: object) -> BatchResources:
    base: dict[str, object] = {"job_name": "clx-a1", "log_dir": "/home/u/.clustrix/logs"}
    base.update(kw)
    return BatchResources(**base)  # type: ignore[arg-type]


# -- submit --------------------------------------------------------------------------


def test_parse_submit_lab_samples() -> None:
    assert slurm.parse_submit(read("lab_sbatch_parsable.txt")) == "6"
    assert slurm.parse_submit(read("lab_sbatch_parsable_array.txt")) == "7"
    assert slurm.parse_submit("4242;clusterb\n") == "4242"


def test_parse_submit_refuses_garbage() -> None:
    with pytest.raises(SubmissionError, match="no job id"):
        slurm.parse_submit("sbatch: error: Batch job submission failed\n")


def test_submit_argv_is_parsable_sbatch_with_the_logs() -> None:
    assert slurm.submit_argv("/r/job.sh", res()) == [
        "sbatch", "--parsable",
        "--output=/home/u/.clustrix/logs/clx-a1.%j.out",
        "--error=/home/u/.clustrix/logs/clx-a1.%j.err",
        "/r/job.sh",
    ]  # fmt: skip


# -- directives -----------------------------------------------------------------------


def test_directives_full() -> None:
    lines = slurm.directives(
        res(
            cores=4,
            memory=3 * 1024**3 // 2,
            time=90061,
            gpus=2,
            nodes=1,
            queue="gpu",
            account="lab",
            array=ArraySpec(10, 3),
            hold=True,
            extra={
                "qos": "debug",
                "exclusive": True,
                "C": "a100&nvlink",
                "no-requeue": None,
                "x": False,
            },
        )
    )
    assert lines == [
        "#SBATCH --job-name=clx-a1",
        "#SBATCH --nodes=1",
        "#SBATCH --cpus-per-task=4",
        "#SBATCH --mem=1536M",
        "#SBATCH --time=1-01:01:01",
        "#SBATCH --gpus=2",
        "#SBATCH --partition=gpu",
        "#SBATCH --account=lab",
        "#SBATCH --array=0-9%3",
        "#SBATCH --hold",
        "#SBATCH --qos=debug",
        "#SBATCH --exclusive",
        "#SBATCH -C a100&nvlink",
        "#SBATCH --no-requeue",
    ]


def test_single_job_uses_job_id_in_logs() -> None:
    assert "--output=/home/u/.clustrix/logs/clx-a1.%j.out" in slurm.submit_argv("/j", res())
    lines = slurm.directives(res())
    assert not any("--array" in line or "--mem" in line or "logs" in line for line in lines)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"job_name": "bad name"}, "job name"),
        ({"job_name": "a" * 16}, "job name"),
        ({"log_dir": "relative/logs"}, "absolute"),
        ({"log_dir": "/home/my\\logs"}, "backslash"),
        ({"queue": "gpu\n#SBATCH --uid=0"}, "queue"),
        ({"account": "a;rm -rf ~"}, "account"),
        ({"extra": {"qos": "high prio"}}, "qos"),
        ({"extra": {"comment": "$(id)"}}, "comment"),
        ({"extra": {"bad key": "1"}}, "extra option name"),
        ({"extra": {"--": "1"}}, "extra option name"),
        ({"cores": 0}, "cores"),
        ({"memory": -1}, "memory"),
        ({"time": 0}, "time"),
        ({"nodes": True}, "nodes"),
    ],
)
def test_directives_refuse_impossible_values(change: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        slurm.directives(res(**change))


def test_array_spec_validation() -> None:
    with pytest.raises(ConfigError):
        ArraySpec(0)
    with pytest.raises(ConfigError):
        ArraySpec(5, 0)


# -- ids and log paths ----------------------------------------------------------------


def test_element_job_id() -> None:
    assert slurm.element_job_id("12345", 7, res(array=ArraySpec(10))) == "12345_7"
    assert slurm.element_job_id("12345", 0, res()) == "12345"
    with pytest.raises(ConfigError):
        slurm.element_job_id("12345", 10, res(array=ArraySpec(10)))


def test_log_paths_follow_the_directive_patterns() -> None:
    arr = res(array=ArraySpec(4))
    out_pattern = slurm.submit_argv("/j", arr)[2].split("=", 1)[1]
    out, err = slurm.log_paths(arr, "25", 3)
    assert out == out_pattern.replace("%A", "25").replace("%a", "3")
    assert err == out.replace(".out", ".err")
    assert slurm.log_paths(res(), "18", 0) == (
        "/home/u/.clustrix/logs/clx-a1.18.out",
        "/home/u/.clustrix/logs/clx-a1.18.err",
    )


# -- status ---------------------------------------------------------------------------


def test_status_argv_one_squeue_for_everything() -> None:
    argv = slurm.status_argv(["25_3", "18", "25", "18"])
    assert argv == [
        "squeue",
        "--noheader",
        "--array",
        "--states=all",
        "--jobs=18,25,25_3",
        "--Format=JobArrayID:|,State:|,Reason:|,exit_code:",
    ]


def test_parse_status_recorded_mix_of_states() -> None:
    # squeue for 18..25 plus a purged id 999999 (rc 0: unknown ids are just left out)
    status = slurm.parse_status(read("squeue_status_mixed.txt"))
    assert status["18"] == TaskStatus(JobState.COMPLETED, raw="COMPLETED")
    assert status["19"].state is JobState.FAILED
    assert status["19"].reason == "NonZeroExitCode"
    assert status["24"] == TaskStatus(JobState.QUEUED, "PartitionNodeLimit", raw="PENDING")
    assert status["25_4"].state is JobState.RUNNING
    assert status["25_99"].reason == "JobArrayTaskLimit"
    assert all(f"25_{i}" in status for i in range(100))
    assert "999999" not in status and "25" not in status


def test_parse_status_recorded_later() -> None:
    status = slurm.parse_status(read("squeue_status_later.txt"))
    assert status["21"] == TaskStatus(JobState.TIMEOUT, "TimeLimit", raw="TIMEOUT")
    assert status["22"].state is JobState.CANCELLED
    assert status["20"].reason == "JobLaunchFailure"
    assert status["23"].reason == "JobHeldUser"


def test_parse_status_expands_collapsed_pending_range() -> None:
    status = slurm.parse_status(read("squeue_collapsed.txt"))
    pending = {k for k, v in status.items() if v.state is JobState.QUEUED and k.startswith("25_")}
    assert pending == {f"25_{i}" for i in range(93, 100)}
    assert status["25_90"].state is JobState.COMPLETED


@pytest.mark.parametrize(
    "text",
    [
        "7_[3-5]|PENDING|Priority\n7_3|RUNNING|None\n",
        "7_3|RUNNING|None\n7_[3-5]|PENDING|Priority\n",
    ],
)
def test_an_element_listed_alone_beats_a_range(text: str) -> None:
    status = slurm.parse_status(text)
    assert status["7_3"].state is JobState.RUNNING
    assert status["7_4"].state is JobState.QUEUED


def test_parse_status_expands_lists_and_ignores_noise() -> None:
    status = slurm.parse_status("8_[1,4-5]|PENDING|Dependency\n\nnot a line\n")
    assert sorted(status) == ["8_1", "8_4", "8_5"]


def test_parse_status_recorded_exit_codes_and_a_dropped_element() -> None:
    """squeue's exit_code is the raw wait status: exact, unlike sacct's (recorded on the
    lab: 1728 did os._exit(3), 1729 killed itself with SIGKILL inside the batch script,
    701 ran `exit 200`, 702's batch shell was SIGKILLed; 1730_5 was scancelled while
    pending and 1731, held, was scancelled)."""
    status = slurm.parse_status(read("squeue_exit_and_dropped.txt"))
    assert status["1728"] == TaskStatus(JobState.FAILED, "NonZeroExitCode", 3, raw="FAILED")
    assert status["1729"].exit_code == 137
    assert status["701"].exit_code == 200
    assert status["702"] == TaskStatus(JobState.FAILED, "JobLaunchFailure", 137, raw="FAILED")
    assert status["1731"] == TaskStatus(JobState.CANCELLED, exit_code=0, raw="CANCELLED")
    assert status["1730_0"] == TaskStatus(JobState.RUNNING, raw="RUNNING")  # no exit code yet
    assert {k for k in status if k.startswith("1730_")} == {f"1730_{i}" for i in range(5)}


@pytest.mark.parametrize(
    ("text", "code"),
    [("0", 0), ("768", 3), ("35072", 137), ("51200", 200), ("9", 137), ("15", 143), ("", None)],
)
def test_wait_status_exit_code(text: str, code: int | None) -> None:
    assert wait_status_exit_code(text) == code


def test_the_last_pending_element_cancelled_is_the_array_record() -> None:
    """Recorded: scancel of 469_28, the only element still pending, cancels the array's
    own record: squeue lists it under the bare id, sacct as 469_[28]."""
    assert slurm.parse_status(read("squeue_last_pending_cancelled.txt")) == {
        "469": TaskStatus(JobState.CANCELLED, raw="CANCELLED")
    }
    acct = slurm.parse_accounting(read("sacct_last_pending_cancelled.txt"))
    assert acct == {
        "469_28": TaskStatus(JobState.CANCELLED, "by uid 1001", 0, raw="CANCELLED by 1001")
    }


def test_status_error_benign_only_for_unknown_id() -> None:
    assert slurm.status_error_is_benign(1, "slurm_load_jobs error: Invalid job id specified\n")
    assert not slurm.status_error_is_benign(1, "slurm_load_jobs error: Socket timed out\n")
    assert not slurm.status_error_is_benign(0, "")


# -- accounting -----------------------------------------------------------------------


def test_accounting_argv() -> None:
    assert slurm.accounting_argv(["7_3", "6"]) == [
        "sacct",
        "--noheader",
        "--parsable2",
        "--allocations",
        "--jobs=6,7_3",
        "--format=JobID,State,ExitCode",
    ]


def test_parse_accounting_lab_samples() -> None:
    cancelled = slurm.parse_accounting(read("lab_sacct_cancelled.txt"))
    assert cancelled == {
        "105": TaskStatus(JobState.CANCELLED, "by uid 1001", exit_code=0, raw="CANCELLED by 1001")
    }
    array = slurm.parse_accounting(read("lab_sacct_array.txt"))
    assert {k: v.state for k, v in array.items()} == {
        "7_0": JobState.COMPLETED,
        "7_1": JobState.COMPLETED,
        "7_2": JobState.COMPLETED,
    }


def test_parse_accounting_exit_codes_are_modulo_128() -> None:
    """Recorded with the squeue sample above: sacct's code field drops 128 (137 -> 9,
    200 -> 72), and keeps no record of the element scancelled while pending."""
    acct = slurm.parse_accounting(read("sacct_exit_and_dropped.txt"))
    assert acct["1728"] == TaskStatus(JobState.FAILED, exit_code=3, raw="FAILED")
    assert acct["1729"] == TaskStatus(JobState.FAILED, exit_code=9, raw="FAILED")
    assert acct["701"].exit_code == 72
    assert acct["702"] == TaskStatus(JobState.FAILED, "killed by signal 9", 137, raw="FAILED")
    assert acct["1731"].reason == "by uid 1001"
    assert "1730_5" in acct and acct["1730_5"].state is JobState.QUEUED  # stale range
    assert "1730_6" not in acct


def test_parse_accounting_recorded_outcomes() -> None:
    acct = slurm.parse_accounting(read("sacct_mixed.txt"))
    assert acct["18"] == TaskStatus(JobState.COMPLETED, exit_code=0, raw="COMPLETED")
    assert acct["19"] == TaskStatus(JobState.FAILED, exit_code=3, raw="FAILED")
    assert acct["20"] == TaskStatus(
        JobState.FAILED, "killed by signal 9", exit_code=137, raw="FAILED"
    )
    assert acct["21"] == TaskStatus(JobState.TIMEOUT, exit_code=143, raw="TIMEOUT")
    assert acct["22"].state is JobState.CANCELLED
    assert acct["23"].state is JobState.QUEUED
    # a RUNNING task also inside the trailing pending range keeps its own line
    assert acct["25_87"].state is JobState.RUNNING
    assert acct["25_99"].state is JobState.QUEUED
    # an element cancelled while pending (25_50) leaves no record at all
    assert "25_50" not in acct
    early = slurm.parse_accounting(read("sacct_early.txt"))
    assert early["22"].raw == "CANCELLED by 1001" and early["22"].state is JobState.CANCELLED
    assert early["21"].state is JobState.RUNNING


def test_parse_accounting_skips_steps_and_truncation_marks() -> None:
    acct = slurm.parse_accounting("6|COMPLETED|0:0\n6.batch|COMPLETED|0:0\n7|CANCELLED+|0:15\n")
    assert sorted(acct) == ["6", "7"]
    assert acct["7"].state is JobState.CANCELLED


# -- cancel, lookup, config -----------------------------------------------------------


def test_cancel_argv_exact_ids() -> None:
    assert slurm.cancel_argv(["25_7", "22", "25_50"]) == ["scancel", "22", "25_50", "25_7"]


def test_lookup() -> None:
    argv = slurm.lookup_argv("recarr")
    assert argv[:4] == ["squeue", "--noheader", "--me", "--states=all"]
    assert "--name=recarr" in argv and "--format=%F" in argv
    assert slurm.parse_lookup(read("lookup_recarr.txt")) == ["25"]
    assert slurm.parse_lookup("") == []
    with pytest.raises(ConfigError):
        slurm.lookup_argv("x;reboot")


def test_max_array_size() -> None:
    assert slurm.array_limit_argv() == ["scontrol", "show", "config"]
    assert slurm.parse_array_limit(read("scontrol_show_config.txt")) == 10001
    with pytest.raises(ValueError, match="MaxArraySize"):
        slurm.parse_array_limit("MaxJobCount = 10\n")


@pytest.mark.parametrize(
    ("stderr", "transient"),
    [
        ("sbatch: error: Batch job submission failed: Socket timed out on send/recv operation",
         True),
        ("sbatch: error: Batch job submission failed: Unable to contact slurm controller "
         "(connect failure)", True),
        ("sbatch: error: Batch job submission failed: Invalid account or account/partition "
         "combination specified", False),
        ("sbatch: error: invalid partition specified: gpu", False),
    ],
)  # fmt: skip
def test_submit_errors_that_may_hide_a_recorded_job(stderr: str, transient: bool) -> None:
    """sbatch can give up on slurmctld's answer after the job was recorded."""
    assert slurm.submit_error_is_transient(stderr) is transient


# -- the state table ------------------------------------------------------------------

EXPECTED_STATES = {
    "BOOT_FAIL": JobState.NODE_FAIL,
    "CANCELLED": JobState.CANCELLED,
    "COMPLETED": JobState.COMPLETED,
    "CONFIGURING": JobState.QUEUED,
    "COMPLETING": JobState.RUNNING,
    "DEADLINE": JobState.TIMEOUT,
    "FAILED": JobState.FAILED,
    "NODE_FAIL": JobState.NODE_FAIL,
    "OUT_OF_MEMORY": JobState.OUT_OF_MEMORY,
    "PENDING": JobState.QUEUED,
    "PREEMPTED": JobState.PREEMPTED,
    "RUNNING": JobState.RUNNING,
    "RESV_DEL_HOLD": JobState.QUEUED,
    "REQUEUE_FED": JobState.QUEUED,
    "REQUEUE_HOLD": JobState.QUEUED,
    "REQUEUED": JobState.QUEUED,
    "RESIZING": JobState.RUNNING,
    "REVOKED": JobState.LOST,
    "SIGNALING": JobState.RUNNING,
    "SPECIAL_EXIT": JobState.FAILED,
    "STAGE_OUT": JobState.RUNNING,
    "STOPPED": JobState.RUNNING,
    "SUSPENDED": JobState.RUNNING,
    "TIMEOUT": JobState.TIMEOUT,
}
COMPACT = {
    "BF": "BOOT_FAIL", "CA": "CANCELLED", "CD": "COMPLETED", "CF": "CONFIGURING",
    "CG": "COMPLETING", "DL": "DEADLINE", "F": "FAILED", "NF": "NODE_FAIL",
    "OOM": "OUT_OF_MEMORY", "PD": "PENDING", "PR": "PREEMPTED", "R": "RUNNING",
    "RD": "RESV_DEL_HOLD", "RF": "REQUEUE_FED", "RH": "REQUEUE_HOLD", "RQ": "REQUEUED",
    "RS": "RESIZING", "RV": "REVOKED", "SI": "SIGNALING", "SE": "SPECIAL_EXIT",
    "SO": "STAGE_OUT", "ST": "STOPPED", "S": "SUSPENDED", "TO": "TIMEOUT",
}  # fmt: skip


def test_state_map_is_exactly_the_documented_table() -> None:
    expected = dict(EXPECTED_STATES)
    expected.update({short: EXPECTED_STATES[long] for short, long in COMPACT.items()})
    assert expected == slurm.STATE_MAP


@pytest.mark.parametrize("code", sorted(EXPECTED_STATES) + sorted(COMPACT))
def test_every_state_code_through_both_parsers(code: str) -> None:
    expected = EXPECTED_STATES[COMPACT.get(code, code)]
    assert slurm.parse_status(f"41|{code}|None\n")["41"].state is expected
    assert slurm.parse_accounting(f"41|{code}|0:0\n")["41"].state is expected


def test_suffixed_and_unknown_states() -> None:
    assert slurm.parse_accounting("9|CANCELLED by 0|0:9\n")["9"].exit_code == 137
    unknown = slurm.parse_status("9|FUTURE_STATE|None\n")["9"]
    assert unknown.state is JobState.RUNNING and "FUTURE_STATE" in (unknown.reason or "")
