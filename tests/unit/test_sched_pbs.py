"""PBS argv builders and parsers for both dialects.

Sources of the recorded output in ``tests/data/pbs``:

* ``lab_wrappers_*``: LAB.md "Output samples", Slurm's Torque wrappers, verbatim.
* ``wrappers_*``: recorded on the lab (port 2226) with exactly the argv built here.
* ``pro_doc_qstat1B_json.json``: the ``-F json`` example of the PBS Professional
  qstat(1B) manual page ("OPTIONS", ``-F json``; OpenPBS ``doc/man1/qstat.1B``),
  verbatim except that its closing ``...`` is replaced by the closing braces.
* ``pro_doc_psij_json.json``: the PBS Pro ``qstat -f -F json -x`` sample quoted in the
  psij-python documentation ("Adding an executor", PBS Pro example; ALCF output),
  with the trailing comma of that abridged sample removed.
* ``pro_constructed_json.json``: constructed in the same format, one job per state of
  pbs_job_attributes(7B) ("job_state": B E F H M Q R S T U W X) and per documented
  Exit_status case (JOB_EXEC_KILL_* codes of OpenPBS job.h; 256+signal for killed jobs;
  the "job killed: walltime ..." message quoted by PBS site documentation).
* ``torque_doc_qstat_f.txt``: the ``qstat -f`` example of the TORQUE Administrator
  Guide, section 2.7 "Job Exit Status" (Adaptive Computing), verbatim.
* ``torque_constructed_qstat_f.txt``: constructed in Torque's format, covering its
  states and the JOB_EXEC_OVERLIMIT_* exit codes of the same section.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from clustrix._exceptions import ConfigError, SubmissionError
from clustrix._states import JobState
from clustrix.schedulers import (
    ArraySpec,
    BatchResources,
    NamedJobs,
    TaskStatus,
    get_scheduler,
    pbs,
)
from clustrix.schedulers.pbs_output import STATE_MAP

DATA = Path(__file__).parent.parent / "data" / "pbs"


def read(name: str) -> str:
    return (DATA / name).read_text()


def res(**kw: object) -> BatchResources:
    base: dict[str, object] = {"job_name": "clx-c3", "log_dir": "/home/u/logs"}
    base.update(kw)
    return BatchResources(**base)  # type: ignore[arg-type]


# -- directives and submission --------------------------------------------------------


def test_torque_directives() -> None:
    lines = pbs.TORQUE.directives(
        res(cores=4, memory=6 * 1024**3, time=90000, gpus=1, nodes=2, queue="batch", account="lab",
            extra={"m": "abe", "V": True})
    )  # fmt: skip
    assert lines == [
        "#PBS -N clx-c3",
        "#PBS -l nodes=2:ppn=4:gpus=1",
        "#PBS -l mem=6gb",
        "#PBS -l walltime=25:00:00",
        "#PBS -q batch",
        "#PBS -A lab",
        "#PBS -m abe",
        "#PBS -V",
    ]


def test_pro_directives() -> None:
    lines = pbs.PRO.directives(res(cores=8, memory=1536 * 1024**2, gpus=2, nodes=3, time=59))
    assert lines == [
        "#PBS -N clx-c3",
        "#PBS -l select=3:ncpus=8:mem=1536mb:ngpus=2",
        "#PBS -l place=scatter",
        "#PBS -l walltime=00:00:59",
    ]
    assert pbs.PRO.directives(res())[1] == "#PBS -l select=1:ncpus=1"


def test_directives_refuse() -> None:
    with pytest.raises(ConfigError, match="pbs_dialect"):
        pbs.Pbs("lsf")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="account"):
        pbs.TORQUE.directives(res(account="a b"))
    with pytest.raises(ConfigError, match="extra option"):
        pbs.TORQUE.directives(res(extra={"l": "walltime=1\n#PBS -u root"}))


CD = ["sh", "-c", 'cd "$1" && shift && exec "$@"', "sh"]


def test_submit_argv_puts_logs_array_and_hold_on_the_command_line() -> None:
    # LAB.md: Slurm's Torque wrappers honour -o/-e/-j/-t only on the qsub command line;
    # qsub runs in the log directory, every name relative to it
    assert pbs.TORQUE.submit_argv("/home/u/job.sh", res()) == [
        *CD, "/home/u/logs", "qsub", "-o", "clx-c3.out", "-e", "clx-c3.err", "../job.sh",
    ]  # fmt: skip
    torque = pbs.TORQUE.submit_argv("/r/job.sh", res(array=ArraySpec(10, 2), hold=True))
    assert torque[-4:] == ["-t", "0-9%2", "-h", "../../../r/job.sh"]
    pro = pbs.PRO.submit_argv("/home/u/job.sh", res(array=ArraySpec(10)))
    assert pro == [
        *CD, "/home/u/logs", "qsub", "-o", "clx-c3.^array_index^.out",
        "-e", "clx-c3.^array_index^.err", "-J", "0-9", "../job.sh",
    ]  # fmt: skip


def test_pro_one_element_array_is_a_plain_job() -> None:
    one = res(array=ArraySpec(1))
    assert "-J" not in pbs.PRO.submit_argv("/r/job.sh", one)
    assert pbs.PRO.element_job_id("12.srv", 0, one) == "12.srv"
    assert pbs.PRO.log_paths(one, "12.srv", 0)[0] == "/home/u/logs/clx-c3.out"


def test_parse_submit() -> None:
    assert pbs.TORQUE.parse_submit(read("lab_wrappers_qsub.txt")) == "111"
    assert pbs.TORQUE.parse_submit("123.pbs01.example.org\n") == "123.pbs01.example.org"
    assert pbs.TORQUE.parse_submit("1098[].hostname\n") == "1098[].hostname"
    with pytest.raises(SubmissionError):
        pbs.TORQUE.parse_submit("There was an error running the Slurm sbatch command.\n")


def test_element_job_id() -> None:
    arr = res(array=ArraySpec(10))
    assert pbs.TORQUE.element_job_id("1098[].hostname", 7, arr) == "1098[7].hostname"
    assert pbs.PRO.element_job_id("123[].srv", 0, res(array=ArraySpec(3))) == "123[0].srv"
    assert pbs.TORQUE.element_job_id("111", 0, res()) == "111"
    with pytest.raises(ConfigError, match="Torque wrappers"):
        pbs.TORQUE.element_job_id("113", 7, arr)  # the wrappers cannot address one element
    with pytest.raises(ConfigError, match="outside"):
        pbs.TORQUE.element_job_id("1098[].hostname", 10, arr)


def test_log_paths() -> None:
    assert pbs.TORQUE.log_paths(res(), "111", 0) == (
        "/home/u/logs/clx-c3.out",
        "/home/u/logs/clx-c3.err",
    )
    assert pbs.TORQUE.log_paths(res(array=ArraySpec(4)), "5[].s", 3) == (
        "/home/u/logs/clx-c3.out-3",
        "/home/u/logs/clx-c3.err-3",
    )
    assert pbs.PRO.log_paths(res(array=ArraySpec(4)), "5[].s", 3)[1] == (
        "/home/u/logs/clx-c3.3.err"
    )


# -- status and accounting ------------------------------------------------------------


def test_status_argv() -> None:
    assert pbs.TORQUE.status_argv(["129", "128"]) == ["qstat", "-f", "128", "129"]
    assert pbs.TORQUE.status_argv(["5[1].s", "5[0].s"]) == ["qstat", "-f", "-t", "5[0].s", "5[1].s"]
    assert pbs.PRO.status_argv(["4[0].pbs01"]) == [
        "qstat",
        "-x",
        "-f",
        "-F",
        "json",
        "-t",
        "4[0].pbs01",
    ]
    assert pbs.PRO.accounting_argv(["4[0].pbs01"]) == pbs.PRO.status_argv(["4[0].pbs01"])
    assert pbs.TORQUE.accounting_argv(["128"]) is None


def test_status_error_is_benign() -> None:
    assert pbs.TORQUE.status_error_is_benign(153, "")  # the wrappers: no known id at all
    assert pbs.TORQUE.status_error_is_benign(35, "qstat: Unknown Job Id 99.srv\n")
    assert not pbs.TORQUE.status_error_is_benign(1, "Connection refused\n")


def test_wrappers_lab_samples() -> None:
    running = pbs.TORQUE.parse_status(read("lab_wrappers_qstat_f_running.txt"))
    assert running == {"111": TaskStatus(JobState.RUNNING, raw="R")}
    done = pbs.TORQUE.parse_status(read("lab_wrappers_qstat_f_done.txt"))["111"]
    assert done.state is JobState.COMPLETED and done.exit_code is None
    assert "exit-code file" in (done.reason or "")


def test_wrappers_recorded() -> None:
    mixed = pbs.TORQUE.parse_status(read("wrappers_qstat_f_mixed.txt"))
    assert {k: v.raw for k, v in mixed.items()} == {"128": "C", "129": "C", "130": "R", "131": "Q"}
    assert mixed["131"].state is JobState.QUEUED  # qsub -h: the wrappers show no hold
    after = pbs.TORQUE.parse_status(read("wrappers_qstat_f_after_qdel.txt"))
    assert {v.state for v in after.values()} == {JobState.COMPLETED}


def test_jobs_by_name_recorded_before_and_after_qdel() -> None:
    """`jobs_by_name_argv` recorded on the lab's wrappers: array 1780 (``-t 0-2%1``,
    element 0 running as 1781, the rest queued) and held job 1789, then both qdel'ed."""
    before = read("wrappers_by_name_before_qdel.txt")
    assert pbs.parse_jobs_by_name(before)["pbsdrop"] == [JobState.RUNNING, JobState.QUEUED]
    assert pbs.parse_unstarted_by_name(before) == set()  # queued is not ended
    after = read("wrappers_by_name_after_qdel.txt")
    assert pbs.parse_jobs_by_name(after)["pbshold"] == [JobState.COMPLETED]
    assert pbs.parse_unstarted_by_name(after) == {"pbsdrop", "pbshold"}
    # the old three-field form still parses
    assert pbs.parse_jobs_by_name("7 cxa C\n") == {"cxa": [JobState.COMPLETED]}
    # the scheduler's hook: per name, are jobs still live, was one deleted unstarted?
    wrappers = pbs.Pbs(arrays=False)
    assert wrappers.parse_jobs_by_name(before)["pbsdrop"] == NamedJobs(live=True, dropped=False)
    assert wrappers.parse_jobs_by_name(after)["pbsdrop"] == NamedJobs(live=False, dropped=True)
    assert wrappers.jobs_by_name_argv() == pbs.jobs_by_name_argv()


def test_jobs_by_name_argv_runs_on_recorded_qstat(tmp_path: Path) -> None:
    """The awk program on the recorded `qstat -f` of a qdel'ed queued job (131)."""
    fake = tmp_path / "qstat"
    fake.write_text(f"#!/bin/sh\ncat {DATA / 'wrappers_qstat_f_after_qdel.txt'}\n")
    fake.chmod(0o755)
    env = {**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}"}
    out = subprocess.run(
        pbs.jobs_by_name_argv(), capture_output=True, text=True, env=env, check=True
    ).stdout
    assert out.splitlines()[:4] == [
        "128 pbsrec C ran",
        "129 pbsrec C ran",
        "130 pbsrec C ran",
        "131 pbsrec C -",
    ]


def test_pro_doc_samples() -> None:
    assert pbs.TORQUE.parse_status(read("pro_doc_qstat1B_json.json")) == {
        "1.vbox": TaskStatus(JobState.QUEUED, raw="Q")
    }
    finished = pbs.TORQUE.parse_accounting(read("pro_doc_psij_json.json"))[
        "2154.edtb-01.mcp.alcf.anl.gov"
    ]
    assert finished.state is JobState.COMPLETED and finished.exit_code == 0
    assert finished.reason is not None and finished.reason.startswith("Job run at")


def test_pro_constructed_states_and_exit_statuses() -> None:
    status = pbs.TORQUE.parse_status(read("pro_constructed_json.json"))
    expected = {
        "4[].pbs01": (JobState.RUNNING, None),
        "4[0].pbs01": (JobState.COMPLETED, 0),
        "4[1].pbs01": (JobState.FAILED, 3),
        "4[2].pbs01": (JobState.CANCELLED, None),  # X without Exit_status: deleted
        "4[3].pbs01": (JobState.RUNNING, None),
        "4[4].pbs01": (JobState.QUEUED, None),
        "5.pbs01": (JobState.TIMEOUT, None),  # -29 JOB_EXEC_KILL_WALLTIME
        "6.pbs01": (JobState.TIMEOUT, 143),  # 256+15 with a walltime comment
        "7.pbs01": (JobState.CANCELLED, 137),  # 256+9: qdel
        "8.pbs01": (JobState.OUT_OF_MEMORY, None),  # -27 JOB_EXEC_KILL_MEM
        "9.pbs01": (JobState.QUEUED, None),
        "10.pbs01": (JobState.QUEUED, None),
        "11.pbs01": (JobState.RUNNING, None),
        "12.pbs01": (JobState.RUNNING, None),
        "13.pbs01": (JobState.QUEUED, None),
        "14.pbs01": (JobState.QUEUED, None),
        "15.pbs01": (JobState.RUNNING, None),
        "16.pbs01": (JobState.CANCELLED, None),
        "17.pbs01": (JobState.FAILED, 137),  # the script itself returned 137
        "18.pbs01": (JobState.FAILED, None),  # -3: could not run
    }
    assert {k: (v.state, v.exit_code) for k, v in status.items()} == expected
    assert status["5.pbs01"].reason is not None and "WALLTIME" in status["5.pbs01"].reason
    assert status["16.pbs01"].reason == "Job deleted by user"
    assert status["9.pbs01"].reason == "held"


def test_torque_doc_and_constructed() -> None:
    doc = pbs.TORQUE.parse_status(read("torque_doc_qstat_f.txt"))
    assert list(doc) == ["179.host"]
    assert doc["179.host"].state is JobState.FAILED and "-1" in (doc["179.host"].reason or "")
    status = pbs.TORQUE.parse_status(read("torque_constructed_qstat_f.txt"))
    assert {k: (v.state, v.exit_code) for k, v in status.items()} == {
        "200[].srv": (JobState.RUNNING, None),
        "200[0].srv": (JobState.COMPLETED, 0),
        "200[1].srv": (JobState.TIMEOUT, None),
        "200[2].srv": (JobState.CANCELLED, 143),
        "200[3].srv": (JobState.RUNNING, None),
        "201.srv": (JobState.QUEUED, None),
        "202.srv": (JobState.QUEUED, None),
        "203.srv": (JobState.RUNNING, None),
        "204.srv": (JobState.QUEUED, None),
        "205.srv": (JobState.RUNNING, None),
        "206.srv": (JobState.OUT_OF_MEMORY, None),
        "207.srv": (JobState.QUEUED, None),
        "208.srv": (JobState.FAILED, 2),
    }


def test_parse_status_empty() -> None:
    assert pbs.TORQUE.parse_status("") == {}
    assert pbs.TORQUE.parse_status('{"timestamp":1,"pbs_version":"2024.1","pbs_server":"s"}') == {}


EXPECTED_STATES = {
    "B": JobState.RUNNING, "C": JobState.COMPLETED, "E": JobState.RUNNING,
    "F": JobState.COMPLETED, "H": JobState.QUEUED, "M": JobState.QUEUED,
    "Q": JobState.QUEUED, "R": JobState.RUNNING, "S": JobState.RUNNING,
    "T": JobState.QUEUED, "U": JobState.RUNNING, "W": JobState.QUEUED,
    "X": JobState.COMPLETED,
}  # fmt: skip


def test_state_map_is_exactly_the_documented_table() -> None:
    assert STATE_MAP == EXPECTED_STATES == pbs.PRO.STATE_MAP


@pytest.mark.parametrize("code", sorted(EXPECTED_STATES))
def test_every_state_code_through_both_formats(code: str) -> None:
    text = f"Job Id: 9.s\n    job_state = {code}\n    exit_status = 0\n"
    json_text = json.dumps({"Jobs": {"9.s": {"job_state": code, "Exit_status": 0}}})
    for out in (text, json_text):
        assert pbs.TORQUE.parse_status(out)["9.s"] == TaskStatus(
            EXPECTED_STATES[code],
            reason=pbs.TORQUE.parse_status(out)["9.s"].reason,
            exit_code=0 if code in "CFX" else None,
            raw=code,
        )


def test_unknown_state_keeps_polling() -> None:
    status = pbs.TORQUE.parse_status("Job Id: 9.s\n    job_state = Z\n")["9.s"]
    assert status.state is JobState.RUNNING and "'Z'" in (status.reason or "")


# -- cancel, lookup, probe ------------------------------------------------------------


def test_cancel_argv() -> None:
    assert pbs.TORQUE.cancel_argv(["130", "131", "999999"]) == ["qdel", "130", "131", "999999"]
    assert pbs.TORQUE.cancel_argv(["5[3].s"]) == ["qdel", "5[3].s"]


def test_lookup_pro_uses_qselect() -> None:
    assert pbs.PRO.lookup_argv("clx-c3") == ["qselect", "-x", "-N", "clx-c3"]


def test_lookup_torque_recorded_and_run_locally(tmp_path: Path) -> None:
    assert pbs.TORQUE.parse_lookup(read("wrappers_lookup_pbsrec.txt")) == [
        "128", "129", "130", "131", "132", "136", "137", "138", "139", "140",
    ]  # fmt: skip
    fake = tmp_path / "qstat"
    sample = read("lab_wrappers_qstat_f_running.txt") + read("torque_doc_qstat_f.txt")
    (tmp_path / "sample").write_text(sample)
    fake.write_text(f"#!/bin/sh\ncat {tmp_path / 'sample'}\n")
    fake.chmod(0o755)
    env = {"PATH": f"{tmp_path}:{os.environ['PATH']}"}
    for name, found in (("pbsdemo", ["111"]), ("STDIN", ["179.host"]), ("nosuch", [])):
        done = subprocess.run(pbs.TORQUE.lookup_argv(name), env=env, capture_output=True, text=True)
        assert done.returncode == 0
        assert pbs.TORQUE.parse_lookup(done.stdout) == found


def test_probe() -> None:
    assert pbs.probe_argv() == ["sh", "-c", "qstat --version 2>&1; exit 0"]
    assert pbs.parse_probe(read("wrappers_probe.txt")) == "slurm-wrappers"
    assert pbs.parse_probe("pbs_version = 2022.1.5\n") == "pro"
    assert pbs.parse_probe("Version: 6.1.3\nCommit: 3ec6e\n") == "torque"
    assert (
        not pbs.FLAVOUR_ARRAYS["slurm-wrappers"]
        and pbs.FLAVOUR_DIALECT["slurm-wrappers"] == "torque"
    )
    with pytest.raises(ValueError, match="unknown"):
        pbs.parse_probe("bash: qstat: command not found\n")


def test_dialect_objects() -> None:
    assert get_scheduler("pbs", "pro") == pbs.PRO
    assert pbs.TORQUE.status_argv(["1"]) == ["qstat", "-f", "1"]
    assert pbs.PRO.accounting_argv(["1.s"]) == ["qstat", "-x", "-f", "-F", "json", "-t", "1.s"]
    assert pbs.TORQUE.accounting_argv(["1.s"]) is None
    assert pbs.PRO.lookup_argv("clx-c3")[0] == "qselect"
    with pytest.raises(ConfigError, match="pbs_dialect"):
        get_scheduler("pbs", "openlava")  # type: ignore[arg-type]


def test_the_probe_hook_chooses_the_dialect_and_addressing() -> None:
    """pbs_dialect="auto": one `qstat --version` decides (recorded wrappers' answer)."""
    assert pbs.PRO.probe_argv() is None and pbs.TORQUE.probe_argv() is None
    auto = pbs.Pbs(probe=True)
    assert auto.probe_argv() == pbs.probe_argv()
    assert auto.probed("pbs_version = 2022.1.5\n") == pbs.PRO
    assert auto.probed("Version: 6.1.3\n") == pbs.TORQUE and pbs.TORQUE.addressable
    wrappers = auto.probed(read("wrappers_probe.txt"))
    assert wrappers == pbs.Pbs("torque", arrays=False) and not wrappers.addressable
    # their elements have no id of their own: Torque's notation, for show only
    assert wrappers.element_job_id("113", 2, res(array=ArraySpec(3))) == "113[2]"
    with pytest.raises(ConfigError, match="Torque wrappers"):
        wrappers.directives(res(log_dir="/home/a/100%/logs"))
    assert pbs.TORQUE.directives(res(log_dir="/home/a/100%/logs"))


def test_submit_errors_that_may_hide_a_recorded_job() -> None:
    assert pbs.TORQUE.submit_error_is_transient(
        "qsub: End of File (reply from the server was lost)"
    )
    assert not pbs.TORQUE.submit_error_is_transient("qsub: Unknown queue MSG=cannot locate queue")
