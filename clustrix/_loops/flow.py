"""Name-level data flow: definite assignment, loads, stores and nested scopes.

`unassigned_reads` finds the reads of some names at points where the code before them
has not certainly (re)assigned them: within a loop body that means the value could
come from an earlier iteration; after a loop, that it could come from the loop.
The analysis is conservative: it may report reads that cannot really happen, never
the other way round.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator

Read = tuple[str, int]  # name, line
SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)
COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)


def target_names(node: ast.AST | None) -> set[str]:
    """Names bound by an assignment target (Name, Tuple, List, Starred)."""
    if node is None:
        return set()
    return {
        n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)
    }


def arguments_of(node: ast.Lambda | ast.FunctionDef | ast.AsyncFunctionDef) -> set[str]:
    args = node.args
    every = [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]
    return {a.arg for a in every if a is not None}


def loads(node: ast.AST, shadow: frozenset[str] = frozenset()) -> Iterator[ast.Name]:
    """Every Name read (or deleted) in an expression, honouring comprehension scopes."""
    if isinstance(node, ast.Name):
        if not isinstance(node.ctx, ast.Store) and node.id not in shadow:
            yield node
        return
    if isinstance(node, ast.Lambda):
        for default in [*node.args.defaults, *node.args.kw_defaults]:
            if default is not None:
                yield from loads(default, shadow)
        yield from loads(node.body, shadow | arguments_of(node))
        return
    if isinstance(node, COMPREHENSIONS):
        generators = node.generators
        yield from loads(generators[0].iter, shadow)
        inner = shadow | {name for g in generators for name in target_names(g.target)}
        for number, generator in enumerate(generators):
            if number:
                yield from loads(generator.iter, inner)
            for condition in generator.ifs:
                yield from loads(condition, inner)
        parts = [node.key, node.value] if isinstance(node, ast.DictComp) else [node.elt]
        for part in parts:
            yield from loads(part, inner)
        return
    for child in ast.iter_child_nodes(node):
        yield from loads(child, shadow)


def walrus_targets(node: ast.AST) -> set[str]:
    return {n.target.id for n in ast.walk(node) if isinstance(n, ast.NamedExpr)}


def own_statements(body: Iterable[ast.stmt]) -> Iterator[ast.AST]:
    """Every node of `body`, not descending into nested functions, classes or lambdas."""
    stack: list[ast.AST] = list(body)
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, SCOPES):
            continue
        stack.extend(ast.iter_child_nodes(node))


def stored_names(body: Iterable[ast.stmt]) -> dict[str, int]:
    """Names a block binds (first line of each), nested scopes excluded except their name."""
    found: dict[str, int] = {}
    for node in own_statements(body):
        names: set[str] = set()
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store | ast.Del):
            names = {node.id}
        elif isinstance(node, ast.ExceptHandler) and node.name:
            names = {node.name}
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names = {(a.asname or a.name).split(".")[0] for a in node.names}
        elif isinstance(node, SCOPES) and not isinstance(node, ast.Lambda):
            names = {node.name}
        for name in names:
            found.setdefault(name, getattr(node, "lineno", 0))
    return found


class Reads:
    """Collects reads of `names` not preceded by a certain assignment (see module doc)."""

    def __init__(self, names: set[str]) -> None:
        self.names = names
        self.found: list[Read] = []

    def expr(self, node: ast.AST | None, assigned: frozenset[str]) -> frozenset[str]:
        if node is None:
            return assigned
        for name in loads(node):
            if name.id in self.names and name.id not in assigned:
                self.found.append((name.id, name.lineno))
        return assigned | walrus_targets(node)

    def block(self, body: Iterable[ast.stmt], assigned: frozenset[str]) -> frozenset[str]:
        for statement in body:
            assigned = self.statement(statement, assigned)
        return assigned

    def statement(self, node: ast.stmt, a: frozenset[str]) -> frozenset[str]:
        if isinstance(node, ast.Assign):
            a = self.expr(node.value, a)
            for target in node.targets:
                a = self.expr(target, a) | target_names(target)
            return a
        if isinstance(node, ast.AugAssign | ast.AnnAssign):
            a = self.expr(node.value, a)
            if isinstance(node, ast.AugAssign) and isinstance(node.target, ast.Name):
                self.expr(ast.Name(node.target.id, ast.Load(), lineno=node.lineno), a)
            return self.expr(node.target, a) | target_names(node.target)
        if isinstance(node, ast.For | ast.AsyncFor):
            a = self.expr(node.iter, a)
            self.block(node.body, self.expr(node.target, a) | target_names(node.target))
            self.block(node.orelse, a)
            return a
        if isinstance(node, ast.While):
            a = self.expr(node.test, a)
            self.block(node.body, a)
            self.block(node.orelse, a)
            return a
        if isinstance(node, ast.If):
            a = self.expr(node.test, a)
            return self.block(node.body, a) & self.block(node.orelse, a)
        if isinstance(node, ast.With | ast.AsyncWith):
            for item in node.items:
                a = self.expr(item.context_expr, a)
                a = self.expr(item.optional_vars, a) | target_names(item.optional_vars)
            return self.block(node.body, a)
        if isinstance(node, ast.Try | ast.TryStar):
            after_body = self.block(node.body, a)
            for handler in node.handlers:
                self.expr(handler.type, a)
                self.block(handler.body, a | ({handler.name} if handler.name else set()))
            self.block(node.orelse, after_body)
            return self.block(node.finalbody, a)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            self.expr(node, frozenset())  # runs later: every mention counts
            return a | {node.name}
        if isinstance(node, ast.Import | ast.ImportFrom):
            return a | {(x.asname or x.name).split(".")[0] for x in node.names}
        if isinstance(node, ast.Delete):
            self.expr(node, a)
            return a - {t.id for t in node.targets if isinstance(t, ast.Name)}
        if isinstance(node, ast.Match):
            self.expr(node, frozenset())
            return a
        return self.expr(node, a)


def unassigned_reads(
    body: Iterable[ast.stmt], names: set[str], assigned: Iterable[str] = ()
) -> list[Read]:
    """Reads of `names` in `body` that are not certainly preceded by an assignment."""
    reads = Reads(names)
    reads.block(body, frozenset(assigned))
    return reads.found
