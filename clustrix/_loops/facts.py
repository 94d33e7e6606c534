"""What a loop's judge needs to know about the whole function and its globals."""

from __future__ import annotations

import ast
import builtins
import random
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from .flow import SCOPES, arguments_of, loads, own_statements, stored_names

UNKNOWN = object()
# Builtins that consume a generator expression on the spot (so it cannot outlive the
# iteration that made it).
CONSUMERS = frozenset(
    {"sum", "min", "max", "any", "all", "list", "tuple", "set", "frozenset", "sorted", "dict"}
)


class Rejected(Exception):
    """A loop cannot be proven independent; the message says why."""


@dataclass
class FunctionFacts:
    """The parsed function and what its loops' judges share."""

    fn: Callable[..., Any]
    node: ast.FunctionDef | ast.AsyncFunctionDef
    params: set[str]
    local_names: set[str]
    module_imports: dict[str, str]  # local name -> module it was imported from
    parents: dict[ast.AST, ast.AST] = field(default_factory=dict)
    escaping: list[tuple[ast.AST, set[str]]] = field(default_factory=list)
    unresolved: set[str] = field(default_factory=set)  # globals not defined yet
    declared: set[str] = field(default_factory=set)  # named in global/nonlocal statements

    @classmethod
    def build(
        cls, fn: Callable[..., Any], node: ast.FunctionDef | ast.AsyncFunctionDef
    ) -> FunctionFacts:
        params = arguments_of(node)
        local_names = params | set(stored_names(node.body))
        imports: dict[str, str] = {}
        for statement in own_statements(node.body):
            if isinstance(statement, ast.Import):
                for alias in statement.names:
                    local = alias.asname or alias.name.split(".")[0]
                    imports[local] = alias.name if alias.asname else local
            elif isinstance(statement, ast.ImportFrom):
                for alias in statement.names:
                    base = "." * statement.level + (statement.module or "")
                    imports[alias.asname or alias.name] = f"{base}.{alias.name}"
        facts = cls(fn, node, params, local_names, imports)
        for statement in own_statements(node.body):
            if isinstance(statement, ast.Global | ast.Nonlocal):
                facts.declared.update(statement.names)
        for parent in ast.walk(node):
            for child in ast.iter_child_nodes(parent):
                facts.parents[child] = parent
        facts.escaping = [(s, free_names(s)) for s in ast.walk(node) if facts.escapes(s)]
        return facts

    def escapes(self, node: ast.AST) -> bool:
        """True for a nested scope that may run after the statement that made it."""
        if node is self.node:
            return False
        if isinstance(node, SCOPES):
            return True
        if not isinstance(node, ast.GeneratorExp):
            return False
        call = self.parents.get(node)
        if not isinstance(call, ast.Call) or call.args != [node] or call.keywords:
            return True
        func = call.func
        if isinstance(func, ast.Name):
            return func.id not in CONSUMERS or func.id in self.local_names
        return not (isinstance(func, ast.Attribute) and func.attr == "join")

    def nested_function_names(self, name: str) -> set[str] | None:
        """The free names of the nested function or lambda `name` is bound to in `fn`."""
        found: set[str] | None = None
        for scope, free in self.escaping:
            parent = self.parents.get(scope)
            named = isinstance(scope, ast.FunctionDef | ast.AsyncFunctionDef) and scope.name == name
            assigned = (
                isinstance(scope, ast.Lambda)
                and isinstance(parent, ast.Assign)
                and any(isinstance(t, ast.Name) and t.id == name for t in parent.targets)
            )
            if named or assigned:
                found = (found or set()) | free
        return found

    def captured(self, names: set[str]) -> tuple[str, int] | None:
        """A name of `names` that a lambda, nested function or lazy generator refers to."""
        for scope, free in self.escaping:
            hit = sorted(free & names)
            if hit:
                return hit[0], getattr(scope, "lineno", 0)
        return None

    def resolve(self, node: ast.AST) -> Any:
        """The object a Name/Attribute chain denotes at decoration, or UNKNOWN."""
        if isinstance(node, ast.Attribute):
            base = self.resolve(node.value)
            if base is UNKNOWN:
                return UNKNOWN
            try:
                return getattr(base, node.attr)
            except Exception:
                return UNKNOWN
        if not isinstance(node, ast.Name):
            return UNKNOWN
        if node.id in self.local_names:
            return UNKNOWN
        namespace = getattr(self.fn, "__globals__", {})
        if node.id in namespace:
            return namespace[node.id]
        found = getattr(builtins, node.id, UNKNOWN)
        if found is UNKNOWN:
            self.unresolved.add(node.id)
        return found

    def random_use(self, node: ast.AST) -> str | None:
        """The dotted name if `node` (Name/Attribute) denotes random or numpy.random."""
        dotted = dotted_name(node)
        if dotted is None:
            return None
        root = dotted.split(".")[0]
        if root in self.module_imports:
            origin = self.module_imports[root] + dotted[len(root) :]
            return dotted if is_random_name(origin) else None
        return dotted if is_random(self.resolve(node)) else None


def dotted_name(node: ast.AST) -> str | None:
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    return ".".join([node.id, *reversed(parts)])


def is_random_name(name: str) -> bool:
    return name in ("random", "secrets") or name.startswith(("random.", "numpy.random"))


def is_random(value: Any) -> bool:
    """True for the random/numpy.random modules, their functions and generators."""
    if value is UNKNOWN or value is None:
        return False
    if isinstance(value, random.Random) or isinstance(
        getattr(value, "__self__", None), random.Random
    ):
        return True
    if isinstance(value, types.ModuleType):
        return is_random_name(value.__name__)
    module = getattr(value, "__module__", None)
    if isinstance(module, str) and is_random_name(module):
        return True
    return is_random_name(type(value).__module__ or "")


def function_uses_random(fn: Any, depth: int = 4, seen: set[int] | None = None) -> str | None:
    """The name of a random source a called Python function (transitively) refers to."""
    seen = set() if seen is None else seen
    if depth == 0 or id(fn) in seen or not isinstance(fn, types.FunctionType):
        return None
    seen.add(id(fn))
    namespace = fn.__globals__
    values: list[tuple[str, Any]] = []
    for name in sorted(set(_code_names(fn.__code__))):
        if name in namespace:
            values.append((name, namespace[name]))
    for cell_name, cell in zip(fn.__code__.co_freevars, fn.__closure__ or (), strict=False):
        try:
            values.append((cell_name, cell.cell_contents))
        except ValueError:
            continue
    for name, value in values:
        if is_random(value):
            return f"{name} (used by {fn.__qualname__})"
        found = function_uses_random(value, depth - 1, seen)
        if found:
            return found
    return None


def _code_names(code: types.CodeType) -> Iterator[str]:
    yield from code.co_names
    for constant in code.co_consts:
        if isinstance(constant, types.CodeType):
            yield from _code_names(constant)


def free_names(scope: ast.AST) -> set[str]:
    """Names a nested scope reads that it does not bind itself (an over-estimate)."""
    read = {name.id for name in loads(scope)}
    if isinstance(scope, ast.Lambda | ast.FunctionDef | ast.AsyncFunctionDef):
        read -= arguments_of(scope)
    if isinstance(scope, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        read -= set(stored_names(scope.body))
    return read
