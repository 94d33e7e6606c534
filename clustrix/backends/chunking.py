"""How many tasks one array element (or pod) runs when `map` is given no `chunksize`.

One rule for the batch schedulers (SLURM, PBS, SGE) and Kubernetes, which cannot tell
how many elements will run at once. Every element pays one interpreter start and the
unpickling of the function (about 0.1 s of CPU; more than a tiny task itself), so a
sweep of tasks *declared* short is packed into about `TARGET_ELEMENTS` elements; no
element is asked to run more than `ELEMENT_BUDGET` seconds of declared work, since a
packed element runs its tasks one after another and asks the scheduler for their
summed time. Tasks declared longer than `SHORT_TASK`, or with no declared time, keep
one task per element: there load balance matters more than start-up cost. (The ssh
backend knows its host's CPUs and uses its own rule.)

Measured on the lab's Slurm (16 CPUs on 2 cores), 500 trivial tasks declared
``time="00:05:00"``, against the 500-element array floor: 84 elements (6 tasks each)
took 0.37x the floor, 50 elements 0.24x, 21 elements 0.10-0.14x, 10 elements
0.09-0.13x.
"""

from __future__ import annotations

import math

SHORT_TASK = 600  # seconds: tasks declared at most this long are packed
ELEMENT_BUDGET = 7200  # seconds of declared work one packed element may ask for
TARGET_ELEMENTS = 16  # elements a packed sweep aims for


def default_chunksize(count: int, time: int | None, *, max_elements: int | None = None) -> int:
    """Tasks per element for a sweep of `count` tasks, each declared `time` seconds.

    `time` None means not declared. `max_elements` is the backend's own limit on
    elements per submission (a larger sweep is chunked to stay under it, whatever
    the tasks' length).
    """
    if count < 1:
        raise ValueError(f"a sweep has at least one task, not {count}")
    floor = math.ceil(count / max_elements) if max_elements else 1
    if time is None or time <= 0 or time > SHORT_TASK:
        return max(1, floor)
    packed = min(math.ceil(count / TARGET_ELEMENTS), max(1, ELEMENT_BUDGET // time))
    return max(1, floor, packed)
