"""A corpus of loops with the verdict loop analysis must reach on each.

Every loop expected to run in parallel starts its body with ``probe()``, which records
(pid, start, end) of the iteration under ``$LOOP_PROBE_DIR/<function>-<line>/`` and,
inside a loop worker process, waits (with a deadline) until a second worker has
started, and then until both have recorded: so a parallel run shows two processes
whose iterations overlap in time.
"""

from __future__ import annotations

import io
import os
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

PROBE_ENV = "LOOP_PROBE_DIR"
RENDEZVOUS_SECONDS = 60.0
_alone: set[str] = set()


def probe() -> None:
    """Record this iteration's pid and interval; rendezvous with a second worker."""
    root = os.environ.get(PROBE_ENV)
    if not root:
        return
    caller = sys._getframe(1)
    key = f"{caller.f_code.co_name}-{caller.f_lineno}"
    directory = os.path.join(root, key)
    os.makedirs(directory, exist_ok=True)
    pid, start = os.getpid(), time.time()
    open(os.path.join(directory, f"start-{pid}"), "a").close()
    rendezvous = os.environ.get("CLUSTRIX_LOOP_WORKER") == "1" and key not in _alone
    if rendezvous:
        _wait_for(directory, "start-", key)
    with open(os.path.join(directory, f"rec-{pid}"), "a") as handle:
        handle.write(f"{start!r} {time.time()!r}\n")
    if rendezvous:  # no worker goes on (and perhaps fails, stopping the other) before
        _wait_for(directory, "rec-", key)  # both have recorded their overlapping interval


def _wait_for(directory: str, prefix: str, key: str) -> None:
    deadline = time.monotonic() + RENDEZVOUS_SECONDS
    while sum(n.startswith(prefix) for n in os.listdir(directory)) < 2:
        if time.monotonic() > deadline:
            _alone.add(key)  # the test will see a single process and fail
            return
        time.sleep(0.005)


@dataclass
class Case:
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    verdicts: list[bool]  # one per for loop, in source order
    raises: type[BaseException] | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)


XS = list(range(12))


def acc_append(xs):
    out = []
    for x in xs:
        probe()
        out.append(x * x)
    return out


def acc_extend(xs):
    out = []
    for x in xs:
        probe()
        out.extend([x, -x])
    return out


def acc_setitem(xs):
    d = {}
    for x in reversed(xs):
        probe()
        d[f"k{x}"] = x * 2
    return d


def acc_float_sum(xs):
    total = 0.0
    for x in xs:
        probe()
        total += x * 0.1 + 1e-17
    return total


def acc_string_concat(xs):
    s = ""
    for x in xs:
        probe()
        s += str(x) + ","
    return s


def acc_augitem_histogram(xs):
    counts = [0, 0, 0]
    for x in xs:
        probe()
        counts[x % 3] += x
    return counts


def acc_set_add(xs):
    seen = set()
    for x in xs:
        probe()
        seen.add(x % 5)
    return seen


def acc_dict_update(xs):
    d = {}
    for x in xs:
        probe()
        d.update({x % 4: x})
    return d


def two_appends(xs):
    a, b = [], []
    for x in xs:
        probe()
        a.append(x)
        b.append(-x)
    return a, b


def enumerate_loop(xs):
    out = []
    for i, x in enumerate(xs):
        probe()
        out.append(i * x)
    return out


def zip_loop(xs, ys):
    out = []
    for a, b in zip(xs, ys, strict=True):
        probe()
        out.append(a + b / 3)
    return out


def range_loop(n):
    out = []
    for i in range(n):
        probe()
        out.append(i**2)
    return out


def dict_items_loop(d):
    out = {}
    for k, v in d.items():
        probe()
        out[k] = v * 2.5
    return out


def nested_inner_sums(rows):
    out = []
    for row in rows:
        probe()
        s = 0.0
        for v in row:
            s += v / 7
        out.append(s)
    return out


def nested_pairs(n):
    out = []
    for i in range(n):
        probe()
        for j in range(n):
            out.append(i * j)
    return out


def inner_only_parallel(rows):
    out = []
    for row in rows:
        if not row:
            break
        for v in row:
            probe()
            out.append(v * 2)
    return out


def loop_carried_prev(xs):
    out = []
    prev = 0
    for x in xs:
        out.append(x - prev)
        prev = x
    return out


def reads_accumulator(xs):
    out = []
    for x in xs:
        out.append(x + len(out))
    return out


def break_loop(xs):
    out = []
    for x in xs:
        if x > 5:
            break
        out.append(x)
    return out


def return_in_loop(xs):
    for x in xs:
        if x > 5:
            return x
    return None


def continue_loop(xs):
    out = []
    for x in xs:
        probe()
        if x % 2:
            continue
        out.append(x)
    return out


COUNTER = 0


def global_statement(xs):
    global COUNTER
    COUNTER = 0
    for x in xs:
        COUNTER += x
    return COUNTER


def _make_nonlocal() -> Callable[[list[int]], int]:
    total = 0

    def nonlocal_statement(xs):
        nonlocal total
        total = 0
        for x in xs:
            total += x
        return total

    return nonlocal_statement


nonlocal_statement = _make_nonlocal()


def mutate_argument_items(xs):
    xs = list(xs)
    for i in range(len(xs)):
        xs[i] = xs[i] * 2
    return xs


def accumulate_into_argument(out, xs):
    for x in xs:
        probe()
        out.append(x + 1)
    return out


def mutate_loop_variable(rows):
    rows = [list(r) for r in rows]
    for row in rows:
        row.append(0)
    return rows


def loop_variable_after(xs):
    out = []
    for x in xs:
        out.append(x)
    return out, x


def body_name_after(xs):
    out = []
    for x in xs:
        y = x * 2
        out.append(y)
    return out, y


def try_except_in_body(xs):
    out = []
    for x in xs:
        probe()
        try:
            out.append(12 / (x - 4))
        except ZeroDivisionError:
            out.append(None)
    return out


def closure_over_loop_variable(xs):
    fns = []
    for x in xs:
        fns.append(lambda: x)  # noqa: B023 (late binding is the point)
    return [f() for f in fns]


def generator_not_a_loop(xs):
    return sum(x * x for x in xs)


def comprehension_not_a_loop(xs):
    return [x * 2 for x in xs if x % 3]


_namespace: dict[str, Any] = {}
exec(
    "def no_source(xs):\n    out = []\n    for x in xs:\n"
    "        out.append(x + 1)\n    return out\n",
    _namespace,
)
no_source = _namespace["no_source"]


def random_in_body(xs):
    random.seed(0)
    out = []
    for x in xs:
        out.append(random.random() + x)
    return out


def random_generator_object(xs):
    rng = random.Random(0)
    out = []
    for x in xs:
        out.append(rng.random() * x)
    return out


def _noisy(x: float) -> float:
    return random.random() + x


def helper_uses_random(xs):
    random.seed(1)
    out = []
    for x in xs:
        out.append(_noisy(x))
    return out


def print_in_body(xs):
    out = []
    for x in xs:
        probe()
        print("item", x)
        out.append(x)
    return out


def method_on_outer_object(xs):
    buf = io.StringIO()
    for x in xs:
        buf.write(str(x))
    return buf.getvalue()


class Box:
    value = 0


def write_attribute_of_outer(xs):
    box = Box()
    for x in xs:
        box.value = x
    return box.value


def conditional_assignment_carried(xs):
    out = []
    last = -1
    for x in xs:
        if x % 3 == 0:
            last = x
        out.append(last)
    return out


def while_not_a_for(n):
    out, i = [], 0
    while i < n:
        out.append(i)
        i += 1
    return out


def accumulate_then_sort(xs):
    out = []
    for x in xs:
        probe()
        out.append((x * 7) % 5)
    out.sort()
    return out


def fresh_local_mutation(xs):
    out = []
    for x in xs:
        probe()
        row = []
        row.append(x)
        row.append(x * 2)
        row[0] = -x
        out.append(row)
    return out


def item_alias_write(table):
    table = [list(r) for r in table]
    for i in range(len(table)):
        row = table[i]
        row[0] = i
    return table


def _check(x: int) -> int:
    if x in (3, 9):
        raise ValueError(f"bad item {x}")
    return x * 10


def lowest_failure_raises(xs):
    out = []
    for x in xs:
        probe()
        out.append(_check(x))
    return out


def partial_results_on_failure(xs):
    out = []
    try:
        for x in xs:
            probe()
            out.append(_check(x))
    except ValueError as exc:
        return out, str(exc)
    return out, None


def _fill(data: list[int], x: int) -> int:
    data.append(x)
    return len(data)


def passes_outer_used_after(xs):
    data = []
    out = []
    for x in xs:
        out.append(_fill(data, x))
    return out, data


def next_on_shared_iterator(xs):
    it = iter(xs)
    out = []
    for _ in range(len(xs) // 2):
        out.append(next(it))
    return out


def two_loops_same_variable(xs):
    a, b = [], []
    for i in xs:
        probe()
        a.append(i * 3)
    for i in xs:
        probe()
        b.append(i - 1)
    return a, b


def read_modify_write_dict(words):
    counts = {}
    for w in words:
        counts[w] = counts.get(w, 0) + 1
    return counts


def walrus_in_body(xs):
    out = []
    for x in xs:
        probe()
        if (y := x * 3) > 6:
            out.append(y)
    return out


def for_else(xs):
    out = []
    for x in xs:
        probe()
        out.append(x)
    else:
        out.append(-1)
    return out


def tuple_target_nested(pairs):
    out = []
    for i, (a, b) in enumerate(pairs):
        probe()
        out.append(f"{i}:{a}{b}")
    return out


def strings_and_methods(words):
    out = []
    for w in words:
        probe()
        out.append("-".join(w.upper().split("a")))
    return out


WORDS = ["banana", "apple", "cherry", "date", "fig", "grape", "kiwi", "lemon"]

CORPUS: list[Case] = [
    Case(acc_append, (XS,), [True]),
    Case(acc_extend, (XS,), [True]),
    Case(acc_setitem, (XS,), [True]),
    Case(acc_float_sum, (XS,), [True]),
    Case(acc_string_concat, (XS,), [True]),
    Case(acc_augitem_histogram, (XS,), [True]),
    Case(acc_set_add, (XS,), [True]),
    Case(acc_dict_update, (XS,), [True]),
    Case(two_appends, (XS,), [True]),
    Case(enumerate_loop, (XS,), [True]),
    Case(zip_loop, (XS, [x * 1.5 for x in XS]), [True]),
    Case(range_loop, (10,), [True]),
    Case(dict_items_loop, ({f"k{i}": i / 3 for i in range(8)},), [True]),
    Case(nested_inner_sums, ([[i, i + 1, i + 2] for i in range(6)],), [True, False]),
    Case(nested_pairs, (5,), [True, False]),
    Case(inner_only_parallel, ([[1, 2, 3], [4, 5], [], [6]],), [False, True]),
    Case(loop_carried_prev, (XS,), [False]),
    Case(reads_accumulator, (XS,), [False]),
    Case(break_loop, (XS,), [False]),
    Case(return_in_loop, (XS,), [False]),
    Case(continue_loop, (XS,), [True]),
    Case(global_statement, (XS,), [False]),
    Case(nonlocal_statement, (XS,), [False]),
    Case(mutate_argument_items, (XS,), [False]),
    Case(accumulate_into_argument, ([100], XS), [True]),
    Case(mutate_loop_variable, ([[1], [2], [3]],), [False]),
    Case(loop_variable_after, (XS,), [False]),
    Case(body_name_after, (XS,), [False]),
    Case(try_except_in_body, (XS,), [True]),
    Case(closure_over_loop_variable, (XS,), [False]),
    Case(generator_not_a_loop, (XS,), []),
    Case(comprehension_not_a_loop, (XS,), []),
    Case(no_source, (XS,), []),
    Case(random_in_body, (XS,), [False]),
    Case(random_generator_object, (XS,), [False]),
    Case(helper_uses_random, (XS,), [False]),
    Case(print_in_body, (XS,), [True]),
    Case(method_on_outer_object, (XS,), [False]),
    Case(write_attribute_of_outer, (XS,), [False]),
    Case(conditional_assignment_carried, (XS,), [False]),
    Case(while_not_a_for, (5,), []),
    Case(accumulate_then_sort, (XS,), [True]),
    Case(fresh_local_mutation, (XS,), [True]),
    Case(item_alias_write, ([[9, 9]] * 4,), [False]),
    Case(lowest_failure_raises, (XS,), [True], raises=ValueError),
    Case(partial_results_on_failure, (XS,), [True]),
    Case(passes_outer_used_after, (XS,), [False]),
    Case(next_on_shared_iterator, (XS,), [False]),
    Case(two_loops_same_variable, (XS,), [True, True]),
    Case(read_modify_write_dict, (WORDS * 2,), [False]),
    Case(walrus_in_body, (XS,), [True]),
    Case(for_else, (XS,), [True]),
    Case(tuple_target_nested, (list(zip(WORDS, XS, strict=False)),), [True]),
    Case(strings_and_methods, (WORDS,), [True]),
]


def nested_function_changes_closure(xs):
    seen = []

    def note(v):
        seen.append(v)

    for x in xs:
        note(x)
    return seen


def nested_function_reads_only(xs):
    offset = 10

    def shift(v):
        return v + offset

    out = []
    for x in xs:
        probe()
        out.append(shift(x))
    return out


CORPUS += [
    Case(nested_function_changes_closure, (XS,), [False]),
    Case(nested_function_reads_only, (XS,), [True]),
]
