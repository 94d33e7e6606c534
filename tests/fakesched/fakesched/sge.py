"""Fake Son of Grid Engine 8.1.9: qsub, qstat, qacct, qdel (the parts clustrix uses).

Output formats follow the lab's recordings (tests/data/sge, LAB.md): ``qsub -terse``,
``qstat -xml`` (live jobs only; finished ones vanish at once), ``qstat -j``, ``qacct -j``
records (``failed 100 : assumedly after job`` / ``exit_status 137`` after a qdel,
``failed 37`` for h_rt), ``qdel`` messages.
"""

from __future__ import annotations

import os
import socket
import sys
import time
from typing import Any
from xml.sax.saxutils import escape

from . import core

QUEUES = ("all.q",)
VALUED = {
    "N",
    "S",
    "o",
    "e",
    "j",
    "pe",
    "l",
    "q",
    "A",
    "t",
    "tc",
    "wd",
    "M",
    "m",
    "P",
    "p",
    "hold_jid",
    "v",
    "sync",
    "b",
}
FLAGS = {"terse", "h", "cwd", "V", "notify", "now"}
FAILED_TEXT = {
    37: "37  : qmaster enforced h_rt, h_cpu, or h_vmem limit",
    100: "100 : assumedly after job",
}


def _fail(message: str, code: int = 1) -> int:
    sys.stderr.write(message + "\n")
    return code


def parse_options(words: list[str]) -> tuple[dict[str, Any], list[str], str | None]:
    options: dict[str, Any] = {"l": []}
    i = 0
    while i < len(words):
        word = words[i]
        i += 1
        if not word.startswith("-"):
            return options, words[i - 1 :], None
        name = word[1:]
        if name in FLAGS:
            options[name] = True
        elif name in VALUED:
            if i >= len(words):
                return options, [], f'qsub: option "-{name}" requires an argument'
            value = words[i]
            if name == "pe":
                value, i = f"{words[i]} {words[i + 1]}", i + 1
            i += 1
            if name == "l":
                options["l"] = [*options["l"], *value.split(",")]
            else:
                options[name] = value
        else:
            return options, [], f'qsub: Unknown option "-{name}"'
    return options, [], None


def _expand(path: str, job_id: str, task: str, name: str) -> str:
    return (
        path.replace("$JOB_ID", job_id)
        .replace("$TASK_ID", task)
        .replace("$JOB_NAME", name)
        .replace("$USER", core.user())
    )


def qsub(argv: list[str]) -> int:
    core.log_call("qsub", argv)
    refuse = core.refusal()
    if refuse:
        return _fail(refuse)
    options, rest, error = parse_options(argv)
    if error:
        return _fail(error, 7)
    if not rest:
        return _fail("qsub: no script given (reading from stdin is not faked)", 7)
    script = os.path.abspath(rest[0])
    if not os.path.isfile(script):
        return _fail(
            f"Unable to read script file because of error: error opening {rest[0]}: "
            "No such file or directory"
        )
    in_script, _, error = parse_options(core.directives(script, "#$"))
    if error:
        return _fail(error, 7)
    resources = [*in_script.pop("l"), *options.pop("l")]
    options = {**in_script, **options, "l": resources}
    queue = options.get("q", QUEUES[0])
    if queue not in QUEUES:
        return _fail(
            f"Unable to run job: Job was rejected because job requests unknown queue "
            f'"{queue}".\nExiting.'
        )
    requests = dict(item.partition("=")[::2] for item in resources)
    limit = core.parse_hms(requests["h_rt"]) if "h_rt" in requests else None
    array = None
    if "t" in options:
        first, _, last = str(options["t"]).partition("-")
        last, _, step = last.partition(":")
        array = list(range(int(first), int(last or first) + 1, int(step or 1)))
    name = str(options.get("N", os.path.basename(script)))
    workdir = os.getcwd() if options.get("cwd") else os.path.expanduser("~")
    number = core.new_id()
    master = str(number)
    slots = int(str(options.get("pe", "x 1")).split()[1])
    tasks = {}
    for index in array or [0]:
        task_text = str(index) if array else "undefined"
        out_default = f"{name}.o{master}" + (f".{index}" if array else "")
        out = _expand(str(options.get("o", out_default)), master, task_text, name)
        err = (
            out
            if options.get("j") in ("y", "yes")
            else _expand(
                str(options.get("e", out_default.replace(".o", ".e", 1))), master, task_text, name
            )
        )
        env = {
            "JOB_ID": master,
            "JOB_NAME": name,
            "SGE_TASK_ID": task_text,
            "SGE_TASK_FIRST": str(array[0]) if array else "undefined",
            "SGE_TASK_LAST": str(array[-1]) if array else "undefined",
            "SGE_TASK_STEPSIZE": "1" if array else "undefined",
            "NSLOTS": str(slots),
            "QUEUE": queue,
            "SGE_O_WORKDIR": os.getcwd(),
            "HOSTNAME": socket.gethostname(),
        }
        tasks[str(index)] = core.task(
            index, os.path.join(workdir, out), os.path.join(workdir, err), env
        )
    if core.take("vanish"):
        print(
            master if options.get("terse") else f'Your job {master} ("{name}") has been submitted'
        )
        return 0
    job = {
        "master": master,
        "name": name,
        "script": script,
        "workdir": workdir,
        "array": bool(array),
        "throttle": int(options["tc"]) if "tc" in options else None,
        "time_limit": limit,
        "queue": queue,
        "category": _category(resources, options.get("pe")),
        "slots": slots,
        "blocked": "held" if options.get("h") else None,
        "tasks": tasks,
    }
    core.record(job)
    if core.take("lost_answer"):
        return _fail(
            "error: failed receiving gdi request response for mid=2 (got syncron "
            "message receive timeout error)."
        )
    if options.get("terse"):
        print(f"{master}.{array[0]}-{array[-1]}:1" if array else master)
    elif array:
        print(f'Your job-array {master}.{array[0]}-{array[-1]}:1 ("{name}") has been submitted')
    else:
        print(f'Your job {master} ("{name}") has been submitted')
    return 0


def _category(resources: list[str], pe: str | None) -> str:
    """qacct's ``category``: the job's own ``-l`` and ``-pe`` requests."""
    words = [f"-l {','.join(resources)}"] if resources else []
    return " ".join(words + ([f"-pe {pe}"] if pe else []))


def _state(job: dict[str, Any], entry: dict[str, Any]) -> str:
    if entry["state"] == "RUNNING":
        return "dr" if entry.get("cancel") else "r"
    return "hqw" if job.get("blocked") else "qw"


def _stamp(seconds: float | None) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(seconds or time.time()))


def qstat(argv: list[str]) -> int:
    core.log_call("qstat", argv)
    if "-j" in argv:
        return _qstat_j(argv[argv.index("-j") + 1])
    if core.take("qstat_fail"):
        return _fail(
            "error: failed receiving gdi request response for mid=1 (got syncron "
            "message receive timeout error)."
        )
    running, pending = [], []
    for job in core.all_jobs():
        waiting = []
        for key, entry in job["tasks"].items():
            if entry["state"] in core.FINAL:
                continue  # finished jobs leave qstat at once
            task = f"      <tasks>{key}</tasks>\n" if job["array"] else ""
            if entry["state"] == "RUNNING":
                running.append(
                    f'    <job_list state="running">\n'
                    f"      <JB_job_number>{job['master']}</JB_job_number>\n"
                    f"      <JAT_prio>0.50000</JAT_prio>\n"
                    f"      <JB_name>{escape(job['name'])}</JB_name>\n"
                    f"      <JB_owner>{core.user()}</JB_owner>\n"
                    f"      <state>{_state(job, entry)}</state>\n"
                    f"      <JAT_start_time>{_stamp(entry['start'])}</JAT_start_time>\n"
                    f"      <queue_name>{job['queue']}@fake</queue_name>\n"
                    f"      <slots>{job['slots']}</slots>\n{task}"
                    f"    </job_list>\n"
                )
            else:
                waiting.append(int(key))
        if waiting:
            tasks = ""
            if job["array"]:
                tasks = f"      <tasks>{_ranges(waiting)}</tasks>\n"
            pending.append(
                f'    <job_list state="pending">\n'
                f"      <JB_job_number>{job['master']}</JB_job_number>\n"
                f"      <JAT_prio>0.50000</JAT_prio>\n"
                f"      <JB_name>{escape(job['name'])}</JB_name>\n"
                f"      <JB_owner>{core.user()}</JB_owner>\n"
                f"      <state>{_state(job, {'state': 'PENDING'})}</state>\n"
                f"      <JB_submission_time>{_stamp(job['submit'])}</JB_submission_time>\n"
                f"      <queue_name></queue_name>\n"
                f"      <slots>{job['slots']}</slots>\n{tasks}"
                f"    </job_list>\n"
            )
    sys.stdout.write(
        "<?xml version='1.0'?>\n"
        '<job_info  xmlns:xsd="http://arc.liv.ac.uk/repos/darcs/sge/source/dist/util/'
        'resources/schemas/qstat/qstat.xsd">\n'
        f"  <queue_info>\n{''.join(running)}  </queue_info>\n"
        f"  <job_info>\n{''.join(pending)}  </job_info>\n"
        "</job_info>\n"
    )
    return 0


def _ranges(indices: list[int]) -> str:
    """SGE's ``7-10:1`` for consecutive indices, else a comma list."""
    indices = sorted(indices)
    if indices == list(range(indices[0], indices[-1] + 1)):
        return f"{indices[0]}-{indices[-1]}:1" if len(indices) > 1 else str(indices[0])
    return ",".join(map(str, indices))


def _matching(ident: str) -> list[dict[str, Any]]:
    return [j for j in core.all_jobs() if j["master"] == ident or j["name"] == ident]


def _qstat_j(ident: str) -> int:
    live = [
        j
        for j in _matching(ident)
        if any(t["state"] not in core.FINAL for t in j["tasks"].values())
    ]
    if not live:
        return _fail(f"Following jobs do not exist or permissions are not sufficient: \n{ident}")
    for job in live:
        print("=" * 62)
        print(f"job_number:                 {job['master']}")
        print(f"owner:                      {core.user()}")
        print(f"job_name:                   {job['name']}")
        print(f"script_file:                {os.path.basename(job['script'])}")
    return 0


def _record(job: dict[str, Any], key: str, entry: dict[str, Any]) -> str:
    state = entry["state"]
    if state == "TIMEOUT" or state == "OUT_OF_MEMORY":
        failed, exit_status = FAILED_TEXT[37], 137
    elif state == "CANCELLED":
        failed, exit_status = FAILED_TEXT[100], 137
    else:
        failed = "0"
        exit_status = entry["exit"] if not entry["signal"] else 128 + entry["signal"]
    wall = round((entry["end"] or 0) - (entry["start"] or entry["end"] or 0))
    fmt = "%a %b %d %H:%M:%S %Y"
    requests = dict(
        item.partition("=")[::2]
        for c in job["category"].split("-l ")[1:2]
        for item in c.split()[0].split(",")
    )
    vmem = requests.get("h_vmem", "0") if state == "OUT_OF_MEMORY" else "4.836M"
    lines = [
        ("qname", job["queue"]),
        ("hostname", "fake"),
        ("owner", core.user()),
        ("jobname", job["name"]),
        ("jobnumber", job["master"]),
        ("taskid", key if job["array"] else "undefined"),
        ("qsub_time", time.strftime(fmt, time.localtime(job["submit"]))),
        ("start_time", time.strftime(fmt, time.localtime(entry["start"] or job["submit"]))),
        ("end_time", time.strftime(fmt, time.localtime(entry["end"]))),
        (
            "granted_pe",
            job["category"].split("-pe ")[1].split()[0] if "-pe " in job["category"] else "NONE",
        ),
        ("slots", str(job["slots"])),
        ("failed", failed),
        ("exit_status", str(exit_status)),
        ("ru_wallclock", f"{wall}s"),
        ("maxvmem", vmem),
        ("category", job["category"] or "NONE"),
    ]
    return "=" * 62 + "\n" + "".join(f"{k:<13}{v}\n" for k, v in lines)


def qacct(argv: list[str]) -> int:
    core.log_call("qacct", argv)
    if "-j" not in argv or argv.index("-j") + 1 >= len(argv):
        return _fail("usage: qacct -j JOB")
    ident = argv[argv.index("-j") + 1]
    records = [
        _record(job, key, entry)
        for job in _matching(ident)
        for key, entry in job["tasks"].items()
        if entry["state"] in core.FINAL and not entry.get("cancelled_pending")
    ]
    if not records:
        what = "id" if ident.isdigit() else "name"
        return _fail(f"error: job {what} {ident} not found")
    sys.stdout.write("".join(records))
    return 0


def qdel(argv: list[str]) -> int:
    core.log_call("qdel", argv)
    code = 0
    for word in argv:
        if word.startswith("-"):
            continue
        master, _, index = word.partition(".")
        job = core.load(master)
        if job is None or not core.cancel(master, [int(index)] if index.isdigit() else None):
            if job is None:
                sys.stderr.write(f'denied: job "{word}" does not exist\n')
                code = 1
            continue
        if index:
            print(f"{core.user()} has registered the job-array task {word} for deletion")
        else:
            print(f"{core.user()} has registered the job {master} for deletion")
    return code


TOOLS = {"qsub": qsub, "qstat": qstat, "qacct": qacct, "qdel": qdel}
