"""Rewriting a function so its independent loops call the parallel loop executor.

Each such loop::

    for TARGET in ITER:
        BODY
    else:
        ORELSE

becomes::

    _clustrix_it_K = ITER
    def _clustrix_body_K(_clustrix_item_, _clustrix_effects_):
        TARGET = _clustrix_item_
        BODY            # accumulator statements record their effect instead
    _clustrix_res_K = RUN_LOOP(_clustrix_it_K, _clustrix_body_K, CORES, LINE, WATCHED)
    if _clustrix_res_K is None:             # one core: the original loop, untouched
        for TARGET in _clustrix_it_K:
            BODY
        else:
            ORELSE
    else:
        for _clustrix_site_, _clustrix_args_ in _clustrix_res_K[0]:
            ...                              # replay every effect in iteration order
        if _clustrix_res_K[1] is not None:
            raise _clustrix_res_K[1]         # the lowest failing iteration's exception
        ORELSE

The result is compiled with the function's own file name and line numbers and built
with its own globals and closure cells (plus one cell holding the executor).
"""

from __future__ import annotations
import __future__

import ast
import copy
import types
from collections.abc import Callable
from typing import Any

from ..oncluster import parallel_loop as _parallel_loop
from .judge import Independent, Site

RUN_LOOP = "_clustrix_run_loop_"
_ITEM, _EFFECTS, _SITE, _ARGS = (
    "_clustrix_item_",
    "_clustrix_effects_",
    "_clustrix_site_",
    "_clustrix_args_",
)
_BODY_PREFIX = "_clustrix_body_"
_FUTURE_FLAGS = 0
for _feature in __future__.all_feature_names:
    _FUTURE_FLAGS |= getattr(__future__, _feature).compiler_flag


def _name(identifier: str, store: bool = False) -> ast.Name:
    return ast.Name(identifier, ast.Store() if store else ast.Load())


def _item(variable: str, index: int) -> ast.Subscript:
    return ast.Subscript(_name(variable), ast.Constant(index), ast.Load())


class _Recorder(ast.NodeTransformer):
    """In the body copy: accumulator statements record, own-level `continue` returns."""

    def __init__(self, sites: dict[tuple[int, int], int], by_key: dict[int, Site]) -> None:
        self.sites = sites
        self.by_key = by_key
        self._inner = False

    def visit_For(self, node: ast.For) -> ast.AST:
        node.orelse = [self.visit(s) for s in node.orelse]
        return self._inner_loop_body(node)

    def visit_While(self, node: ast.While) -> ast.AST:
        node.orelse = [self.visit(s) for s in node.orelse]
        return self._inner_loop_body(node)

    def _inner_loop_body(self, node: ast.For | ast.While) -> ast.AST:
        # `continue` in an inner loop's body belongs to that loop; sites are still recorded.
        saved, self._inner = self._inner, True
        node.body = [self.visit(s) for s in node.body]
        self._inner = saved
        return node

    def visit_Continue(self, node: ast.Continue) -> ast.AST:
        if self._inner:
            return node
        return ast.copy_location(ast.Return(None), node)

    def generic_visit(self, node: ast.AST) -> ast.AST:
        key = (getattr(node, "lineno", -1), getattr(node, "col_offset", -1))
        if isinstance(node, ast.stmt) and key in self.sites:
            number = self.sites[key]
            record = ast.Expr(
                ast.Call(
                    ast.Attribute(_name(_EFFECTS), "append", ast.Load()),
                    [ast.Tuple([ast.Constant(number), _recorded(self.by_key[number])], ast.Load())],
                    [],
                )
            )
            return ast.copy_location(record, node)
        return super().generic_visit(node)


def _recorded(site: Site) -> ast.Tuple:
    """The values a site's effect needs, evaluated in the statement's own order."""
    node = site.node
    if isinstance(node, ast.Expr):
        assert isinstance(node.value, ast.Call)
        value = node.value.args[0]
        if site.kind == "extend":  # an iterator cannot travel between processes
            value = ast.List([ast.Starred(value, ast.Load())], ast.Load())
        values = [value]
    elif isinstance(node, ast.Assign):
        target = node.targets[0]
        assert isinstance(target, ast.Subscript)
        values = [node.value, target.slice]
    else:
        assert isinstance(node, ast.AugAssign)
        if isinstance(node.target, ast.Subscript):
            values = [node.target.slice, node.value]
        else:
            values = [node.value]
    return ast.Tuple([copy.deepcopy(v) for v in values], ast.Load())


def _replay(site: Site) -> ast.stmt:
    """The site's statement applied to recorded values (in the parent)."""
    node, acc = site.node, site.name
    if isinstance(node, ast.Expr):
        call = ast.Call(ast.Attribute(_name(acc), site.kind, ast.Load()), [_item(_ARGS, 0)], [])
        statement: ast.stmt = ast.Expr(call)
    elif isinstance(node, ast.Assign):
        target = ast.Subscript(_name(acc), _item(_ARGS, 1), ast.Store())
        statement = ast.Assign([target], _item(_ARGS, 0))
    else:
        assert isinstance(node, ast.AugAssign)
        if isinstance(node.target, ast.Subscript):
            item = ast.Subscript(_name(acc), _item(_ARGS, 0), ast.Store())
            statement = ast.AugAssign(item, node.op, _item(_ARGS, 1))
        else:
            statement = ast.AugAssign(_name(acc, True), node.op, _item(_ARGS, 0))
    return ast.copy_location(statement, node)


class _Rewriter(ast.NodeTransformer):
    def __init__(self, loops: dict[tuple[int, int], Independent], cores: int | None) -> None:
        self.loops = loops
        self.cores = cores
        self.count = 0

    def visit_For(self, node: ast.For) -> Any:
        found = self.loops.get((node.lineno, node.col_offset))
        if found is None:
            return self.generic_visit(node)
        self.count += 1
        statements = _parallel_form(node, found, self.count, self.cores)
        for statement in statements:
            for part in ast.walk(statement):
                if "lineno" in part._attributes and not hasattr(part, "lineno"):
                    ast.copy_location(part, node)
        return statements


def _parallel_form(loop: ast.For, found: Independent, k: int, cores: int | None) -> list[ast.stmt]:
    it, body, res = f"_clustrix_it_{k}", f"{_BODY_PREFIX}{k}", f"_clustrix_res_{k}"
    numbered = dict(enumerate(found.sites))
    keys = {(s.node.lineno, s.node.col_offset): n for n, s in numbered.items()}
    recorder = _Recorder(keys, numbered)
    body_statements = [recorder.visit(s) for s in copy.deepcopy(loop.body)]
    arguments = ast.arguments([], [ast.arg(_ITEM), ast.arg(_EFFECTS)], None, [], [], None, [])
    unpack = ast.copy_location(ast.Assign([copy.deepcopy(loop.target)], _name(_ITEM)), loop)
    body_def = ast.FunctionDef(body, arguments, [unpack, *body_statements], [], None, None)

    def getters(names: list[str]) -> ast.Tuple:
        lambdas = [
            ast.Lambda(ast.arguments([], [], None, [], [], None, []), _name(n)) for n in names
        ]
        return ast.Tuple(list(lambdas), ast.Load())

    watched = ast.Tuple([getters(found.accumulators), getters(found.reads)], ast.Load())
    run = ast.Call(
        _name(RUN_LOOP),
        [_name(it), _name(body), ast.Constant(cores), ast.Constant(loop.lineno), watched],
        [],
    )
    sequential = ast.For(loop.target, _name(it), loop.body, loop.orelse, None)
    replays: list[ast.stmt] = []
    for number in reversed(range(len(found.sites))):
        test = ast.Compare(_name(_SITE), [ast.Eq()], [ast.Constant(number)])
        replays = [ast.If(test, [_replay(numbered[number])], replays)]
    pairs = ast.Tuple([_name(_SITE, True), _name(_ARGS, True)], ast.Store())
    replay = ast.For(pairs, _item(res, 0), replays or [ast.Pass()], [], None)
    failed = ast.Compare(_item(res, 1), [ast.IsNot()], [ast.Constant(None)])
    parallel = [replay, ast.If(failed, [ast.Raise(_item(res, 1), None)], []), *loop.orelse]
    is_none = ast.Compare(_name(res), [ast.Is()], [ast.Constant(None)])
    return [
        ast.Assign([_name(it, True)], loop.iter),
        body_def,
        ast.Assign([_name(res, True)], run),
        ast.If(is_none, [sequential], parallel),
    ]


def build(
    fn: types.FunctionType,
    node: ast.FunctionDef | ast.AsyncFunctionDef,
    loops: dict[tuple[int, int], Independent],
    cores: int | None,
    runner: Callable[..., Any] = _parallel_loop.run_loop,
) -> Callable[..., Any]:
    """`fn` with `loops` running through `runner` (same globals, closure, lines).

    `runner` is the executor the loops call: `_parallel_loop.run_loop` (across the
    job's cores), or a fan-out task's or last job's executor (``parallel="sweep"``).
    """
    tree = copy.deepcopy(node)
    tree.decorator_list = []
    _strip_evaluated_parts(tree)
    tree = _Rewriter(loops, cores).visit(tree)
    freevars = fn.__code__.co_freevars
    params = [ast.arg(RUN_LOOP), *(ast.arg(name) for name in freevars)]
    factory = ast.FunctionDef(
        "_clustrix_factory_",
        ast.arguments([], params, None, [], [], None, []),
        [tree, ast.Return(_name(tree.name))],
        [],
        None,
        None,
    )
    ast.copy_location(factory, tree)
    module = ast.fix_missing_locations(ast.Module([factory], []))
    flags = fn.__code__.co_flags & _FUTURE_FLAGS
    code = compile(module, fn.__code__.co_filename, "exec", flags=flags, dont_inherit=True)
    factory_code = _const(code, "_clustrix_factory_")
    inner = _const(factory_code, tree.name)
    consts = tuple(
        c.replace(co_name=fn.__name__, co_qualname=fn.__qualname__)
        if isinstance(c, types.CodeType) and c.co_name.startswith(_BODY_PREFIX)
        else c
        for c in inner.co_consts
    )
    inner = inner.replace(co_consts=consts)
    cells = dict(zip(freevars, fn.__closure__ or (), strict=True))
    cells[RUN_LOOP] = types.CellType(runner)
    closure = tuple(cells[name] for name in inner.co_freevars)
    rewritten = types.FunctionType(inner, fn.__globals__, fn.__name__, fn.__defaults__, closure)
    rewritten.__kwdefaults__ = copy.copy(fn.__kwdefaults__)
    rewritten.__annotations__ = dict(fn.__annotations__)
    rewritten.__qualname__ = fn.__qualname__
    rewritten.__module__ = fn.__module__
    rewritten.__doc__ = fn.__doc__
    rewritten.__dict__.update(fn.__dict__)
    return rewritten


def _strip_evaluated_parts(tree: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
    """Defaults and annotations are taken from the original function, not re-evaluated."""
    args = tree.args
    args.defaults = []
    args.kw_defaults = [None] * len(args.kwonlyargs)
    for arg in [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]:
        if arg is not None:
            arg.annotation = None
    tree.returns = None


def _const(code: types.CodeType, name: str) -> types.CodeType:
    for constant in code.co_consts:
        if isinstance(constant, types.CodeType) and constant.co_name == name:
            return constant
    raise LookupError(f"no code object {name!r} in {code.co_name!r}")
