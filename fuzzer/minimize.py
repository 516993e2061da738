"""Make a failing sequence 1-minimal with the executor alone.

Hypothesis's shrinker is very good but promises nothing about minimality; this
pass does: afterwards, removing any one step makes the violation disappear.
It needs no Hypothesis, so it also rescues findings whose shrink was cut
short by the time budget or Ctrl-C.

Every pass takes an optional ``expired`` clock, asked every ``CHECK_EVERY``
steps it runs: the time budget is a deadline for minimizing too.  When it
expires a pass returns the best sequence it has (one that still fails, not
yet minimal); the caller asks the clock again to know which it got.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs

from fuzzer.executor import Executor
from fuzzer.spec import Caller, CallerSpace, Param, Violation
from fuzzer.world import Step

#: Steps run between two looks at the clock: a look costs about as much as a
#: step, and a candidate of a 100 000-step sequence takes seconds.
CHECK_EVERY = 256
#: "Has the budget run out?"  Asked, never told: a campaign's deadline or Ctrl-C.
Clock = Callable[[], bool]


class Expired(Exception):
    """The clock ran out in the middle of a run; the passes catch it and return what they have."""


def _tick(expired: Clock | None, i: int) -> None:
    if expired is not None and i % CHECK_EVERY == 0 and expired():
        raise Expired


def first_hit(executor: Executor, steps: Sequence[Step], signature: str,
              expired: Clock | None = None) -> int | None:
    """1-based index of the first step whose violations include ``signature``.

    Raises ``Expired`` if ``expired`` says so before the run ends.
    """
    executor.reset()
    for i, step in enumerate(steps):
        _tick(expired, i)
        result = executor.apply(step)
        for v in result.violations:
            if v.signature == signature:
                return result.index
    return None


def reproduces(executor: Executor, steps: Sequence[Step], signature: str) -> bool:
    return first_hit(executor, steps, signature) is not None


def violation_of(executor: Executor, steps: Sequence[Step], signature: str) -> Violation:
    """The violation ``signature`` as ``steps`` show it (its step and message are this sequence's)."""
    executor.reset()
    for step in steps:
        for v in executor.apply(step).violations:
            if v.signature == signature:
                return v
    raise AssertionError("minimal sequence lost its violation")  # pragma: no cover


def simplicity(steps: list[Step], scopes: Mapping[str, tuple[str, ...]] | None = None,
               params_of: Callable[[Step], Any] | None = None) -> tuple[int, int]:
    """Order sequences as a reader would: fewer steps, then plainer callers and smaller arguments.

    ``scopes`` gives each channel's scopes, least privileged first (``Channel.scopes``):
    the least costs nothing, so an fwctl path at CONFIGURATION is as plain as a RAW one.
    With ``params_of`` (``Executor.params_of``), a size at its natural value costs
    nothing and any other costs more than every natural one, as ``simplify`` orders them.
    """
    cost = 0
    for s in steps:
        sizes = {p.name: p for p in (params_of(s) or ()) if p.kind == "size"} if params_of and s.actor == "user" else {}
        if s.caller is not None:
            c = s.caller
            order = (scopes or {}).get(s.channel, ())
            cost += len(c.caps) + len(c.switches) + (c.lockdown != "none") + (
                order.index(c.scope) if c.scope in order else 0)
        for k, v in s.args.items():
            p = sizes.get(k)
            if p is not None and isinstance(v, int) and callable(p.natural):
                cost += 0 if v == p.natural(s.args) else 1 + min(abs(v), 1 << 20)
            else:
                cost += min(abs(v), 1 << 20) if isinstance(v, int) else (1 if v else 0)
    return (len(steps), cost)


def as_plain(executor: Executor, known: Sequence[Step], steps: Sequence[Step], signature: str,
             scopes: Mapping[str, tuple[str, ...]] | None = None) -> bool:
    """True if ``known`` (a corpus file's steps) is no more complicated than ``steps`` and still
    reproduces ``signature`` under ``executor``: then it is kept rather than replaced."""
    return (simplicity(list(known), scopes, executor.params_of) <= simplicity(list(steps), scopes, executor.params_of)
            and all(executor.validate(s) is None for s in known)
            and reproduces(executor, known, signature))


def produced(executor: Executor, steps: Sequence[Step], expired: Clock | None = None) -> list[tuple[Any, ...]]:
    """The handles each step published (empty where it published none)."""
    executor.reset()
    out = []
    for i, s in enumerate(steps):
        _tick(expired, i)
        out.append(executor.apply(s).published)
    return out


def first_hit_relinked(
    executor: Executor, steps: Sequence[Step], made: Sequence[tuple[Any, ...]], drop: int, signature: str,
    expired: Clock | None = None,
) -> tuple[list[Step], int | None]:
    """Run ``steps`` without step ``drop``, relinking handle references as handles get renamed.

    Handles are named by a run-wide counter (``region0``, ``devx_obj3``), so
    removing a step that produced one renames every handle produced after it.
    Each later reference is rewritten to the name its producer now gives it;
    without this, a step that merely produced an unrelated object earlier
    could never be removed.  Returns the rewritten sequence and the 1-based
    index of its first step that violates ``signature`` (None if none does).
    """
    executor.reset()
    # original name -> name in this run; a dropped (or now failing) producer's
    # handle becomes a name nothing has, so references to it dangle as they should
    rename: dict[Any, Any] = {h: f"{h}~dropped" for h in made[drop]}
    out: list[Step] = []
    hit: int | None = None
    for j, step in enumerate(steps):
        _tick(expired, j)
        if j == drop:
            continue
        args = {k: rename.get(v, v) if isinstance(v, str) else v for k, v in step.args.items()}
        if args != dict(step.args):
            step = attrs.evolve(step, args=args)
        out.append(step)
        result = executor.apply(step)
        now = result.published
        for k, old in enumerate(made[j]):
            rename[old] = now[k] if k < len(now) else f"{old}~dropped"
        if hit is None and any(v.signature == signature for v in result.violations):
            hit = len(out)
            break
    return out, hit


def one_minimal(executor: Executor, steps: Sequence[Step], signature: str,
                expired: Clock | None = None) -> list[Step]:
    """The shortest prefix that fails, then drop single steps until none can go.

    If ``expired`` runs out first: the shortest failing sequence found so far
    (``steps`` itself if the first run was cut short, so it must fail).
    """
    try:
        hit = first_hit(executor, steps, signature, expired)
    except Expired:
        return list(steps)
    if hit is None:
        raise ValueError(f"sequence does not reproduce {signature}")
    current = list(steps[:hit])
    changed = True
    try:
        while changed:
            changed = False
            i = 0
            made = produced(executor, current, expired)
            while i < len(current):
                candidate, hit = first_hit_relinked(executor, current, made, i, signature, expired)
                if hit is not None:
                    current = candidate[:hit]
                    made = produced(executor, current, expired)
                    changed = True
                else:
                    i += 1
    except Expired:
        pass
    return current


def is_one_minimal(executor: Executor, steps: Sequence[Step], signature: str) -> bool:
    """True if ``steps`` fail and no single step can go (handles relinked as ``one_minimal`` does)."""
    if not reproduces(executor, steps, signature):
        return False
    made = produced(executor, steps)
    return all(
        first_hit_relinked(executor, steps, made, i, signature)[1] is None for i in range(len(steps))
    )


def _simpler_values(p: Param, value: Any, args: Any = None) -> list[Any]:
    """Candidates simpler than ``value`` for one parameter, simplest first.

    A size's simplest value is its natural one (what a correct caller
    declares); failing that, smaller is simpler (a 1-byte payload, as a
    syzkaller reproducer has it).
    """
    if p.kind == "size" and isinstance(value, int):
        natural = p.natural(args or {}) if callable(p.natural) else None
        if value == natural:
            return []
        smaller = _toward(p.lo, p.hi, value)
        return [natural, *smaller] if natural is not None and p.lo <= natural <= p.hi else smaller
    if p.kind == "bool":
        return [False] if value else []
    if p.kind == "choice":
        return list(p.choices[: p.choices.index(value)]) if value in p.choices else []
    if p.kind == "int" and isinstance(value, int):
        return _toward(p.lo, p.hi, value)
    return []  # handles stay as produced


def _toward(lo: int, hi: int, value: int) -> list[int]:
    """Integers closer than ``value`` to 0 (or to ``lo`` if 0 is out of range), halving the distance."""
    floor = 0 if lo <= 0 <= hi else lo
    out = [floor]
    step = (value - floor) // 2
    while step:
        out.append(value - step)
        step //= 2
    return [v for v in dict.fromkeys(out) if abs(v - floor) < abs(value - floor)]


def _simpler_callers(c: Caller, space: CallerSpace, scopes: Sequence[str]) -> list[Caller]:
    out = []
    if c.switches:
        out.append(attrs.evolve(c, switches=frozenset()))
    if c.lockdown != "none":
        out.append(attrs.evolve(c, lockdown="none"))
    for caps in space.caps:
        if caps < c.caps:
            out.append(attrs.evolve(c, caps=caps))
    if c.scope in scopes:
        out.extend(attrs.evolve(c, scope=s) for s in scopes[: scopes.index(c.scope)])
    return out


def simplify(executor: Executor, steps: Sequence[Step], signature: str,
             expired: Clock | None = None) -> list[Step]:
    """Greedily make callers plainer and arguments smaller while the violation stays.

    Hypothesis shrinks one failure per round; signatures met on the way are
    only step-minimized, so without this pass their arguments keep whatever
    the generator drew (a debugfs switch, lockdown, byte 100).  If ``expired``
    runs out: the plainest sequence found so far.
    """
    try:
        return _simplify(executor, steps, signature, expired)
    except Expired as stop:
        return stop.args[0] if stop.args else list(steps)


def _simplify(executor: Executor, steps: Sequence[Step], signature: str, expired: Clock | None) -> list[Step]:
    current = list(steps)
    channels = {c.name: c for c in executor.subsystem.channels}
    for i in range(len(current)):
        improved = True
        while improved:
            improved = False
            step = current[i]
            if step.actor == "kernel":
                params = executor.actions[step.op].params
                callers: list[Caller] = []
            else:
                params = executor.params[(step.channel, step.op)]
                channel = channels[step.channel]
                assert step.caller is not None
                callers = _simpler_callers(step.caller, channel.callers or executor.subsystem.callers,
                                           channel.scopes)
            candidates = [attrs.evolve(step, caller=c) for c in callers]
            for p in params:
                for v in _simpler_values(p, step.args.get(p.name), step.args):
                    candidates.append(attrs.evolve(step, args={**step.args, p.name: v}))
            for cand in candidates:
                trial = [*current[:i], cand, *current[i + 1:]]
                try:
                    hit = first_hit(executor, trial, signature, expired)
                except Expired:
                    raise Expired(current) from None
                if hit is not None and hit == len(trial):
                    current = trial
                    improved = True
                    break
    return current
