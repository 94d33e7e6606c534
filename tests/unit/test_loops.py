"""Loop parallelization beyond the corpus: options, explain(), the rewrite, the executor."""

from __future__ import annotations

import os
import traceback
from pathlib import Path

import pytest

import clustrix
from clustrix import ConfigError, cluster
from clustrix._loops import analyse, shipped_function
from clustrix.oncluster.parallel_loop import allocated_cores, run_loop


def squares(xs, scale=1, *, offset=0):
    """Squares, scaled."""
    out = []
    for x in xs:
        out.append((x * x * scale + offset, os.getpid()))
    return out


def failing(xs):
    out = []
    for x in xs:
        out.append(10 // (x - 5))  # fails at x == 5 (iteration 5 when xs = range)
    return out


def make_closure(factor: int):
    def scaled(xs):
        out = []
        for x in xs:
            out.append(x * factor)
        return out

    return scaled


class Base:
    def values(self, xs):
        return [x for x in xs]


class Child(Base):
    def values(self, xs):
        out = []
        for x in xs:
            out.append(-x)
        return super().values(xs) + out


def test_parallel_option_accepts_the_documented_values() -> None:
    for value in (None, True, False, "cores", "sweep"):
        assert cluster(parallel=value)(squares).cluster_options.parallel == value
    assert cluster(squares).cluster_options.parallel is None  # automatic
    with pytest.raises(ConfigError, match="parallel='threads'"):
        cluster(parallel="threads")
    assert clustrix.ClusterConfig().auto_parallel is True


def test_explain_reports_loops_in_source_order_with_reasons() -> None:
    report = clustrix.explain(cluster(cores=4)(squares))
    (loop,) = report.loops
    assert (loop.lineno, loop.parallel, loop.mode) == (20, True, "cores")
    assert "out.append()" in loop.reason
    assert str(report).startswith("squares: 1 of 1 for loop(s) run in parallel\n  line 20:")


def test_explain_honours_parallel_false_and_auto_parallel() -> None:
    off = clustrix.explain(cluster(parallel=False)(squares)).loops[0]
    assert (off.parallel, off.mode) == (False, None) and off.reason.startswith("parallel=False")
    config = clustrix.ClusterConfig(auto_parallel=False)
    auto_off = clustrix.explain(cluster(config=config)(squares)).loops[0]
    assert not auto_off.parallel and "auto_parallel is off" in auto_off.reason
    forced = clustrix.explain(cluster(config=config, parallel=True)(squares)).loops[0]
    assert forced.parallel


def test_explain_without_source() -> None:
    report = clustrix.explain(len)
    assert report.loops == () and "not a Python function" in str(report)


def test_shipped_function_is_the_original_when_disabled() -> None:
    assert shipped_function(squares, False, True, 4) is squares
    assert shipped_function(squares, None, False, 4) is squares
    assert shipped_function(squares, None, True, 4) is not squares


def test_the_rewrite_keeps_the_functions_identity() -> None:
    rewritten = analyse(squares).rewritten(2)
    assert rewritten.__name__ == "squares" and rewritten.__qualname__ == "squares"
    assert rewritten.__doc__ == squares.__doc__ and rewritten.__defaults__ == (1,)
    assert rewritten.__kwdefaults__ == {"offset": 0}
    assert rewritten.__globals__ is squares.__globals__
    values = [v for v, _ in rewritten(range(8), 2, offset=1)]
    assert values == [v for v, _ in squares(range(8), 2, offset=1)]


def test_a_parallel_loop_uses_several_processes_and_one_core_uses_none() -> None:
    pids = {pid for _, pid in analyse(squares).rewritten(2)(range(8))}
    assert len(pids) == 2 and os.getpid() not in pids
    assert {pid for _, pid in analyse(squares).rewritten(1)(range(8))} == {os.getpid()}


def test_the_lowest_failing_iteration_raises_with_its_traceback() -> None:
    with pytest.raises(ZeroDivisionError) as info:
        analyse(failing).rewritten(2)(range(10))
    (note,) = info.value.__notes__
    assert note.startswith("raised by iteration 5 of the loop at line 27 (run in parallel)")
    assert f'File "{__file__}", line 28, in failing' in note  # the original file and line
    frames = traceback.extract_tb(info.value.__traceback__)
    assert frames[-1].filename == __file__ and frames[-1].name == "failing"


def test_closures_and_super_survive_the_rewrite() -> None:
    scaled = make_closure(3)
    assert analyse(scaled).rewritten(2)(range(5)) == [0, 3, 6, 9, 12]
    child = Child()
    rewritten = analyse(Child.values).rewritten(2)
    assert rewritten(child, range(3)) == [0, 1, 2, 0, -1, -2]


def test_allocated_cores_follow_the_scheduler(monkeypatch: pytest.MonkeyPatch) -> None:
    available = len(os.sched_getaffinity(0))
    for name in ("SLURM_CPUS_PER_TASK", "NSLOTS", "NCPUS", "PBS_NUM_PPN"):
        monkeypatch.delenv(name, raising=False)
    assert allocated_cores(None) == 1
    assert allocated_cores(64) == available
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "1")
    assert allocated_cores(64) == 1  # the allocation wins over the requested hint


def record(item: int, effects: list[tuple[int, tuple[int, ...]]]) -> None:
    effects.append((0, (item,)))


def test_the_executor_declines_when_it_cannot_help(monkeypatch: pytest.MonkeyPatch) -> None:
    assert run_loop(range(4), record, 1, 1) is None  # one core
    shared: list[int] = []
    aliased = ((lambda: shared,), (lambda: shared,))
    assert run_loop(range(4), record, 2, 1, aliased) is None  # accumulator is read
    inside = ((lambda: shared,), (lambda: [shared],))
    assert run_loop(range(4), record, 2, 1, inside) is None  # ... inside a read object
    monkeypatch.setenv("CLUSTRIX_LOOP_WORKER", "1")
    assert run_loop(range(4), record, 2, 1) is None  # no workers of workers


def broken_iterable():
    yield 1
    yield 2
    raise KeyError("iterable failed")


def test_an_iterable_that_fails_midway_raises_after_the_earlier_iterations() -> None:
    result = run_loop(broken_iterable(), record, 2, 7)
    assert result is not None
    effects, error = result
    assert effects == [(0, (1,)), (0, (2,))] and isinstance(error, KeyError)


def test_seed_modules_are_aliases() -> None:
    import clustrix.config
    import clustrix.decorator
    import clustrix.filesystem

    assert clustrix.decorator.cluster is clustrix.cluster
    assert clustrix.config.ClusterConfig is clustrix.ClusterConfig
    assert clustrix.config.load_config is clustrix.load_config
    assert clustrix.filesystem.cluster_glob is clustrix.cluster_glob
    assert clustrix.filesystem.FileInfo is clustrix.FileInfo


@pytest.mark.parametrize("suffix", [".yml", ".json"])
def test_save_config_round_trips(tmp_path: Path, suffix: str) -> None:
    from clustrix.config import save_config

    clustrix.configure(cluster_type="slurm", cluster_host="login.example", default_cores=4)
    path = save_config(tmp_path / f"saved{suffix}")
    text = path.read_text()
    assert "login.example" in text and "password" not in text
    clustrix.reset_config()
    loaded = clustrix.load_config(path)
    assert loaded.cluster_host == "login.example" and loaded.default_cores == 4
    with pytest.raises(ConfigError, match=r"\.yml, \.yaml or \.json"):
        save_config(tmp_path / "saved.txt")


def test_cluster_filesystem_methods(tmp_path: Path) -> None:
    from clustrix.filesystem import ClusterFilesystem

    (tmp_path / "d").mkdir()
    for name in ("a.csv", "b.csv", "c.txt"):
        (tmp_path / "d" / name).write_text("x" * 10)
    fs = ClusterFilesystem(clustrix.ClusterConfig(cluster_type="local"))
    base = str(tmp_path / "d")
    assert fs.ls(base) == ["a.csv", "b.csv", "c.txt"]
    assert fs.glob("*.csv", base) == ["a.csv", "b.csv"]
    assert fs.find("*.txt", str(tmp_path)) == ["d/c.txt"]
    assert fs.stat(f"{base}/a.csv").size == 10
    assert fs.exists(base) and fs.isdir(base) and fs.isfile(f"{base}/a.csv")
    assert fs.du(base).file_count == 3 and fs.count_files(base, "*.csv") == 2


LOCAL = clustrix.ClusterConfig(cluster_type="local")


def list_twice(directory):
    names = clustrix.cluster_ls(directory, LOCAL)  # starts the portal's thread
    out = []
    for name in names:
        out.append((name, len(clustrix.cluster_ls(directory, LOCAL))))  # in a forked worker
    return out


@pytest.mark.timeout(60)
def test_filesystem_helpers_work_in_forked_workers(tmp_path: Path) -> None:
    for name in "abcd":
        (tmp_path / name).write_text(name)
    assert analyse(list_twice).rewritten(2)(str(tmp_path)) == list_twice(str(tmp_path))


def test_the_decorator_logs_the_analysis_at_debug(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("DEBUG", logger="clustrix"):
        cluster(cores=2)(squares)
    assert "loop analysis of squares: 1 of 1 for loop(s) run in parallel" in caplog.text
    assert "line 20: parallel (cores)" in caplog.text
