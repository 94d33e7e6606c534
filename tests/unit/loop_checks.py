"""Checks shared by the loop corpus tests: exact equality and the probe's evidence."""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import clustrix

from .loop_corpus import Case


def same(a: Any, b: Any) -> bool:
    """Equal values of equal types; floats bit for bit, dicts in the same order."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return a.hex() == b.hex() or (math.isnan(a) and math.isnan(b))
    if isinstance(a, dict):
        return len(a) == len(b) and all(
            same(ka, kb) and same(va, vb)
            for (ka, va), (kb, vb) in zip(a.items(), b.items(), strict=True)
        )
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def outcome(case: Case, fn: Any = None) -> tuple[str, Any]:
    """("value", result) or ("raised", (type, message)) of running the case in-process."""
    args, kwargs = copy.deepcopy((case.args, case.kwargs))  # some cases change arguments
    try:
        return "value", (fn or case.fn)(*args, **kwargs)
    except Exception as exc:
        return "raised", (type(exc), str(exc))


def same_outcome(expected: tuple[str, Any], got: tuple[str, Any]) -> bool:
    if expected[0] != got[0]:
        return False
    if expected[0] == "raised":
        return bool(expected[1][0] is got[1][0] and expected[1][1] == got[1][1])
    return same(expected[1], got[1])


def probe_evidence(root: Path, case: Case) -> None:
    """Each parallel loop: >= 2 processes with overlapping iterations; others: one."""
    report = clustrix.explain(case.fn)
    name = case.fn.__name__
    parallel = {loop.lineno + 1 for loop in report.loops if loop.parallel}
    for directory in sorted(root.glob(f"{name}-*")):
        line = int(directory.name.rsplit("-", 1)[1])
        intervals: dict[str, list[tuple[float, float]]] = {}
        for record in directory.glob("rec-*"):
            rows = [tuple(map(float, r.split())) for r in record.read_text().splitlines()]
            intervals[record.name] = [(r[0], r[1]) for r in rows]
        if line not in parallel:
            assert len(intervals) == 1, f"{directory.name}: sequential loop ran in {intervals}"
            continue
        assert len(intervals) >= 2, f"{directory.name}: ran in one process only"
        pids = sorted(intervals)
        overlap = any(
            s1 < e2 and s2 < e1
            for i, a in enumerate(pids)
            for b in pids[i + 1 :]
            for s1, e1 in intervals[a]
            for s2, e2 in intervals[b]
        )
        assert overlap, f"{directory.name}: no two processes ran at the same time"
    for line in parallel:
        assert (root / f"{name}-{line}").is_dir(), f"{name}: parallel loop {line} left no probe"
