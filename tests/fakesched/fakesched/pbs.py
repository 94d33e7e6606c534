"""Fake PBS in three flavours, chosen by the ``pbs_flavour`` knob (default ``torque``).

* ``torque``: ids ``123.fakeserver`` / ``123[].fakeserver`` / ``123[4].fakeserver``,
  ``qstat -f [-t]`` text with ``exit_status`` (-11 walltime, -10 memory, 256+N signal).
* ``pro``: PBS Pro/OpenPBS, ``-J`` arrays, ``qstat -x -f -F json -t`` with
  ``Exit_status`` (-29 walltime, -27 memory), finished jobs kept (F, subjobs X),
  ``qselect -x -N NAME``.
* ``wrappers``: Slurm's Torque wrappers as on the lab (tests/data/pbs): bare ids,
  array tasks under ids of their own, ``job_state`` C without an exit status,
  ``qstat --version`` -> ``Unknown option: version``.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

from . import core

SERVER = "fakeserver"
QUEUE = {"torque": "batch", "pro": "workq", "wrappers": "debug"}
VALUED = {"o", "e", "j", "t", "J", "N", "l", "q", "A", "W", "v", "m", "M", "p", "S"}
FLAGS = {"h", "V"}
LETTER = {"PENDING": "Q", "RUNNING": "R"}
EXEC_CODES = {
    "torque": {"TIMEOUT": -11, "OUT_OF_MEMORY": -10, "NODE_FAIL": -3},
    "pro": {"TIMEOUT": -29, "OUT_OF_MEMORY": -27, "NODE_FAIL": -3},
}


def flavour() -> str:
    return str(core.knobs().get("pbs_flavour", "torque"))


def _fail(message: str, code: int = 1) -> int:
    sys.stderr.write(message + "\n")
    return code


def parse_options(words: list[str]) -> tuple[dict[str, Any], list[str], str | None]:
    options: dict[str, Any] = {"l": []}
    i = 0
    while i < len(words):
        word = words[i]
        i += 1
        if not word.startswith("-") or len(word) < 2:
            return options, words[i - 1 :], None
        name, inline = word[1], word[2:]
        if name in FLAGS and not inline:
            options[name] = True
        elif name in VALUED:
            if not inline:
                if i >= len(words):
                    return options, [], f"qsub: option requires an argument -- '{name}'"
                inline, i = words[i], i + 1
            if name == "l":
                options["l"] = [*options["l"], *inline.split(",")]
            else:
                options[name] = inline
        else:
            return options, [], f"qsub: invalid option -- '{word[1:]}'"
    return options, [], None


def _ids(number: int, array: bool, index: int | None, kind: str) -> str:
    if kind == "wrappers":
        return str(number + (index or 0))
    if not array:
        return f"{number}.{SERVER}"
    return f"{number}[{'' if index is None else index}].{SERVER}"


def qsub(argv: list[str]) -> int:
    core.log_call("qsub", argv)
    kind = flavour()
    refuse = core.refusal()
    if refuse:
        return _fail(refuse)
    options, rest, error = parse_options(argv)
    if error:
        return _fail(error, 2)
    if not rest:
        return _fail("qsub: no script file (reading from stdin is not faked)", 2)
    script = os.path.abspath(rest[0])
    in_script, _, error = parse_options(core.directives(script, "#PBS"))
    if error:
        return _fail(error, 2)
    resources = [*in_script.pop("l"), *options.pop("l")]
    options = {**in_script, **options}
    requests = dict(item.partition("=")[::2] for item in resources)
    queue = options.get("q", QUEUE[kind])
    if queue != QUEUE[kind]:
        return _fail(
            {
                "torque": "qsub: submit error (Unknown queue MSG=cannot locate queue)",
                "pro": "qsub: Unknown queue",
                "wrappers": "There was an error running the Slurm sbatch command.\n"
                "sbatch: error: Batch job submission failed: Invalid partition name specified",
            }[kind],
            170 if kind == "pro" else 1,
        )
    limit = None
    if "walltime" in requests:
        limit = core.parse_hms(requests["walltime"])
        if limit is None:
            return _fail(
                f"qsub: Illegal attribute or resource value Resource_List.walltime "
                f"({requests['walltime']})",
                188,
            )
    spec = options.get("J" if kind == "pro" else "t")
    array = None
    if spec:
        body, _, throttle = str(spec).partition("%")
        first, _, last = body.partition("-")
        array = (
            list(range(int(first), int(last or first) + 1)),
            int(throttle) if throttle else None,
        )
    name = str(options.get("N", os.path.basename(script)))
    indices = array[0] if array else [0]
    number = core.new_id(len(indices) if kind == "wrappers" else 1)
    master = _ids(number, bool(array), None, kind)
    workdir = os.path.expanduser("~")
    tasks = {}
    for index in indices:
        job_id = _ids(number, bool(array), index if array else None, kind)
        out = str(options.get("o", f"{name}.o{number}"))
        err = str(options.get("e", f"{name}.e{number}"))
        if array and kind == "torque":
            out, err = f"{out}-{index}", f"{err}-{index}"
        if kind == "pro":
            out = out.replace("^array_index^", str(index))
            err = err.replace("^array_index^", str(index))
        if options.get("j") == "oe":
            err = out
        env = {
            "PBS_JOBID": job_id,
            "PBS_JOBNAME": name,
            "PBS_O_WORKDIR": os.getcwd(),
            "PBS_QUEUE": queue,
            "PBS_ENVIRONMENT": "PBS_BATCH",
        }
        if array and kind == "torque":
            env["PBS_ARRAYID"] = str(index)
        elif array:
            env.update(PBS_ARRAY_INDEX=str(index), PBS_ARRAY_ID=master)
        tasks[str(index)] = core.task(
            index, os.path.join(workdir, out), os.path.join(workdir, err), env
        )
        tasks[str(index)]["id"] = job_id
    if core.take("vanish"):
        print(master)
        return 0
    job = {
        "master": master,
        "name": name,
        "script": script,
        "workdir": workdir,
        "array": bool(array),
        "throttle": array[1] if array else None,
        "time_limit": limit,
        "queue": queue,
        "flavour": kind,
        "blocked": "held" if options.get("h") else None,
        "tasks": tasks,
    }
    core.record(job)
    if core.take("lost_answer"):
        return _fail("qsub: End of File (reply from the server was lost)", 1)
    print(master)
    return 0


def _selected(
    ids: list[str], subjobs: bool
) -> tuple[list[tuple[dict[str, Any], str | None]], bool]:
    """(job, task key or None for an array's parent) for `ids`; whether any was unknown."""
    jobs = core.all_jobs()
    found: list[tuple[dict[str, Any], str | None]] = []
    unknown = False
    for ident in ids or [None]:  # type: ignore[list-item]
        hit = False
        for job in jobs:
            for key, entry in job["tasks"].items():
                whole = ident is None or ident == job["master"]
                if whole or ident == entry["id"]:
                    if job["array"] and whole and not subjobs and job["flavour"] != "wrappers":
                        if (job, None) not in found:
                            found.append((job, None))
                    elif (job, key) not in found:
                        found.append((job, key))
                    hit = True
        unknown = unknown or not hit
    return found, unknown


def _attributes(job: dict[str, Any], key: str | None, kind: str) -> dict[str, Any]:
    entries = list(job["tasks"].values()) if key is None else [job["tasks"][key]]
    entry = entries[0]
    states = {e["state"] for e in entries}
    attrs: dict[str, Any] = {
        "Job_Name": job["name"],
        "Job_Owner": f"{core.user()}@fake",
        "queue": job["queue"],
    }
    if key is None:  # an array's parent
        attrs["job_state"] = (
            "B"
            if "RUNNING" in states
            else ("Q" if states <= {"PENDING"} else ("F" if states <= core.FINAL else "B"))
        )
        return attrs
    state = entry["state"]
    if state not in core.FINAL:
        attrs["job_state"] = "H" if job.get("blocked") and kind != "wrappers" else LETTER[state]
        return attrs
    if kind == "wrappers":
        attrs["job_state"] = "C"
        return attrs
    attrs["job_state"] = "C" if kind == "torque" else ("X" if job["array"] else "F")
    if entry.get("cancelled_pending"):
        attrs["comment"] = "Job deleted as result of a qdel"
        return attrs
    if state in EXEC_CODES[kind]:
        attrs["Exit_status"] = EXEC_CODES[kind][state]
    elif state == "CANCELLED":
        attrs["Exit_status"] = 256 + (entry["signal"] or 15)
        attrs["comment"] = "Job run and terminated by qdel"
    elif entry["signal"]:
        attrs["Exit_status"] = 256 + entry["signal"]
    else:
        attrs["Exit_status"] = entry["exit"]
    return attrs


def qstat(argv: list[str]) -> int:
    core.log_call("qstat", argv)
    kind = flavour()
    if "--version" in argv:
        if kind == "wrappers":
            return _fail("Unknown option: version\nUsage:\n    qstat [-f] [-a|-i|-r] [job_id...]")
        print("pbs_version = 2022.1.1" if kind == "pro" else "Version: 6.1.3\nCommit: fake")
        return 0
    if core.take("qstat_fail"):
        return _fail(f"Connection refused\nqstat: cannot connect to server {SERVER} (errno=111)", 2)
    if kind == "wrappers" and "-x" in argv:
        return _fail("Unknown option: x", 2)
    ids = [word for word in argv if not word.startswith("-") and word != "json"]
    found, unknown = _selected(ids, "-t" in argv or kind == "pro")
    keep = float(core.knobs().get("min_job_age", 300))
    history = "-x" in argv
    shown = [
        (job, key)
        for job, key in found
        if key is None or history or core.visible(job["tasks"][key], keep)
    ]
    if kind == "pro" and "json" in argv:
        jobs = {
            (j["master"] if key is None else j["tasks"][key]["id"]): _attributes(j, key, kind)
            for j, key in shown
        }
        print(
            json.dumps(
                {
                    "timestamp": int(time.time()),
                    "pbs_version": "2022.1.1",
                    "pbs_server": SERVER,
                    "Jobs": jobs,
                },
                indent=4,
            )
        )
    else:
        for job, key in shown:
            name = job["master"] if key is None else job["tasks"][key]["id"]
            print(f"Job Id: {name}")
            for attr, value in _attributes(job, key, kind).items():
                print(f"    {'exit_status' if attr == 'Exit_status' else attr} = {value}")
            print()
    if unknown and ids:
        for ident in ids:
            if (
                not any(
                    ident in (j["master"], *(t["id"] for t in j["tasks"].values()))
                    for j in core.all_jobs()
                )
                and kind != "wrappers"
            ):
                sys.stderr.write(f"qstat: Unknown Job Id {ident}\n")
        return 153
    return 0


def qdel(argv: list[str]) -> int:
    core.log_call("qdel", argv)
    code = 0
    for ident in (w for w in argv if not w.startswith("-")):
        hit = False
        for job in core.all_jobs():
            if ident == job["master"] or (
                job["flavour"] == "wrappers" and ident.split("_")[0] == job["master"]
            ):
                core.cancel(job["master"], None)  # the wrappers cancel a whole array
                hit = True
            for key, entry in job["tasks"].items():
                if ident == entry["id"] and ident != job["master"]:
                    core.cancel(job["master"], [int(key)])
                    hit = True
        if not hit:
            if flavour() != "wrappers":
                sys.stderr.write(f"qdel: Unknown Job Id {ident}\n")
            code = 153 if flavour() != "wrappers" else 1
    return code


def qselect(argv: list[str]) -> int:
    core.log_call("qselect", argv)
    name = argv[argv.index("-N") + 1] if "-N" in argv else None
    for job in core.all_jobs():
        if name is None or job["name"] == name:
            print(job["master"])
    return 0


TOOLS = {"qsub": qsub, "qstat": qstat, "qdel": qdel, "qselect": qselect}
