"""The default chunksize rule (`clustrix.backends.chunking.default_chunksize`)."""

from __future__ import annotations

import math

import pytest

from clustrix.backends.chunking import (
    ELEMENT_BUDGET,
    SHORT_TASK,
    TARGET_ELEMENTS,
    default_chunksize,
)


def test_the_benchmark_sweep_is_packed_into_about_the_target_elements() -> None:
    # 500 tasks declared five minutes: the 500-task benchmark.
    size = default_chunksize(500, 300)
    elements = math.ceil(500 / size)
    assert size > 1
    assert TARGET_ELEMENTS <= elements <= 2 * TARGET_ELEMENTS
    assert size * 300 <= ELEMENT_BUDGET


@pytest.mark.parametrize("time", [None, SHORT_TASK + 1, 3600, 86400])
def test_long_or_undeclared_tasks_keep_one_task_per_element(time: int | None) -> None:
    assert default_chunksize(500, time) == 1
    assert default_chunksize(10_000, time) == 1


def test_no_element_asks_for_more_than_the_budget() -> None:
    for time in (1, 10, 60, 299, 300, 301, SHORT_TASK):
        for count in (1, 2, 17, 100, 500, 10_000, 1_000_000):
            size = default_chunksize(count, time)
            assert size * time <= max(ELEMENT_BUDGET, time), (count, time, size)


def test_a_sweep_no_larger_than_the_target_runs_one_task_per_element() -> None:
    for count in range(1, TARGET_ELEMENTS + 1):
        assert default_chunksize(count, 60) == 1


def test_short_tasks_are_spread_over_the_target_when_the_budget_allows() -> None:
    assert default_chunksize(100, 60) == math.ceil(100 / TARGET_ELEMENTS)
    assert default_chunksize(TARGET_ELEMENTS * 3, 1) == 3


def test_the_backend_limit_on_elements_always_holds() -> None:
    # Kubernetes caps pods per Indexed Job: a larger sweep is chunked even if long.
    assert default_chunksize(5000, None, max_elements=1000) == 5
    assert default_chunksize(5000, 3600, max_elements=1000) == 5
    assert default_chunksize(999, None, max_elements=1000) == 1
    size = default_chunksize(1_000_000, 300, max_elements=1000)
    assert math.ceil(1_000_000 / size) <= 1000


def test_a_sweep_has_at_least_one_task() -> None:
    with pytest.raises(ValueError, match="at least one task"):
        default_chunksize(0, 60)
