"""Public names read as ``clustrix.X`` (as httpx's do) and clustrix errors still pickle."""

from __future__ import annotations

import inspect
import pickle
import traceback
from typing import Any

import cloudpickle
import pytest

import clustrix
from clustrix import Client, ClustrixError, JobError, JobState

PUBLIC = [name for name in clustrix.__all__ if not name.startswith("__")]
EXCEPTIONS = [
    getattr(clustrix, name)
    for name in PUBLIC
    if inspect.isclass(getattr(clustrix, name))
    and issubclass(getattr(clustrix, name), BaseException)
]


@pytest.mark.parametrize("name", PUBLIC)
def test_each_public_name_lives_in_clustrix(name: str) -> None:
    obj = getattr(clustrix, name)
    assert obj.__module__ == "clustrix"
    assert obj.__qualname__ == name
    if inspect.isclass(obj) and obj is not JobState:  # an enum's repr is <enum 'JobState'>
        assert repr(obj) == f"<class 'clustrix.{name}'>"


def test_every_error_of_the_tree_is_public() -> None:
    names = {error.__name__ for error in EXCEPTIONS}
    assert len(names) == 22 and "JobFailedError" in names
    assert all(issubclass(error, ClustrixError) for error in EXCEPTIONS)


def a_raised(error_type: type[BaseException]) -> BaseException:
    """An instance of `error_type` carrying every field it has, raised and caught."""
    data: dict[str, Any] = {
        "job_id": "42.3",
        "state": JobState.TIMEOUT,
        "exit_code": 124,
        "stderr_tail": "last words\n",
        "reason": "walltime",
        "host": "login",
        "port": 2222,
        "username": "ada",
        "transient": True,
        "argv": ["sbatch", "job.sh"],
        "exit_status": 1,
        "stdout": "out",
        "stderr": "err",
        "type_name": "mylib.Odd",
        "traceback": "Traceback ...",
    }
    accepted = inspect.signature(error_type.__init__).parameters
    kwargs = {key: value for key, value in data.items() if key in accepted}
    try:
        raise error_type("it went wrong", **kwargs)
    except error_type as caught:
        return caught


@pytest.mark.parametrize("error_type", EXCEPTIONS, ids=lambda e: e.__name__)
@pytest.mark.parametrize("dumps", [pickle.dumps, cloudpickle.dumps], ids=["pickle", "cloud"])
def test_errors_round_trip_through_pickle(error_type: type[BaseException], dumps: Any) -> None:
    error = a_raised(error_type)
    blob = dumps(error)
    assert b"clustrix" in blob and b"clustrix._exceptions" not in blob
    copy = pickle.loads(blob)
    assert type(copy) is error_type
    assert str(copy) == str(error)
    assert vars(copy) == vars(error)


def test_a_traceback_names_clustrix_errors_by_their_public_name() -> None:
    error = a_raised(clustrix.JobFailedError)
    line = traceback.format_exception_only(type(error), error)[0]
    assert line.startswith("clustrix.JobFailedError: it went wrong")


@clustrix.cluster
def raise_job_error(job_id: str) -> None:
    raise clustrix.JobFailedError("an inner job failed", job_id=job_id, exit_code=3)


async def test_a_clustrix_error_raised_in_a_task_comes_back_as_itself() -> None:
    async with Client(cluster_type="local"):
        with pytest.raises(clustrix.JobFailedError) as caught:
            await raise_job_error("7")
    assert isinstance(caught.value, JobError)
    assert caught.value.job_id == "7" and caught.value.exit_code == 3
    assert "an inner job failed" in str(caught.value)
