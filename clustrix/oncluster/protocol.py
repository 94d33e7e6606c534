"""The JSON the client and the agent exchange (``python _agent.py MODE < request``).

Types only: the client builds requests and reads answers through them, the agent
is checked against them (it imports them for type checking only, so nothing of
this module has to travel to a cluster). Keys of JSON objects are strings, so
element and task numbers appear as ``"3"`` where they are keys and as ints in lists.
"""

from __future__ import annotations

from typing import NotRequired, TypedDict


class RunQuery(TypedDict):
    """`status`: what the client wants to know about one run."""

    dir: str
    count: int
    chunksize: int
    elements: list[int]  # elements not settled yet
    tasks: list[int]  # tasks whose result was not collected yet
    tails: dict[str, str]  # elements known to have ended -> their log ("": the default)


class StatusRequest(TypedDict):
    """`status`: every live run at once; results up to `inline_limit` bytes inline."""

    runs: list[RunQuery]
    inline_limit: int


class ElementReport(TypedDict, total=False):
    """What an element's files say (an empty report: nothing is known yet)."""

    pid: int | None  # the job script's pid, once it started
    started: float | None  # when it wrote its pid (epoch seconds)
    alive: bool  # its process still runs (or runs on another node: the scheduler knows)
    local: bool  # it runs (ran) on the node the agent runs on
    exit: int | None  # the exit status it recorded
    cancelled: bool  # its cancel marker exists
    now: float  # the agent's clock when it looked


class RunStatus(TypedDict):
    """`status`: the answer about one run."""

    now: float
    exists: bool  # False: the run directory is gone
    elements: dict[str, ElementReport]
    results: dict[str, str | None]  # base64 of the framed result; None: read the file
    timeouts: list[int]  # tasks without a result that the runner stopped at their limit
    stderr: dict[str, str]  # stderr tails of tasks without a result whose element ended


StatusAnswer = dict[str, RunStatus]  # by run directory


class WaitRequest(StatusRequest):
    """`wait`: a `StatusRequest` whose call returns as soon as one of its `tasks` has a
    result file or one of its `elements` an exit file, or after `timeout` seconds."""

    timeout: float
    watch: NotRequired[str]  # "auto" (inotify where it sees every write) or "stat"


class WaitAnswer(TypedDict):
    """`wait`: whether a watched file appeared, how the agent watched, and the status."""

    woke: bool  # False: the timeout passed first
    watch: str  # "inotify" or "stat"
    runs: StatusAnswer


class CancelQuery(TypedDict):
    """`cancel`: elements of one run to stop (or keep from starting)."""

    dir: str
    elements: list[int]


class CancelRequest(TypedDict):
    runs: list[CancelQuery]


class CancelAnswer(TypedDict):
    killed: list[int]  # process groups killed
    prevented: dict[str, list[int]]  # by run directory: elements that will never start


class OutputsQuery(TypedDict):
    """`outputs`: tasks of one run whose stdout and stderr to return."""

    dir: str
    tasks: list[int]


class OutputsRequest(TypedDict):
    runs: list[OutputsQuery]
    limit: NotRequired[int]  # bytes of each stream (the last ones); default 64 KiB


OutputsAnswer = dict[str, dict[str, list[str]]]  # by run directory, task -> [out, err]
