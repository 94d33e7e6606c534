"""Grid Engine argv builders and parsers, on output recorded from Son of Grid Engine 8.1.9.

``lab_*.txt`` files are LAB.md's "Output samples" verbatim (``lab_qacct_j5_grep`` and
``lab_qacct_j6_qdel_grep`` are its grep excerpts); the other files were recorded on
the lab with exactly the argv these functions build.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from clustrix._exceptions import ConfigError, SubmissionError
from clustrix._states import JobState
from clustrix.schedulers import ArraySpec, BatchResources, TaskStatus
from clustrix.schedulers.sge import GridEngine
from clustrix.schedulers.sge_qacct import parse_qacct, record_status

DATA = Path(__file__).parent.parent / "data" / "sge"
sge = GridEngine()


def read(name: str) -> str:
    return (DATA / name).read_text()


def res(**kw: object) -> BatchResources:
    base: dict[str, object] = {"job_name": "clx-b2", "log_dir": "/home/u/logs"}
    base.update(kw)
    return BatchResources(**base)  # type: ignore[arg-type]


def test_parse_submit_lab_samples() -> None:
    assert sge.parse_submit(read("lab_qsub_terse.txt")) == "4"
    assert sge.parse_submit(read("lab_qsub_terse_array.txt")) == "5"
    with pytest.raises(SubmissionError):
        sge.parse_submit("Unable to run job: error: no suitable queues.\n")
    assert sge.submit_argv("/r/job.sh", res()) == [
        "qsub", "-terse", "-wd", "/home/u/logs", "/r/job.sh",
    ]  # fmt: skip


def test_directives_full() -> None:
    lines = GridEngine("mpi").directives(
        res(
            cores=2,
            memory=3 * 1024**3,
            time=3700,
            queue="all.q",
            account="proj",
            array=ArraySpec(10, 3),
            hold=True,
            extra={"l": "gpu=1", "R": "y", "notify": True},
        )
    )
    assert lines == [
        "#$ -N clx-b2",
        "#$ -S /bin/bash",
        "#$ -o clx-b2.$JOB_ID.$TASK_ID.out",
        "#$ -e clx-b2.$JOB_ID.$TASK_ID.err",
        "#$ -pe mpi 2",
        "#$ -l h_vmem=1536M",
        "#$ -l h_rt=1:01:40",
        "#$ -q all.q",
        "#$ -A proj",
        "#$ -t 1-10",
        "#$ -tc 3",
        "#$ -h",
        "#$ -l gpu=1",
        "#$ -R y",
        "#$ -notify",
    ]


def test_directives_single_slot_job() -> None:
    lines = sge.directives(res(memory=2 * 1024**3, nodes=1))
    assert "#$ -o clx-b2.$JOB_ID.out" in lines
    assert "#$ -l h_vmem=2G" in lines
    assert not any("-pe" in line or "-t " in line for line in lines)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"gpus": 1}, "extra"),
        ({"nodes": 2}, "one host"),
        ({"pe": "smp 4"}, "sge_pe"),
        ({"cores": 2, "pe": ""}, "sge_pe"),
        ({"queue": "all.q\n#$ -u root"}, "queue"),
        ({"extra": {"l": "h_rt=1 -notify"}}, "extra option"),
    ],
)
def test_directives_refuse(change: dict[str, object], message: str) -> None:
    change = dict(change)
    scheduler = GridEngine(str(change.pop("pe", "smp")))
    with pytest.raises(ConfigError, match=message):
        scheduler.directives(res(**change))


def test_element_job_id_and_log_paths_are_one_based() -> None:
    arr = res(array=ArraySpec(10))
    assert sge.element_job_id("5", 7, arr) == "5.8"
    assert sge.element_job_id("5", 0, res()) == "5"
    with pytest.raises(ConfigError):
        sge.element_job_id("5", -1, arr)
    assert sge.log_paths(arr, "20", 0) == (
        "/home/u/logs/clx-b2.20.1.out",
        "/home/u/logs/clx-b2.20.1.err",
    )
    assert sge.log_paths(res(), "7", 0)[0] == "/home/u/logs/clx-b2.7.out"


@pytest.mark.parametrize(
    ("task_id", "expected"), [("undefined", "0"), ("1", "0"), ("8", "7"), (None, "0")]
)
def test_element_index_expr_in_bash(task_id: str | None, expected: str) -> None:
    env = {"PATH": os.environ["PATH"]}
    if task_id is not None:
        env["SGE_TASK_ID"] = task_id
    script = f'set -u\nE={sge.element_index_expr}\nprintf %s "$E"'
    out = subprocess.run(
        ["bash", "-c", script], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout == expected


# -- status ---------------------------------------------------------------------------


def test_status_argv_lists_the_callers_jobs() -> None:
    assert sge.status_argv(["5.8", "6"]) == ["qstat", "-xml", "-s", "prsz"]
    assert not sge.status_error_is_benign(1, "error: commlib error")


def test_parse_status_recorded_running_pending_held_error() -> None:
    status = sge.parse_status(read("qstat_xml_mixed.xml"))
    assert status["9"] == TaskStatus(JobState.RUNNING, raw="r")
    assert status["13"].state is JobState.RUNNING
    assert status["11"] == TaskStatus(JobState.QUEUED, reason="held", raw="hqw")
    assert status["12"].state is JobState.FAILED
    assert "qstat -j 12" in (status["12"].reason or "")
    assert {f"14.{i}": status[f"14.{i}"].state for i in (1, 2, 3)} == dict.fromkeys(
        ("14.1", "14.2", "14.3"), JobState.RUNNING
    )
    assert [status[f"14.{i}"].raw for i in range(4, 11)] == ["qw"] * 7
    assert "14" not in status and "14.11" not in status


def test_parse_status_running_task_beats_pending_range() -> None:
    xml = (
        "<job_info><job_info>"
        "<job_list><JB_job_number>3</JB_job_number><state>qw</state><tasks>1-4:1</tasks></job_list>"
        "</job_info><queue_info>"
        "<job_list><JB_job_number>3</JB_job_number><state>r</state><tasks>2</tasks></job_list>"
        "</queue_info></job_info>"
    )
    status = sge.parse_status(xml)
    assert status["3.2"].state is JobState.RUNNING
    assert status["3.1"].state is JobState.QUEUED and status["3.4"].state is JobState.QUEUED


def test_parse_status_recorded_finished_list() -> None:
    """``qstat -xml -s prsz`` recorded on the lab (other users' jobs cut out): job 60
    (tasks 1-4, at most 2 at once) with task 4 qdel'ed while pending, and job 61 held
    and qdel'ed. Neither left a qacct record; the finished-jobs list has both."""
    status = sge.parse_status(read("qstat_xml_dropped_task.xml"))
    assert status["60.1"] == TaskStatus(JobState.RUNNING, raw="r")
    assert status["60.3"] == TaskStatus(JobState.QUEUED, raw="qw")
    finished = TaskStatus(JobState.COMPLETED, "finished", raw="z", outcome_unknown=True)
    assert status["60.4"] == finished and status["61"] == finished
    # later: every task finished; the list holds the ones that ran and the dropped one
    later = sge.parse_status(read("qstat_xml_finished_list.xml"))
    assert later == {**{f"60.{i}": finished for i in range(1, 5)}, "61": finished}


def test_a_finished_entry_never_hides_a_live_one() -> None:
    live = job_xml("3", "r", "2")
    done = job_xml("3", "z", "1-4:1")
    for xml in (live + done, done + live):
        text = "<job_info>" + xml + "</job_info>"
        status = sge.parse_status(text)
        assert status["3.2"] == TaskStatus(JobState.RUNNING, raw="r")
        assert status["3.1"].outcome_unknown and status["3.4"].outcome_unknown


def job_xml(number: str, state: str, tasks: str = "") -> str:
    task = f"<tasks>{tasks}</tasks>" if tasks else ""
    return (
        f"<job_info><job_list><JB_job_number>{number}</JB_job_number>"
        f"<state>{state}</state>{task}</job_list></job_info>"
    )


def test_parse_status_empty_and_stepped_ranges() -> None:
    assert sge.parse_status("") == {}
    xml = job_xml("8", "qw", "1-9:4,20")
    assert sorted(sge.parse_status(xml)) == ["8.1", "8.20", "8.5", "8.9"]


EXPECTED_STATES = {
    "qw": JobState.QUEUED, "Rq": JobState.QUEUED, "hqw": JobState.QUEUED,
    "hRwq": JobState.QUEUED, "r": JobState.RUNNING, "hr": JobState.RUNNING,
    "t": JobState.RUNNING, "Rr": JobState.RUNNING, "Rt": JobState.RUNNING,
    "s": JobState.RUNNING, "ts": JobState.RUNNING, "S": JobState.RUNNING,
    "tS": JobState.RUNNING, "T": JobState.RUNNING, "tT": JobState.RUNNING,
    "Rs": JobState.RUNNING, "Rts": JobState.RUNNING, "RS": JobState.RUNNING,
    "RtS": JobState.RUNNING, "RT": JobState.RUNNING, "RtT": JobState.RUNNING,
    "Eqw": JobState.FAILED, "Ehqw": JobState.FAILED, "EhRqw": JobState.FAILED,
    "dr": JobState.RUNNING, "dt": JobState.RUNNING, "dRr": JobState.RUNNING,
    "dRt": JobState.RUNNING, "ds": JobState.RUNNING, "dS": JobState.RUNNING,
    "dT": JobState.RUNNING, "dRs": JobState.RUNNING, "dRS": JobState.RUNNING,
    "dRT": JobState.RUNNING, "z": JobState.COMPLETED,
}  # fmt: skip


def test_state_map_is_exactly_sge_status_5() -> None:
    assert sge.STATE_MAP == EXPECTED_STATES


@pytest.mark.parametrize("code", sorted(EXPECTED_STATES))
def test_every_state_code_through_the_parser(code: str) -> None:
    status = sge.parse_status(job_xml("77", code))["77"]
    assert status.state is EXPECTED_STATES[code] and status.raw == code
    if "h" in code:
        assert "held" in (status.reason or "")
    if code.startswith("d"):
        assert "deleted" in (status.reason or "")


def test_unlisted_letter_combination_is_classified() -> None:
    assert sge.parse_status(job_xml("1", "hRqw"))["1"].state is JobState.QUEUED


# -- accounting -----------------------------------------------------------------------


def test_accounting_argv_runs_qacct_once_per_master(tmp_path: Path) -> None:
    argv = sge.accounting_argv(["14.2", "14.9", "7", "99999"])
    assert argv[:2] == ["sh", "-c"] and argv[3:] == ["sh", "7", "14", "99999"]
    fake = tmp_path / "qacct"
    fake.write_text(
        "#!/bin/sh\n"
        '[ "$2" = 99999 ] && { echo "error: job id $2 not found" >&2; exit 1; }\n'
        'echo "qacct $*"\n'
    )
    fake.chmod(0o755)
    env = {"PATH": f"{tmp_path}:{os.environ['PATH']}"}
    done = subprocess.run(argv, env=env, capture_output=True, text=True)
    assert done.returncode == 0
    assert done.stdout.splitlines() == ["qacct -j 7", "qacct -j 14"]


def test_parse_accounting_lab_samples() -> None:
    assert sge.parse_accounting(read("lab_qacct_j4.txt")) == {
        "4": TaskStatus(JobState.COMPLETED, exit_code=0, raw="failed 0; exit_status 0")
    }
    tasks = sge.parse_accounting(read("lab_qacct_j5_grep.txt"))
    assert {k: v.state for k, v in tasks.items()} == {
        "5.1": JobState.COMPLETED,
        "5.2": JobState.COMPLETED,
    }
    (qdel,) = parse_qacct(read("lab_qacct_j6_qdel_grep.txt"))
    status = record_status(qdel)
    assert status.state is JobState.CANCELLED and status.exit_code == 137


def test_parse_accounting_recorded_outcomes() -> None:
    acct = sge.parse_accounting(read("qacct_mixed.txt"))
    assert acct["7"].state is JobState.COMPLETED
    assert acct["8"] == TaskStatus(JobState.FAILED, exit_code=3, raw="failed 0; exit_status 3")
    assert acct["9"].state is JobState.TIMEOUT and acct["9"].reason == "exceeded h_rt=5"
    assert acct["10"].state is JobState.CANCELLED and acct["10"].exit_code == 137
    assert acct["13"].state is JobState.COMPLETED
    assert sorted(k for k in acct if k.startswith("14.")) == sorted(
        f"14.{i}"
        for i in range(1, 11)
        if i != 9  # 14.9 was deleted while pending: no record
    )


def _record(**fields: str) -> str:
    return "=" * 62 + "\n" + "".join(f"{k:<13}{v}\n" for k, v in fields.items())


@pytest.mark.parametrize(
    ("fields", "state", "reason"),
    [
        ({"failed": "37  : qmaster enforced h_rt, h_cpu, or h_vmem limit", "exit_status": "137",
          "category": "-l h_rt=0:10:00,h_vmem=1G", "ru_wallclock": "30s", "maxvmem": "1.950GB",
          "slots": "2"}, JobState.OUT_OF_MEMORY, "exceeded h_vmem"),
        ({"failed": "37  : qmaster enforced h_rt, h_cpu, or h_vmem limit", "exit_status": "137",
          "category": "-l h_cpu=10", "ru_wallclock": "30s"}, JobState.TIMEOUT, None),
        ({"failed": "100 : assumedly after job", "exit_status": "137", "category": "-l h_rt=60",
          "ru_wallclock": "60s"}, JobState.TIMEOUT, "exceeded h_rt=60"),
        ({"failed": "100 : assumedly after job", "exit_status": "0", "ru_wallclock": "1s"},
         JobState.COMPLETED, "100 : assumedly after job"),
        ({"failed": "26  : opening input/output file", "exit_status": "0", "ru_wallclock": "0s"},
         JobState.FAILED, "failed 26  : opening input/output file"),
        ({"failed": "0", "exit_status": "137", "ru_wallclock": "5s"}, JobState.FAILED,
         "killed by signal 9"),
    ],
)  # fmt: skip
def test_record_status_rules(fields: dict[str, str], state: JobState, reason: str | None) -> None:
    status = sge.parse_accounting(_record(jobnumber="3", taskid="undefined", **fields))["3"]
    assert status.state is state
    if reason is not None:
        assert status.reason == reason


def test_a_rerun_task_keeps_its_last_record() -> None:
    text = _record(jobnumber="3", taskid="2", failed="0", exit_status="1") + _record(
        jobnumber="3", taskid="2", failed="0", exit_status="0"
    )
    assert sge.parse_accounting(text)["3.2"].state is JobState.COMPLETED


# -- cancel and lookup ----------------------------------------------------------------


def test_cancel_argv_deletes_single_tasks() -> None:
    assert sge.cancel_argv(["14.9", "10", "14.9"]) == ["qdel", "10", "14.9"]


def test_lookup_live_and_finished() -> None:
    argv = sge.lookup_argv("sgearr")
    assert argv[:2] == ["sh", "-c"] and argv[-1] == "sgearr"
    assert sge.parse_lookup(read("lookup_sgearr.txt")) == ["14"]
    assert sge.parse_lookup(read("lookup_sgehold.txt")) == ["11"]
    assert sge.parse_lookup(read("lab_qstat_j4_live.txt")) == ["4"]
    assert sge.parse_lookup(read("lab_qstat_j4_gone.txt")) == []
    with pytest.raises(ConfigError, match="digits"):
        sge.lookup_argv("12345")


def test_lookup_argv_runs_both_commands_with_the_name_as_one_argument(tmp_path: Path) -> None:
    for tool in ("qstat", "qacct"):
        fake = tmp_path / tool
        fake.write_text(f'#!/bin/sh\nprintf "{tool} %s|" "$@"\nexit 1\n')
        fake.chmod(0o755)
    env = {"PATH": f"{tmp_path}:{os.environ['PATH']}"}
    done = subprocess.run(sge.lookup_argv("a.b-c_d"), env=env, capture_output=True, text=True)
    assert done.returncode == 0
    assert done.stdout == "qstat -j|qstat a.b-c_d|qacct -j|qacct a.b-c_d|"


def test_submit_errors_that_may_hide_a_recorded_job() -> None:
    """qsub can lose qmaster's answer after the job was recorded."""
    assert sge.submit_error_is_transient(
        "error: failed receiving gdi request response for mid=2 (got syncron message "
        "receive timeout error)."
    )
    assert not sge.submit_error_is_transient(
        'Unable to run job: Job was rejected because job requests unknown queue "nope.q".'
    )
