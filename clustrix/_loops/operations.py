"""Calls, method calls and writes in a loop body: harmless, assumed harmless, or not.

A worker process changes only its own copy of an object, so a body may change only
objects made fresh in the iteration itself (``row = []``) and the accumulators. Calls
of other functions are assumed not to change module-level state or their arguments;
`explain()` names each such call.
"""

from __future__ import annotations

import ast
import builtins
import types
from collections.abc import Callable

from .facts import UNKNOWN, FunctionFacts, Rejected, function_uses_random
from .flow import target_names

_PURE_METHOD_NAMES = (
    "strip lstrip rstrip split rsplit splitlines lower upper title capitalize casefold "
    "startswith endswith replace join format format_map encode decode find rfind index "
    "rindex count isdigit isalpha isalnum isspace isupper islower isnumeric isdecimal "
    "zfill center ljust rjust partition rpartition removeprefix removesuffix "
    "expandtabs translate get keys values items copy union intersection difference "
    "symmetric_difference issubset issuperset isdisjoint bit_length conjugate "
    "is_integer hex as_integer_ratio sum mean std var min max prod any all argmax "
    "argmin argsort reshape astype tolist dot transpose flatten ravel round cumsum "
    "cumprod nonzero exists is_file is_dir with_suffix with_name joinpath relative_to "
    "read_text read_bytes resolve absolute as_posix"
)
PURE_METHODS = frozenset(_PURE_METHOD_NAMES.split())
# Modules whose functions change no state (calling them needs no assumption).
PURE_MODULES = frozenset(
    {
        "math",
        "cmath",
        "posixpath",
        "ntpath",
        "operator",
        "statistics",
        "string",
        "fnmatch",
        "re",
        "json",
        "bisect",
        "heapq",
    }
)
FRESH_CONSTRUCTORS = frozenset({"list", "dict", "set", "bytearray", "sorted"})
MUTATING_BUILTINS = frozenset({"next", "setattr", "delattr", "input", "breakpoint"})
DYNAMIC_BUILTINS = frozenset({"exec", "eval", "locals", "vars", "globals", "compile"})
_FRESH_DISPLAYS = (ast.List, ast.Dict, ast.Set, ast.ListComp, ast.SetComp, ast.DictComp)

UsedAfter = Callable[[set[str]], "tuple[str, int] | None"]


class Operations:
    """Checks one loop body's operations (see module doc)."""

    def __init__(
        self,
        loop: ast.For,
        facts: FunctionFacts,
        bound: set[str],
        site_nodes: set[int],
        outer: set[str],
        used_after: UsedAfter,
    ) -> None:
        self.loop = loop
        self.facts = facts
        self.bound = bound
        self.outer = outer
        self.used_after = used_after
        self.targets = target_names(loop.target)
        self.sites = site_nodes
        self.site_calls = {
            id(n.value) for n in ast.walk(loop) if id(n) in site_nodes and isinstance(n, ast.Expr)
        }
        self.fresh = self._fresh_names()
        self.calls: list[str] = []
        self.methods: list[str] = []

    def check(self) -> list[str]:
        for node in (n for statement in self.loop.body for n in ast.walk(statement)):
            if isinstance(node, ast.Name | ast.Attribute):
                used = self.facts.random_use(node)
                if used:
                    raise Rejected(
                        f"uses {used} at line {node.lineno} (forked workers would repeat the "
                        "same random draws)"
                    )
            if isinstance(node, ast.Call) and id(node) not in self.site_calls:
                self._call(node)
            if isinstance(node, ast.stmt) and id(node) not in self.sites:
                self._writes(node)
        assumptions = []
        if self.calls:
            listed = ", ".join(f"{c}()" for c in dict.fromkeys(self.calls))
            assumptions.append(
                f"calls to {listed} change neither module-level state nor their arguments"
            )
        if self.methods:
            listed = ", ".join(f".{m}()" for m in sorted(set(self.methods)))
            assumptions.append(f"methods {listed} do not change their objects")
        return assumptions

    # -- calls -----------------------------------------------------------------------------
    def _call(self, call: ast.Call) -> None:
        func, line = call.func, call.lineno
        if isinstance(func, ast.Name):
            value = self.facts.resolve(func)
            if value is not UNKNOWN and value is getattr(builtins, func.id, None):
                if func.id in DYNAMIC_BUILTINS:
                    raise Rejected(f"calls {func.id}() at line {line} (dynamic code)")
                if func.id in MUTATING_BUILTINS:
                    raise Rejected(f"calls {func.id}() at line {line}, which changes its argument")
                return  # other built-in functions change neither state nor arguments
            self._callee(func.id, value, line)
            self._arguments(call, func.id)
            self._nested_function(func.id, line)
            return
        if isinstance(func, ast.Attribute):
            base = self.facts.resolve(func.value)
            root = _root(func.value)
            if isinstance(base, types.ModuleType | type) or root in self.facts.module_imports:
                name = ast.unparse(func)
                self._callee(name, self.facts.resolve(func), line)
                self._arguments(call, name)
                return
            self._method(func, line)
            self._arguments(call, f".{func.attr}")
            return
        self.calls.append(f"the function computed at line {line}")

    def _nested_function(self, name: str, line: int) -> None:
        """A nested function can change the function's own variables through its closure."""
        free = self.facts.nested_function_names(name) if name in self.facts.local_names else None
        if free is None:
            return
        shared = {n for n in free & self.facts.local_names if n not in self.bound}
        after = self.used_after(shared) if shared else None
        if after:
            raise Rejected(
                f"calls {name}() at line {line}, a nested function using '{after[0]}', which is "
                f"used after the loop (line {after[1]}); {name}() could change it in a worker only"
            )

    def _callee(self, name: str, value: object, line: int) -> None:
        source = function_uses_random(value)
        if source:
            raise Rejected(f"calls {name}() at line {line}, which uses random state: {source}")
        if getattr(value, "__module__", None) not in PURE_MODULES:
            self.calls.append(name)

    def _method(self, func: ast.Attribute, line: int) -> None:
        receiver, method = func.value, func.attr
        if isinstance(receiver, ast.Constant):
            return  # a method of a literal ("-".join(...))
        root = _root(receiver)
        if isinstance(receiver, ast.Name) and root in self.fresh:
            return
        if method in PURE_METHODS:
            self.methods.append(method)
            return
        call = f"{ast.unparse(func)}()"
        if root in self.targets:
            raise Rejected(
                f"calls {call} at line {line} on the loop variable '{root}', which may change "
                "an element of the iterable (a worker would change its own copy)"
            )
        if root is not None and root in self.outer:
            raise Rejected(
                f"calls {call} at line {line}, which may change the outer object '{root}' "
                "(each worker would change its own copy)"
            )
        raise Rejected(
            f"calls {call} at line {line} on an object that may be shared with the rest of "
            "the function (each worker would change its own copy)"
        )

    def _arguments(self, call: ast.Call, name: str) -> None:
        passed = [a.value if isinstance(a, ast.Starred) else a for a in call.args]
        passed += [k.value for k in call.keywords]
        candidates = {_root(a) for a in passed}
        roots = {r for r in candidates if r and r in self.outer and r not in self.fresh}
        if roots:
            after = self.used_after(roots)
            if after:
                raise Rejected(
                    f"passes '{after[0]}' to {name}() at line {call.lineno} and uses it after "
                    f"the loop (line {after[1]}); {name}() could change it in a worker only"
                )

    # -- writes ----------------------------------------------------------------------------
    def _writes(self, node: ast.stmt) -> None:
        targets: list[ast.AST] = []
        if isinstance(node, ast.Assign):
            targets = list(node.targets)
        elif isinstance(node, ast.AugAssign | ast.AnnAssign):
            targets = [node.target]
        elif isinstance(node, ast.Delete):
            targets = list(node.targets)
        elif isinstance(node, ast.For):
            targets = [node.target]
        elif isinstance(node, ast.With):
            targets = [i.optional_vars for i in node.items if i.optional_vars is not None]
        for target in targets:
            for part in ast.walk(target):
                if isinstance(part, ast.Attribute | ast.Subscript) and not isinstance(
                    part.ctx, ast.Load
                ):
                    obj = part.value
                    if isinstance(obj, ast.Name) and obj.id in self.fresh:
                        continue
                    root = _root(obj)
                    if root in self.targets:
                        whose = f"the loop variable '{root}'"
                    elif root in self.outer:
                        whose = f"the outer object '{root}'"
                    else:
                        whose = "an object that may be shared with the rest of the function"
                    raise Rejected(
                        f"writes to {ast.unparse(part)} at line {node.lineno}, part of {whose} "
                        "(a worker would change its own copy)"
                    )

    def _fresh_names(self) -> set[str]:
        """Body-local names only ever bound to objects made in the iteration itself."""
        fresh: set[str] = set()
        spoiled: set[str] = set(self.targets)
        for node in (n for statement in self.loop.body for n in ast.walk(statement)):
            if isinstance(node, ast.Assign):
                names = {t.id for t in node.targets if isinstance(t, ast.Name)}
                others = set().union(*(target_names(t) for t in node.targets)) - names
                spoiled |= others
                (fresh if self._is_fresh(node.value) else spoiled).update(names)
            elif isinstance(node, ast.With):
                for item in node.items:
                    name = item.optional_vars
                    if isinstance(name, ast.Name) and isinstance(item.context_expr, ast.Call):
                        fresh.add(name.id)
                    else:
                        spoiled |= target_names(name)
            elif isinstance(node, ast.AugAssign | ast.AnnAssign):
                if isinstance(node, ast.AnnAssign) and not (
                    node.value is not None and self._is_fresh(node.value)
                ):
                    spoiled |= target_names(node.target)
            elif isinstance(node, ast.For | ast.comprehension):
                spoiled |= target_names(node.target)
            elif isinstance(node, ast.NamedExpr | ast.ExceptHandler | ast.Import | ast.ImportFrom):
                spoiled |= {n for n in self.bound if n in _bound_by(node)}
        return (fresh - spoiled) & self.bound

    def _is_fresh(self, value: ast.AST) -> bool:
        if isinstance(value, (*_FRESH_DISPLAYS, ast.Constant)):
            return True
        if isinstance(value, ast.BinOp):
            return isinstance(value.left, _FRESH_DISPLAYS) or isinstance(
                value.right, _FRESH_DISPLAYS
            )
        if isinstance(value, ast.Call) and isinstance(value.func, ast.Name):
            name = value.func.id
            return name in FRESH_CONSTRUCTORS and self.facts.resolve(value.func) is getattr(
                builtins, name
            )
        return False


def _bound_by(node: ast.AST) -> set[str]:
    if isinstance(node, ast.NamedExpr):
        return {node.target.id}
    if isinstance(node, ast.ExceptHandler):
        return {node.name} if node.name else set()
    if isinstance(node, ast.Import | ast.ImportFrom):
        return {(a.asname or a.name).split(".")[0] for a in node.names}
    return set()


def _root(node: ast.AST | None) -> str | None:
    """The name at the bottom of an attribute/item chain (`a` of ``a.b[c].d``)."""
    while isinstance(node, ast.Attribute | ast.Subscript | ast.Starred):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None
