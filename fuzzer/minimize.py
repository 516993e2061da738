"""Make a failing sequence 1-minimal with the executor alone.

Hypothesis's shrinker is very good but promises nothing about minimality; this
pass does: afterwards, removing any one step makes the violation disappear.
It needs no Hypothesis, so it also rescues findings whose shrink was cut
short by the time budget or Ctrl-C.
"""

from __future__ import annotations

from collections.abc import Sequence

from fuzzer.executor import Executor
from fuzzer.world import Step


def first_hit(executor: Executor, steps: Sequence[Step], signature: str) -> int | None:
    """1-based index of the first step whose violations include ``signature``."""
    executor.reset()
    for step in steps:
        result = executor.apply(step)
        for v in result.violations:
            if v.signature == signature:
                return result.index
    return None


def reproduces(executor: Executor, steps: Sequence[Step], signature: str) -> bool:
    return first_hit(executor, steps, signature) is not None


def one_minimal(executor: Executor, steps: Sequence[Step], signature: str) -> list[Step]:
    """The shortest prefix that fails, then drop single steps until none can go."""
    hit = first_hit(executor, steps, signature)
    if hit is None:
        raise ValueError(f"sequence does not reproduce {signature}")
    current = list(steps[:hit])
    changed = True
    while changed:
        changed = False
        i = 0
        while i < len(current):
            candidate = current[:i] + current[i + 1:]
            hit = first_hit(executor, candidate, signature)
            if hit is not None:
                current = candidate[:hit]
                changed = True
            else:
                i += 1
    return current


def is_one_minimal(executor: Executor, steps: Sequence[Step], signature: str) -> bool:
    if not reproduces(executor, steps, signature):
        return False
    return all(
        not reproduces(executor, list(steps[:i]) + list(steps[i + 1:]), signature)
        for i in range(len(steps))
    )
