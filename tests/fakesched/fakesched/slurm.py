"""Fake Slurm 22.05: sbatch, squeue, sacct, scancel, scontrol (the parts clustrix uses).

Output formats follow the lab's recordings (tests/data/slurm, LAB.md).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

from . import core

PARTITIONS = ("debug",)
NODES = 1
STATE_CODES = {
    "PENDING": "PD",
    "RUNNING": "R",
    "COMPLETED": "CD",
    "FAILED": "F",
    "CANCELLED": "CA",
    "TIMEOUT": "TO",
    "OUT_OF_MEMORY": "OOM",
    "NODE_FAIL": "NF",
    "PREEMPTED": "PR",
}
# sbatch options that take a value (long name, short letter); flags below.
VALUED = {
    "job-name": "J",
    "output": "o",
    "error": "e",
    "array": "a",
    "time": "t",
    "partition": "p",
    "nodes": "N",
    "cpus-per-task": "c",
    "mem": "",
    "account": "A",
    "gpus": "G",
    "qos": "q",
    "constraint": "C",
    "comment": "",
    "mem-per-cpu": "",
    "ntasks": "n",
    "dependency": "d",
    "chdir": "D",
    "export": "",
    "mail-type": "",
    "mail-user": "",
    "gres": "",
    "nice": "",
    "begin": "b",
    "reservation": "",
    "ntasks-per-node": "",
    "signal": "",
    "wckey": "",
    "licenses": "L",
}
FLAGS = {
    "parsable": "",
    "hold": "H",
    "exclusive": "",
    "requeue": "",
    "no-requeue": "",
    "wait": "W",
    "test-only": "",
}
SHORT = {v: k for k, v in {**VALUED, **FLAGS}.items() if v}


def _fail(message: str, code: int = 1) -> int:
    sys.stderr.write(message + "\n")
    return code


def parse_options(words: list[str]) -> tuple[dict[str, Any], list[str], str | None]:
    """(options, positional args, error) of an sbatch command line or directives."""
    options: dict[str, Any] = {}
    rest: list[str] = []
    i = 0
    while i < len(words):
        word = words[i]
        i += 1
        if word.startswith("--"):
            name, eq, value = word[2:].partition("=")
            if name in FLAGS:
                options[name] = True
            elif name in VALUED:
                if not eq:
                    if i >= len(words):
                        return options, rest, f"sbatch: option '--{name}' requires an argument"
                    value, i = words[i], i + 1
                options[name] = value
            else:
                return options, rest, f"sbatch: unrecognized option '--{name}'"
        elif word.startswith("-") and len(word) > 1:
            name = SHORT.get(word[1])
            if name is None:
                return options, rest, f"sbatch: invalid option -- '{word[1]}'"
            if name in FLAGS:
                options[name] = True
            else:
                value = word[2:]
                if not value:
                    if i >= len(words):
                        return options, rest, f"sbatch: option requires an argument -- '{word[1]}'"
                    value, i = words[i], i + 1
                options[name] = value
        else:
            rest.append(word)
            rest += words[i:]
            break
    return options, rest, None


def _indices(spec: str) -> tuple[list[int], int | None] | None:
    spec, _, throttle = spec.partition("%")
    indices: list[int] = []
    try:
        for part in spec.split(","):
            first, dash, last = part.partition("-")
            if dash:
                last, _, step = last.partition(":")
                indices += range(int(first), int(last) + 1, int(step or 1))
            else:
                indices.append(int(first))
        return indices, int(throttle) if throttle else None
    except ValueError:
        return None


def _pattern(path: str, master: str, index: int | None, job_id: str, name: str) -> str:
    out = path.replace("%%", "\0").replace("%A", master).replace("%j", job_id).replace("%x", name)
    out = out.replace("%a", str(index) if index is not None else "4294967294")
    return out.replace("\0", "%")


def sbatch(argv: list[str]) -> int:
    core.log_call("sbatch", argv)
    refuse = core.refusal()
    if refuse:
        return _fail(refuse)
    options, rest, error = parse_options(argv)
    if error:
        return _fail(error + '\nTry "sbatch --help" for more information')
    if not rest:
        return _fail("sbatch: error: Batch script is empty!")
    script = os.path.abspath(rest[0])
    if not os.path.isfile(script):
        return _fail(f"sbatch: error: Unable to open file {rest[0]}")
    in_script, _, error = parse_options(core.directives(script, "#SBATCH"))
    if error:
        return _fail(error)
    options = {**in_script, **options}
    partition = options.get("partition", PARTITIONS[0])
    if partition not in PARTITIONS:
        return _fail("sbatch: error: Batch job submission failed: Invalid partition name specified")
    limit = None
    if "time" in options:
        limit = core.parse_hms(str(options["time"]))
        if limit is None:
            return _fail("sbatch: error: Invalid --time specification")
    array = None
    if "array" in options:
        parsed = _indices(str(options["array"]))
        max_size = int(core.knobs().get("max_array_size", 1001))
        if parsed is None or not parsed[0] or max(parsed[0]) >= max_size:
            return _fail(
                "sbatch: error: Batch job submission failed: Invalid job array specification"
            )
        array = parsed
    name = str(options.get("job-name", Path(script).name))
    workdir = str(options.get("chdir", os.getcwd()))
    indices = array[0] if array else [0]
    number = core.new_id(len(indices))
    master = str(number)
    tasks = {}
    for position, index in enumerate(indices):
        job_id = str(number + position)
        shown = index if array else None
        default = f"slurm-{master}_{index}.out" if array else f"slurm-{master}.out"
        out = _pattern(str(options.get("output", default)), master, shown, job_id, name)
        err = _pattern(
            str(options.get("error", options.get("output", default))), master, shown, job_id, name
        )
        env = {
            "SLURM_JOB_ID": job_id,
            "SLURM_JOBID": job_id,
            "SLURM_JOB_NAME": name,
            "SLURM_SUBMIT_DIR": os.getcwd(),
            "SLURM_JOB_PARTITION": partition,
            "SLURM_CPUS_PER_TASK": str(options.get("cpus-per-task", 1)),
            "SLURM_JOB_NUM_NODES": "1",
            "SLURM_NODELIST": "fake",
        }
        if array:
            env.update(
                SLURM_ARRAY_JOB_ID=master,
                SLURM_ARRAY_TASK_ID=str(index),
                SLURM_ARRAY_TASK_COUNT=str(len(indices)),
                SLURM_ARRAY_TASK_MIN=str(min(indices)),
                SLURM_ARRAY_TASK_MAX=str(max(indices)),
            )
        tasks[str(index)] = core.task(
            index, os.path.join(workdir, out), os.path.join(workdir, err), env
        )
    blocked = None
    if int(options.get("nodes", 1)) > NODES:
        blocked = "PartitionNodeLimit"
    elif options.get("hold"):
        blocked = "JobHeldUser"
    if core.take("vanish"):  # accepted, then forgotten: no record anywhere, never runs
        print(master if options.get("parsable") else f"Submitted batch job {master}")
        return 0
    job = {
        "master": master,
        "name": name,
        "script": script,
        "workdir": workdir,
        "array": bool(array),
        "throttle": array[1] if array else None,
        "time_limit": limit,
        "partition": partition,
        "blocked": blocked,
        "tasks": tasks,
    }
    core.record(job)
    if core.take("lost_answer"):  # recorded and started, but the answer never arrives
        return _fail(
            "sbatch: error: Batch job submission failed: Socket timed out on send/recv operation"
        )
    print(master if options.get("parsable") else f"Submitted batch job {master}")
    return 0


def _task_id(job: dict[str, Any], key: str) -> str:
    return f"{job['master']}_{key}" if job["array"] else job["master"]


def _selected(ids: list[str]) -> list[tuple[dict[str, Any], str]]:
    """(job, task key) for every task named by `ids` (master ids select whole arrays)."""
    found = []
    for job in core.all_jobs():
        for key in job["tasks"]:
            tid = _task_id(job, key)
            if not ids or job["master"] in ids or tid in ids:
                found.append((job, key))
    return found


def _field(option: str, argv: list[str]) -> str | None:
    for i, word in enumerate(argv):
        if word.startswith(option + "="):
            return word.split("=", 1)[1]
        if word == option and i + 1 < len(argv):
            return argv[i + 1]
    return None


def squeue(argv: list[str]) -> int:
    core.log_call("squeue", argv)
    if core.take("squeue_fail"):
        return _fail("slurm_load_jobs error: Unable to contact slurm controller (connect failure)")
    ids = [i for i in (_field("--jobs", argv) or _field("-j", argv) or "").split(",") if i]
    name = _field("--name", argv)
    fmt = _field("--format", argv) or _field("-o", argv) or "%i %T"
    long_format = _field("--Format", argv) or _field("-O", argv)
    if long_format:  # "Name:suffix,..." as clustrix asks it: the suffix follows the value
        fmt = "".join(
            "%" + _LONG_FIELDS[name] + suffix
            for name, _, suffix in (f.partition(":") for f in long_format.split(","))
        )
    all_states = "--states=all" in argv or _field("-t", argv) == "all"
    keep = float(core.knobs().get("min_job_age", 300))
    rows = []
    for job, key in _selected(ids):
        entry = job["tasks"][key]
        if name is not None and job["name"] != name:
            continue
        if entry["state"] in core.FINAL and not (all_states and core.visible(entry, keep)):
            continue
        values = {
            "i": _task_id(job, key),
            "T": entry["state"],
            "t": STATE_CODES[entry["state"]],
            "r": entry["reason"] if entry["state"] == "PENDING" else "None",
            "F": job["master"],
            "j": job["name"],
            "A": job["master"],
            "a": key if job["array"] else "N/A",
            "X": _wait_status(entry) if entry["state"] in core.FINAL else "0",
        }
        line = fmt
        for letter, value in values.items():
            line = line.replace(f"%{letter}", str(value))
        rows.append(line)
    if (
        len(ids) == 1
        and not rows
        and not any(j["master"] == ids[0].split("_")[0] for j in core.all_jobs())
    ):
        return _fail("slurm_load_jobs error: Invalid job id specified")
    if "--noheader" not in argv and "-h" not in argv:
        print("JOBID|STATE|REASON")
    for row in rows:
        print(row)
    return 0


# squeue --Format field names -> the letters above
_LONG_FIELDS = {"JobArrayID": "i", "State": "T", "Reason": "r", "exit_code": "X", "Name": "j"}


def _wait_status(entry: dict[str, Any]) -> str:
    """The raw wait status squeue's exit_code field shows: code << 8, or the signal."""
    if entry.get("signal"):
        return str(int(entry["signal"]))
    return str((int(entry.get("exit") or 0) & 0xFF) << 8)


def _exit_code(entry: dict[str, Any]) -> str:
    if entry["state"] == "CANCELLED":
        return f"0:{entry['signal'] or 15}" if entry.get("start") else "0:0"
    if entry["state"] == "OUT_OF_MEMORY":
        return "0:125"
    if entry["state"] in ("TIMEOUT", "NODE_FAIL", "PREEMPTED"):
        return "0:0"
    return f"{entry['exit'] or 0}:{entry['signal'] or 0}"


def sacct(argv: list[str]) -> int:
    core.log_call("sacct", argv)
    ids = [i for i in (_field("--jobs", argv) or _field("-j", argv) or "").split(",") if i]
    fmt = (_field("--format", argv) or _field("-o", argv) or "JobID,State,ExitCode").split(",")
    uid = os.getuid()
    for job, key in _selected(ids):
        entry = job["tasks"][key]
        state = entry["state"]
        if state == "CANCELLED":
            state = f"CANCELLED by {uid}"
        values = {
            "jobid": _task_id(job, key),
            "jobidraw": entry["env"]["SLURM_JOB_ID"],
            "jobname": job["name"],
            "state": state,
            "exitcode": _exit_code(entry) if entry["state"] in core.FINAL else "0:0",
            "partition": job["partition"],
        }
        print("|".join(str(values.get(f.lower(), "")) for f in fmt))
    return 0


def scancel(argv: list[str]) -> int:
    core.log_call("scancel", argv)
    for word in argv:
        if word.startswith("-"):
            continue
        master, _, index = word.partition("_")
        core.cancel(master, [int(index)] if index.isdigit() else None)
    return 0  # silent, even for unknown ids (as Slurm 22.05)


def scontrol(argv: list[str]) -> int:
    core.log_call("scontrol", argv)
    if argv[:2] == ["show", "config"]:
        size = int(core.knobs().get("max_array_size", 1001))
        print(f"Configuration data as of {time.strftime('%Y-%m-%dT%H:%M:%S')}")
        print("AccountingStorageType   = accounting_storage/slurmdbd")
        print("ClusterName             = fakecluster")
        print(f"MaxArraySize            = {size}")
        print("MaxJobCount             = 10000")
        print("MinJobAge               = 300 sec")
        print("SchedulerType           = sched/backfill")
        return 0
    return _fail(f"invalid entity: {' '.join(argv)} for keyword: show")


TOOLS = {
    "sbatch": sbatch,
    "squeue": squeue,
    "sacct": sacct,
    "scancel": scancel,
    "scontrol": scontrol,
}
