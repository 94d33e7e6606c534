"""The loop corpus: each loop's verdict, and parallel results equal to sequential ones.

Run in-process (the executor forks its workers from the test itself) and through
`@cluster(cores=2)` on the local backend; tests/remote/test_loops_lab.py runs the same
corpus on the lab's Slurm.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

import clustrix
from clustrix._loops import analyse

from .loop_checks import outcome, probe_evidence, same_outcome
from .loop_corpus import CORPUS, PROBE_ENV, Case, print_in_body

IDS = [case.fn.__name__ for case in CORPUS]


def test_corpus_size() -> None:
    loops = sum(len(case.verdicts) for case in CORPUS)
    assert loops >= 40
    assert sum(sum(case.verdicts) for case in CORPUS) >= 20


@pytest.mark.parametrize("case", CORPUS, ids=IDS)
def test_verdict(case: Case) -> None:
    report = clustrix.explain(case.fn)
    assert [loop.parallel for loop in report.loops] == case.verdicts, str(report)
    assert [loop.lineno for loop in report.loops] == sorted(loop.lineno for loop in report.loops)
    for loop in report.loops:
        assert loop.reason
        assert loop.mode == ("cores" if loop.parallel else None)


@pytest.mark.parametrize("case", CORPUS, ids=IDS)
def test_parallel_equals_sequential_in_process(
    case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = outcome(case)
    monkeypatch.setenv(PROBE_ENV, str(tmp_path))
    got = outcome(case, analyse(case.fn).rewritten(2))
    assert same_outcome(expected, got), (expected, got)
    probe_evidence(tmp_path, case)


def test_prints_replayed_in_iteration_order(capfd: pytest.CaptureFixture[str]) -> None:
    print_in_body(list(range(12)))
    sequential = capfd.readouterr().out
    analyse(print_in_body).rewritten(2)(list(range(12)))
    assert capfd.readouterr().out == sequential


def test_corpus_on_the_local_backend(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    expected = [outcome(case) for case in CORPUS]
    monkeypatch.setenv(PROBE_ENV, str(tmp_path))

    async def run_all() -> list[tuple[str, object]]:
        async with clustrix.Client(cluster_type="local"):
            jobs = [clustrix.cluster(cores=2)(case.fn)(*case.args) for case in CORPUS]
            results = await asyncio.gather(*jobs, return_exceptions=True)
        return [
            ("raised", (type(r), str(r))) if isinstance(r, Exception) else ("value", r)
            for r in results
        ]

    got = asyncio.run(run_all())
    for case, want, have in zip(CORPUS, expected, got, strict=True):
        assert same_outcome(want, have), (case.fn.__name__, want, have)
        probe_evidence(tmp_path, case)
