"""``parallel="sweep"``: which loop may be fanned out from the client, and the plan.

The client lists the loop's iterable and submits one task per item; each task runs
the function with the fan-out executor (`clustrix.oncluster.parallel_sweep.run_part`), which
runs that one iteration and stops the function there. A last job runs the function
once more with `clustrix.oncluster.parallel_sweep.replay` as its executor, which hands back
every iteration's effects in iteration order, so the result is the sequential one.
"""

from __future__ import annotations

import ast
import builtins
import copy
import functools
import inspect
import types
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import cloudpickle

from ..oncluster import parallel_sweep as _parallel_sweep
from .facts import FunctionFacts
from .flow import loads
from .judge import Independent
from .rewrite import build

cloudpickle.register_pickle_by_value(_parallel_sweep)


@dataclass(frozen=True)
class FanOut:
    """A call's loop fanned out: one `task(index, item)` per item, then `final`."""

    line: int
    items: list[Any]
    task: Callable[[int, Any], Any]
    final: Callable[[list[Any]], Callable[..., Any]]


def sweep_eligible(loop: ast.For | ast.AsyncFor, node: ast.AST, facts: FunctionFacts) -> str | None:
    """None if `parallel="sweep"` may fan the loop out, else why not.

    The loop is at the top of the function, over an iterable built from parameters
    and builtins only (so the client can list it), and everything before it only
    binds names to literals, empty containers or parameters (every task runs that
    part again, so it must do nothing else).
    """
    body: list[ast.stmt] = getattr(node, "body", [])
    if loop not in body:
        return "it is not at the top level of the function"
    names = {n.id for n in loads(loop.iter)}
    rebound = facts.local_names - facts.params
    if names & rebound or not all(
        n in facts.params
        or (hasattr(builtins, n) and getattr(builtins, n) is facts.resolve(ast.Name(n)))
        for n in names
    ):
        return "its iterable is built from more than the function's parameters and builtins"
    for statement in body[: body.index(loop)]:
        if not _inert(statement, facts):
            return f"line {statement.lineno} before it may do more than bind a simple value"
    return None


def _inert(statement: ast.stmt, facts: FunctionFacts) -> bool:
    """A docstring, or a name bound to a literal, an empty container or a parameter."""
    if isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant):
        return True
    if isinstance(statement, ast.Assign):
        targets, value = statement.targets, statement.value
    elif isinstance(statement, ast.AnnAssign) and statement.value is not None:
        targets, value = [statement.target], statement.value
    else:
        return False
    return all(isinstance(t, ast.Name) for t in targets) and _simple_value(value, facts)


def _simple_value(value: ast.expr, facts: FunctionFacts) -> bool:
    if isinstance(value, ast.Constant):
        return True
    if isinstance(value, ast.Name):
        return value.id in facts.params
    if isinstance(value, ast.List | ast.Tuple | ast.Set):
        return all(_simple_value(e, facts) for e in value.elts)
    if isinstance(value, ast.Dict):
        return all(k is not None and _simple_value(k, facts) for k in value.keys) and all(
            _simple_value(v, facts) for v in value.values
        )
    if isinstance(value, ast.Call) and isinstance(value.func, ast.Name):
        builtin = getattr(builtins, value.func.id, None)
        return (
            builtin in (list, dict, set, tuple, str, int, float)
            and builtin is facts.resolve(value.func)
            and not value.args
            and not value.keywords
        )
    return False


def plan_fanout(
    fn: types.FunctionType,
    node: ast.FunctionDef | ast.AsyncFunctionDef,
    key: tuple[int, int],
    found: Independent,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> FanOut:
    """The fan-out of one call: its items, the task function and the last job's.

    The loop's iterable is evaluated here, on the client: `sweep_eligible` checked it is
    built from the call's arguments and builtins only, so it is the same list the
    function would iterate over.
    """
    loop = next(
        n for n in ast.walk(node) if isinstance(n, ast.For) and (n.lineno, n.col_offset) == key
    )
    bound = inspect.signature(fn).bind(*args, **kwargs)
    bound.apply_defaults()
    expression = ast.fix_missing_locations(ast.Expression(copy.deepcopy(loop.iter)))
    code = compile(expression, fn.__code__.co_filename, "eval")
    # The user's own iterable expression over the call's own arguments (and builtins):
    # exactly what the loop would iterate, listed once.
    items = list(eval(code, fn.__globals__, dict(bound.arguments)))  # noqa: S307
    chosen = {key: found}
    part = build(fn, node, chosen, None, runner=_parallel_sweep.run_part)

    def final(outcomes: list[Any]) -> Callable[..., Any]:
        return build(
            fn, node, chosen, None, runner=functools.partial(_parallel_sweep.replay, outcomes)
        )

    task = functools.partial(_parallel_sweep.sweep_part, part, args, dict(kwargs))
    return FanOut(key[0], items, task, final)
