"""Automatic loop parallelization: analysis at decoration, the rewrite, `explain()`.

`analyse(fn)` parses the function's source (``ast``) once and judges every `for` loop
(`judge.judge`); `Analysis.rewritten(cores)` is the function with its independent
loops running through the cluster-side executor (`clustrix.oncluster.parallel_loop`), which
travels inside the pickled function (registered with cloudpickle by value).
"""

from __future__ import annotations

import ast
import contextlib
import inspect
import logging
import textwrap
import types
import weakref
from collections.abc import Callable
from typing import Any

import cloudpickle

from ..oncluster import parallel_loop as _parallel_loop
from .facts import FunctionFacts, Rejected
from .fanout import FanOut, plan_fanout, sweep_eligible
from .flow import SCOPES
from .judge import Independent, judge
from .report import ExplainReport, LoopReport, Mode
from .rewrite import build

cloudpickle.register_pickle_by_value(_parallel_loop)
log = logging.getLogger("clustrix")
DYNAMIC = frozenset({"exec", "eval", "locals", "vars", "globals"})
Parallel = bool | Mode | None


class Analysis:
    """The verdicts on one function's loops, and its rewritten forms (cached)."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn
        self.name = getattr(fn, "__qualname__", None) or repr(fn)
        self.note = ""
        # (line, column, independent-or-None, reason, sweep-eligible) in source order
        self.loops: list[tuple[int, int, Independent | None, str, bool]] = []
        self.node: ast.FunctionDef | ast.AsyncFunctionDef | None = None
        self._built: dict[int | None, Callable[..., Any]] = {}
        self.unresolved: set[str] = set()
        self._why_not_sweep: dict[tuple[int, int], str] = {}
        try:
            self.node = _parse(fn)
        except Rejected as exc:
            self.note = str(exc)
            return
        if self.node is not None:
            self._judge_all(self.node)

    def _judge_all(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        facts = FunctionFacts.build(self.fn, node)
        self.unresolved = facts.unresolved
        blocker = _function_blocker(node, self.fn)
        loops = sorted(
            (n for n in ast.walk(node) if isinstance(n, ast.For | ast.AsyncFor)),
            key=lambda n: (n.lineno, n.col_offset),
        )
        parallel_spans: list[tuple[ast.AST, int]] = []
        for loop in loops:
            found: Independent | None = None
            inside = _enclosing_scope(loop, facts)
            outer = next((line for span, line in parallel_spans if _contains(span, loop)), None)
            if blocker:
                reason = blocker
            elif inside is not None:
                reason = f"it is inside {inside}; only the function's own loops are analysed"
            elif outer is not None:
                reason = f"it runs inside the parallel loop at line {outer}"
            elif isinstance(loop, ast.AsyncFor):
                reason = "an 'async for' loop"
            else:
                try:
                    found = judge(loop, facts)
                    reason = _independent_reason(found)
                    parallel_spans.append((loop, loop.lineno))
                except Rejected as exc:
                    reason = str(exc)
            why = sweep_eligible(loop, node, facts) if found is not None else None
            sweep = found is not None and why is None
            if why is not None:
                self._why_not_sweep[(loop.lineno, loop.col_offset)] = why
            self.loops.append((loop.lineno, loop.col_offset, found, reason, sweep))

    def stale(self) -> bool:
        """True if a global the analysis could not see then is defined now."""
        namespace = getattr(self.fn, "__globals__", {})
        return any(name in namespace for name in self.unresolved)

    def report(self, parallel: Parallel = None, auto: bool = True) -> ExplainReport:
        """The report for a function decorated with ``parallel=`` (and `auto_parallel`)."""
        enabled = parallel is not False and (parallel is not None or auto)
        off = "parallel=False" if parallel is False else "auto_parallel is off in the config"
        loops = []
        for line, _, found, reason, sweep in self.loops:
            if found is None:
                loops.append(LoopReport(line, False, None, reason))
            elif not enabled:
                loops.append(LoopReport(line, False, None, f"{off} (it would be: {reason})"))
            elif parallel == "sweep" and sweep and (line, _) == self._fanout_key():
                text = (
                    "fanned out from the client as an array sweep (one task per iteration; "
                    f"one more job replays their effects in order): {reason}"
                )
                loops.append(LoopReport(line, True, "sweep", text))
            elif parallel == "sweep":
                why = self._why_not_sweep.get((line, _), "another loop of it is fanned out")
                text = f"across the job's cores (not as a sweep: {why}): {reason}"
                loops.append(LoopReport(line, True, "cores", text))
            else:
                loops.append(LoopReport(line, True, "cores", f"across the job's cores: {reason}"))
        return ExplainReport(self.name, tuple(loops), self.note)

    def _fanout_key(self) -> tuple[int, int] | None:
        """The loop ``parallel="sweep"`` fans out: the first one that qualifies."""
        return next(((line, col) for line, col, _, _, sweep in self.loops if sweep), None)

    def fanout(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> FanOut | None:
        """The fan-out of a call with ``parallel="sweep"``, or None if no loop qualifies.

        The loop's iterable is evaluated here, on the client: it is built from the
        call's arguments and builtins only (checked by the analysis), so it is the
        same list the function would iterate over.
        """
        key = self._fanout_key()
        if key is None or self.node is None or not isinstance(self.fn, types.FunctionType):
            return None
        found = next(f for line, col, f, _, _ in self.loops if (line, col) == key)
        assert found is not None
        return plan_fanout(self.fn, self.node, key, found, args, kwargs)

    def rewritten(self, cores: int | None) -> Callable[..., Any]:
        """The function to ship: independent loops go through the executor."""
        if cores in self._built:
            return self._built[cores]
        chosen = {(line, col): found for line, col, found, _, _ in self.loops if found}
        result = self.fn
        if chosen and self.node is not None and isinstance(self.fn, types.FunctionType):
            try:
                result = build(self.fn, self.node, chosen, cores)
            except Exception as exc:  # never fail a submission over an optimisation
                log.warning("%s: loop parallelization skipped (rewrite failed: %s)", self.name, exc)
        self._built[cores] = result
        return result


def _parse(fn: Callable[..., Any]) -> ast.FunctionDef | ast.AsyncFunctionDef | None:
    if not isinstance(fn, types.FunctionType):
        raise Rejected("not a Python function, so it runs as it is (no source to analyse)")
    if fn.__name__ == "<lambda>":
        return None
    try:
        lines, first = inspect.getsourcelines(fn)
    except (OSError, TypeError):
        raise Rejected("its source is not available, so its loops run sequentially") from None
    source = textwrap.dedent("".join(lines))
    try:
        tree = ast.parse(source)
    except SyntaxError:
        raise Rejected("its source could not be parsed, so its loops run sequentially") from None
    node = tree.body[0] if tree.body else None
    if (
        not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        or node.name != fn.__name__
        or fn.__code__.co_firstlineno != first
    ):
        raise Rejected("its source does not match its code, so its loops run sequentially")
    ast.increment_lineno(tree, first - 1)
    indent = len(lines[0]) - len(lines[0].lstrip())
    for part in ast.walk(tree):
        for attribute in ("col_offset", "end_col_offset"):
            if isinstance(getattr(part, attribute, None), int):
                setattr(part, attribute, getattr(part, attribute) + indent)
    return node


def _function_blocker(node: ast.AST, fn: Callable[..., Any]) -> str:
    for part in ast.walk(node):
        if (
            isinstance(part, ast.Call)
            and isinstance(part.func, ast.Name)
            and part.func.id in DYNAMIC
        ):
            return f"the function calls {part.func.id}() (line {part.lineno}), dynamic code"
    qualname = getattr(fn, "__qualname__", "")
    in_class = "." in qualname and qualname.split(".")[-2] != "<locals>"
    if in_class and any(
        isinstance(n, ast.Name | ast.Attribute)
        and (n.id if isinstance(n, ast.Name) else n.attr).startswith("__")
        and not (n.id if isinstance(n, ast.Name) else n.attr).endswith("__")
        for n in ast.walk(node)
    ):
        return "the method uses private (name-mangled) names"
    return ""


def _enclosing_scope(loop: ast.AST, facts: FunctionFacts) -> str | None:
    node = facts.parents.get(loop)
    while node is not None and node is not facts.node:
        if isinstance(node, SCOPES):
            return f"the nested {'lambda' if isinstance(node, ast.Lambda) else repr(node.name)}"
        node = facts.parents.get(node)
    return None


def _contains(outer: ast.AST, inner: ast.AST) -> bool:
    return any(n is inner for n in ast.walk(outer))


def _independent_reason(found: Independent) -> str:
    text = "iterations are independent"
    if found.sites:
        effects = [
            f"{s.name}.{s.kind}()"
            if s.kind in {"append", "extend", "add", "update"}
            else f"{s.name}[...] ="
            if s.kind == "setitem"
            else f"{s.name} {_op(s)}="
            for s in found.sites
        ]
        text += "; " + ", ".join(dict.fromkeys(effects)) + " replayed in iteration order"
    if found.assumptions:
        text += "; assumes " + "; ".join(found.assumptions)
    return text


def _op(site: Any) -> str:
    symbols = {
        ast.Add: "+",
        ast.Sub: "-",
        ast.Mult: "*",
        ast.Div: "/",
        ast.FloorDiv: "//",
        ast.Mod: "%",
        ast.Pow: "**",
        ast.BitOr: "|",
        ast.BitAnd: "&",
        ast.BitXor: "^",
        ast.LShift: "<<",
        ast.RShift: ">>",
        ast.MatMult: "@",
    }
    prefix = "[...] " if site.kind == "augitem" else ""
    return prefix + symbols.get(type(site.node.op), "?")


_CACHE: weakref.WeakKeyDictionary[Callable[..., Any], Analysis] = weakref.WeakKeyDictionary()


def analyse(fn: Callable[..., Any]) -> Analysis:
    """The (cached) analysis of `fn`."""
    try:
        cached = _CACHE[fn]
        if not cached.stale():
            return cached
    except (KeyError, TypeError):
        pass
    analysis = Analysis(fn)
    with contextlib.suppress(TypeError):  # not weak-referenceable: not cached
        _CACHE[fn] = analysis
    return analysis


def shipped_function(
    fn: Callable[..., Any], parallel: Parallel, auto: bool, cores: int | None
) -> Callable[..., Any]:
    """What a submission pickles: `fn`, or its rewrite when loops may run in parallel."""
    if parallel is False or (parallel is None and not auto):
        return fn
    return analyse(fn).rewritten(cores)


def explain(fn: Any) -> ExplainReport:
    """Which `for` loops of `fn` (a function or `@cluster` function) run in parallel, and why.

    ``report.loops`` lists every for loop in source order with ``.lineno``,
    ``.parallel``, ``.mode`` ("cores", "sweep" or None) and ``.reason``;
    ``print(report)`` shows a readable summary.

    Args:
        fn: the function to analyse; for a `@cluster` function its options (``parallel``,
            ``auto_parallel``) decide what would run in parallel.

    Raises:
        Nothing for an unsupported object: a callable without Python source (a builtin,
        a C extension) gets a report saying it runs as it is.
    """
    from .._config import get_config

    options = getattr(fn, "cluster_options", None)
    target = getattr(fn, "__wrapped__", fn) if options is not None else fn
    parallel: Parallel = None if options is None else options.parallel
    config = (options.config if options is not None else None) or get_config()
    return analyse(target).report(parallel, config.auto_parallel)


__all__ = [
    "Analysis",
    "ExplainReport",
    "FanOut",
    "LoopReport",
    "analyse",
    "explain",
    "shipped_function",
]
