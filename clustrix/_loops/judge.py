"""The verdict on one `for` loop: are its iterations provably independent?

A loop is independent when its body reads outer names without rebinding them, and
changes outer state only through accumulators (``acc.append(e)``, ``acc.extend(e)``,
``acc.add(e)``, ``acc.update(e)``, ``acc[k] = e``, ``acc += e``, ``acc[k] += e``) whose
effects are replayed in the parent in iteration order. Each rule below is checked
conservatively; the first one that fails is the loop's reason to stay sequential.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from .facts import FunctionFacts, Rejected
from .flow import SCOPES, loads, own_statements, stored_names, target_names, unassigned_reads

ACCUMULATOR_METHODS = frozenset({"append", "extend", "add", "update"})


@dataclass(frozen=True)
class Site:
    """One accumulator effect: the statement and what kind of effect it is."""

    node: ast.stmt
    name: str
    kind: str  # an accumulator method name, "setitem", "augassign" or "augitem"


@dataclass
class Independent:
    """What the rewrite needs about a loop proven independent."""

    sites: list[Site]
    accumulators: list[str]
    reads: list[str]  # local names the body reads (checked against aliasing at run time)
    assumptions: list[str] = field(default_factory=list)


def judge(loop: ast.For, facts: FunctionFacts) -> Independent:
    """Prove `loop` independent, or raise `Rejected` naming what prevents it."""
    body = loop.body
    _check_target(loop.target)
    _check_statements(loop)
    sites = _candidate_sites(body)
    bound_all = stored_names(body)
    accumulators = _accumulators(loop, sites, facts)
    sites = [s for s in sites if s.name in accumulators]
    bound = (set(bound_all) - set(accumulators)) | target_names(loop.target)
    shared = sorted(bound & facts.declared)
    if shared:
        raise Rejected(f"assigns '{shared[0]}', which is declared global or nonlocal")
    carried = unassigned_reads(body, bound, target_names(loop.target))
    if carried:
        name, line = carried[0]
        raise Rejected(
            f"'{name}' is read at line {line} before this iteration assigns it (its value "
            "would come from an earlier iteration)"
        )
    used_after = _used_after(loop, bound, facts)
    if used_after:
        name, line = used_after
        what = "the loop variable" if name in target_names(loop.target) else "assigned in the loop"
        raise Rejected(f"'{name}', {what}, is used after the loop (line {line})")
    captured = facts.captured(bound | set(accumulators))
    if captured:
        raise Rejected(
            f"'{captured[0]}' is captured by a nested function, lambda or lazy generator at "
            f"line {captured[1]} (it would see another iteration's value)"
        )
    site_nodes = {id(s.node) for s in sites}
    outer = _outer_reads(body, bound, accumulators)
    assumptions = _check_operations(loop, facts, bound, site_nodes, outer)
    reads = sorted(n for n in outer if n in facts.local_names)
    return Independent(sites, accumulators, reads, assumptions)


def _check_target(target: ast.expr) -> None:
    for node in ast.walk(target):
        if isinstance(node, ast.Attribute | ast.Subscript):
            raise Rejected(f"the loop variable is {ast.unparse(target)}, which writes to an object")


def _own_level(loop: ast.For) -> Iterator[ast.AST]:
    """Nodes where `break`/`continue` would belong to `loop` (inner loop bodies excluded)."""
    stack: list[ast.AST] = list(loop.body)
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, SCOPES):
            continue
        if isinstance(node, ast.For | ast.AsyncFor | ast.While):
            stack.extend(node.orelse)
            continue
        stack.extend(ast.iter_child_nodes(node))


def _check_statements(loop: ast.For) -> None:
    for node in _own_level(loop):
        if isinstance(node, ast.Break):
            raise Rejected(f"'break' at line {node.lineno} (later iterations depend on it)")
    for node in own_statements(loop.body):
        line = getattr(node, "lineno", loop.lineno)
        if isinstance(node, ast.Return):
            raise Rejected(f"'return' at line {line}")
        if isinstance(node, ast.Yield | ast.YieldFrom):
            raise Rejected(f"'yield' at line {line}")
        if isinstance(node, ast.Await | ast.AsyncFor | ast.AsyncWith):
            raise Rejected(f"'await' at line {line}")
        if isinstance(node, ast.Global | ast.Nonlocal):
            kind = "global" if isinstance(node, ast.Global) else "nonlocal"
            raise Rejected(f"'{kind} {', '.join(node.names)}' at line {line}")
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            raise Rejected(f"defines '{node.name}' inside the loop (line {line})")
        if isinstance(node, ast.Match):
            raise Rejected(f"a 'match' statement at line {line} is not analysed")


def _candidate_sites(body: list[ast.stmt]) -> list[Site]:
    sites = []
    for node in own_statements(body):
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
            call = node.value
            func = call.func
            if (
                isinstance(func, ast.Attribute)
                and isinstance(func.value, ast.Name)
                and func.attr in ACCUMULATOR_METHODS
                and len(call.args) == 1
                and not isinstance(call.args[0], ast.Starred)
                and not call.keywords
            ):
                sites.append(Site(node, func.value.id, func.attr))
        elif isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
            if isinstance(target, ast.Subscript) and isinstance(target.value, ast.Name):
                sites.append(Site(node, target.value.id, "setitem"))
        elif isinstance(node, ast.AugAssign):
            if isinstance(node.target, ast.Name):
                sites.append(Site(node, node.target.id, "augassign"))
            elif isinstance(node.target, ast.Subscript) and isinstance(node.target.value, ast.Name):
                sites.append(Site(node, node.target.value.id, "augitem"))
    return sorted(sites, key=lambda s: (s.node.lineno, s.node.col_offset))


def _accumulators(loop: ast.For, sites: list[Site], facts: FunctionFacts) -> list[str]:
    """Names whose every mention in the body is the object of an accumulator site."""
    mentions: dict[str, int] = {}
    for node in own_statements(loop.body):
        if isinstance(node, ast.Name):
            mentions[node.id] = mentions.get(node.id, 0) + 1
    for node in own_statements(loop.body):  # lambdas' own mentions count too
        if isinstance(node, ast.Lambda):
            for mention in loads(node):
                mentions[mention.id] = mentions.get(mention.id, 0) + 1
    counts: dict[str, int] = {}
    for site in sites:
        counts[site.name] = counts.get(site.name, 0) + 1
    in_iterable = {n.id for n in ast.walk(loop.iter) if isinstance(n, ast.Name)}
    site_lines = {(s.node.lineno, s.node.col_offset) for s in sites}
    aug_targets = {id(s.node.target) for s in sites if isinstance(s.node, ast.AugAssign)}
    bound = {
        n.id
        for n in own_statements(loop.body)
        if isinstance(n, ast.Name) and not isinstance(n.ctx, ast.Load) and id(n) not in aug_targets
    } | (set(stored_names(loop.body)) - counts.keys())
    found = []
    for name, count in counts.items():
        if name in target_names(loop.target) or name in bound:
            continue
        if mentions.get(name) != count:
            line = _other_mention(loop, name, site_lines)
            raise Rejected(
                f"'{name}' is accumulated into and also read at line {line} (the read would "
                "see a partly accumulated value)"
            )
        if name in in_iterable:
            raise Rejected(f"the loop iterates over '{name}', which it also accumulates into")
        if name not in facts.local_names or name in facts.declared:
            raise Rejected(
                f"accumulates into '{name}', which is not a plain local variable or parameter "
                "(a global or nonlocal: other functions could see it half-filled)"
            )
        found.append(name)
    return sorted(found)


def _other_mention(loop: ast.For, name: str, site_lines: set[tuple[int, int]]) -> int:
    """The line of a mention of `name` other than as the object of an accumulator site."""
    objects = set()
    for node in own_statements(loop.body):
        if isinstance(node, ast.stmt) and (node.lineno, node.col_offset) in site_lines:
            objects.add(id(_site_object(node)))
    for node in own_statements(loop.body):
        if isinstance(node, ast.Name) and node.id == name and id(node) not in objects:
            return node.lineno
    return loop.lineno


def _site_object(node: ast.stmt) -> ast.AST | None:
    if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
        func = node.value.func
        return func.value if isinstance(func, ast.Attribute) else None
    target = node.targets[0] if isinstance(node, ast.Assign) else getattr(node, "target", None)
    return target.value if isinstance(target, ast.Subscript) else target


def _used_after(loop: ast.For, names: set[str], facts: FunctionFacts) -> tuple[str, int] | None:
    """A read of `names` that could see a value the loop left behind."""
    segments: list[tuple[list[ast.stmt], set[str]]] = []
    child: ast.AST = loop
    while child is not facts.node:
        parent = facts.parents[child]
        field_name, block = _containing_block(parent, child)
        siblings = block[block.index(child) + 1 :] if child in block else []
        if child is loop:
            siblings = [*loop.orelse, *siblings]
        segments.append((siblings, set()))
        if isinstance(parent, ast.For | ast.AsyncFor) and field_name == "body":
            segments.append((parent.body, target_names(parent.target)))
        elif isinstance(parent, ast.While) and field_name == "body":
            segments.append(([ast.Expr(parent.test, lineno=parent.lineno), *parent.body], set()))
        elif isinstance(parent, ast.Try | ast.TryStar):
            if field_name == "body":
                for handler in parent.handlers:
                    segments.append((handler.body, {handler.name} if handler.name else set()))
                segments.append((parent.orelse, set()))
            if field_name != "finalbody":
                segments.append((parent.finalbody, set()))
        if isinstance(parent, ast.ExceptHandler):
            child = parent
            continue
        child = parent
    for statements, assigned in segments:
        reads = unassigned_reads(statements, names, assigned)
        if reads:
            return reads[0]
    return None


def _containing_block(parent: ast.AST, child: ast.AST) -> tuple[str, list[Any]]:
    for name, value in ast.iter_fields(parent):
        if isinstance(value, list) and child in value:
            return name, value
    return "", []


def _outer_reads(body: list[ast.stmt], bound: set[str], accumulators: list[str]) -> set[str]:
    names: set[str] = set()
    for statement in body:
        names |= {n.id for n in loads(statement)}
    return names - bound - set(accumulators)


def _check_operations(
    loop: ast.For, facts: FunctionFacts, bound: set[str], site_nodes: set[int], outer: set[str]
) -> list[str]:
    """Calls, method calls and writes in the body; returns the assumptions made."""
    from .operations import Operations

    def used_after(names: set[str]) -> tuple[str, int] | None:
        return _used_after(loop, names, facts)

    return Operations(loop, facts, bound, site_nodes, outer, used_after).check()


__all__ = ["Independent", "Rejected", "Site", "judge"]
