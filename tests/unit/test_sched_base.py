"""Shared scheduler value objects and helpers, and the registry."""

from __future__ import annotations

import pytest

from clustrix._exceptions import ConfigError
from clustrix.schedulers import Scheduler, get_scheduler, pbs
from clustrix.schedulers.base import (
    ArraySpec,
    check_path,
    directive_value,
    expand_indices,
    extra_options,
    signal_exit_code,
    unique_sorted_ids,
)
from clustrix.schedulers.sge import GridEngine
from clustrix.schedulers.slurm import SLURM


def test_get_scheduler() -> None:
    assert get_scheduler("slurm") is SLURM
    assert get_scheduler("sge") == GridEngine("smp")
    assert get_scheduler("sge", sge_pe="mpi") == GridEngine("mpi")
    assert get_scheduler("pbs") == pbs.TORQUE
    with pytest.raises(ConfigError, match="unknown batch scheduler"):
        get_scheduler("lsf")


@pytest.mark.parametrize("scheduler", [SLURM, GridEngine(), pbs.PRO, pbs.TORQUE])
def test_every_scheduler_provides_the_protocol(scheduler: Scheduler) -> None:
    members = [
        "directives", "submit_argv", "parse_submit", "element_job_id", "log_paths",
        "status_argv", "parse_status", "status_error_is_benign", "accounting_argv",
        "parse_accounting", "cancel_argv", "lookup_argv", "parse_lookup",
    ]  # fmt: skip
    assert all(callable(getattr(scheduler, name)) for name in members)
    assert scheduler.NAME in ("slurm", "sge", "pbs")
    assert f"{scheduler.NAME}.sh.j2" == scheduler.TEMPLATE
    assert scheduler.DIRECTIVE_PREFIX in ("#SBATCH", "#$", "#PBS")
    assert scheduler.STATE_MAP and scheduler.element_index_expr


@pytest.mark.parametrize(
    ("spec", "indices"),
    [("6-9%4", [6, 7, 8, 9]), ("1,3-5", [1, 3, 4, 5]), ("7-10:1", [7, 8, 9, 10]),
     ("1-9:4", [1, 5, 9]), ("12", [12]), ("", [])],
)  # fmt: skip
def test_expand_indices(spec: str, indices: list[int]) -> None:
    assert expand_indices(spec) == indices


def test_unique_sorted_ids_sorts_numerically() -> None:
    assert unique_sorted_ids(["10", "9", "9_1", "10", "x"]) == ["x", "9", "9_1", "10"]


def test_signal_exit_code() -> None:
    assert signal_exit_code(0, 9) == 137
    assert signal_exit_code(3, 0) == 3


def test_directive_values() -> None:
    assert directive_value("qos", 5) == "5"
    for bad in ("a b", "a\tb", "x'y", 'x"y', "$(id)", "a;b", "a#b", "a\\b", "`id`", "\x07"):
        with pytest.raises(ConfigError):
            directive_value("qos", bad)
    for bad_value in (None, True, ""):
        with pytest.raises(ConfigError):
            directive_value("qos", bad_value)


def test_extra_options() -> None:
    assert extra_options({"--qos": "low", "exclusive": True, "mail": None, "off": False}) == [
        ("qos", "low"),
        ("exclusive", None),
        ("mail", None),
    ]
    with pytest.raises(ConfigError, match="extra option name"):
        extra_options({"1x": "a"})


def test_check_path() -> None:
    assert check_path("log_dir", "/a/b/") == "/a/b"
    for bad in ("a/b", "/a b", "/a$HOME", "/a\nb"):
        with pytest.raises(ConfigError):
            check_path("log_dir", bad)


def test_array_spec_rejects_bools() -> None:
    with pytest.raises(ConfigError):
        ArraySpec(True)
    with pytest.raises(ConfigError):
        ArraySpec(3, True)
