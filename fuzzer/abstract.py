"""Abstract states: what a sequence has done to the kernel and the device, without its raw arguments.

The native search counts distinct abstract states, and the transitions
between them, as its coverage of the search space (issue 20): a campaign
that no longer reaches new ones has stopped learning.  An abstract state is
hashable and holds

* each kernel-owned field that is owned now: its value's *shape* and whether
  the device still holds what the kernel believes (the question the
  kernel-owned-integrity invariant asks); family members (``qp:5``) count
  under the family's name as none, one or several of each shape, so object
  ids and counts do not split states;
* the kernel's bookkeeping (``world.kernel``), shaped the same way;
* the taint flags.

A value's shape keeps what decides rules and invariants and drops the
variety of raw arguments: small integers (-1..2) stay as they are, larger
ones become their sign and bit length; strings up to 32 characters stay
(choices, states) except that a trailing number becomes ``#`` (handle names:
``ucontext7`` is a ucontext); bytes become whether any byte is set; containers are
shaped element by element, dicts and sets as sets of shapes (so ids and
counts of equal objects do not split states).  Everything else becomes its
type's name.  This is a simple version; its contract is the one function
``abstract_state(executor)``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable
from typing import Any

import attrs

from fuzzer.executor import Executor

#: Integers kept exactly (flags, states); others become (sign, bit length), so ids and sizes do not split states.
SMALL = range(-1, 3)
#: Longer strings become their length's bit length.
SHORT_TEXT = 32
#: Elements of a sequence shaped one by one; the rest become a count.
FIRST = 8


#: shapes of immutable containers by id, with the object itself (so the id is not reused while cached)
_SHAPED: dict[int, tuple[Any, Hashable]] = {}
#: entries ``_SHAPED`` holds before it is cleared
_SHAPED_MAX = 4096


def shape(v: Any) -> Hashable:
    """``v`` with the variety of raw values taken out (see the module's docstring)."""
    if v is None or isinstance(v, bool):
        return v
    if isinstance(v, int):
        return v if v in SMALL else ("int", v < 0, abs(v).bit_length())
    if isinstance(v, str):
        if len(v) > SHORT_TEXT:
            return ("str", len(v).bit_length())
        stem = v.rstrip("0123456789")  # handle names (``ucontext7``, ``region0``): the kind, not the instance
        return v if stem == v or not stem else (stem, "#")
    if isinstance(v, (tuple, frozenset, bytes)):  # immutable: most steps leave them alone, so remember
        hit = _SHAPED.get(id(v))
        if hit is not None and hit[0] is v:
            return hit[1]
        out = _shape_container(v)
        if len(_SHAPED) >= _SHAPED_MAX:
            _SHAPED.clear()
        _SHAPED[id(v)] = (v, out)
        return out
    return _shape_container(v)


def _shape_container(v: Any) -> Hashable:
    if isinstance(v, (bytes, bytearray, memoryview)):
        return ("bytes", bytes(v).strip(b"\0") != b"")
    if isinstance(v, (tuple, list)):
        head = tuple(shape(x) for x in v[:FIRST])
        return head if len(v) <= FIRST else (*head, ("more", (len(v) - FIRST).bit_length()))
    if isinstance(v, (set, frozenset)):
        return frozenset(shape(x) for x in v)
    if isinstance(v, dict):
        return frozenset((shape(k), shape(x)) for k, x in v.items())
    if attrs.has(type(v)):
        return (type(v).__name__, *(shape(getattr(v, a.name)) for a in attrs.fields(type(v))))
    if isinstance(v, float):
        return ("float", v < 0, int(abs(v)).bit_length())
    return type(v).__name__


#: per state key: (value, belief, its entry) last computed; unchanged keys are the same objects
_ENTRIES: dict[str, tuple[Any, Any, Hashable]] = {}
_NO_BELIEF = object()


def _entry(key: str, name: str, value: Any, belief: Any) -> Hashable:
    hit = _ENTRIES.get(key)
    if hit is not None and hit[0] is value and hit[1] is belief:
        return hit[2]
    out = (name, shape(value), belief is not _NO_BELIEF and bool(belief == value))
    if len(_ENTRIES) >= _SHAPED_MAX:
        _ENTRIES.clear()
    _ENTRIES[key] = (value, belief, out)
    return out


def abstract_state(executor: Executor) -> Hashable:
    """The abstract state of ``executor``'s world now: owned fields, kernel bookkeeping, taint."""
    world = executor.world
    state, shadow, kernel = world.device.state, world.shadow, world.kernel
    fields, families = world.fields, world.families
    owned: list[Hashable] = []
    members: Counter[Hashable] = Counter()
    for key, value in state.items():
        f = fields.get(key)
        if f is None:
            f = families.get(key.partition(":")[0])
            if f is None or f.kernel_owned is None or key not in shadow:
                continue
            members[_entry(key, f.name, value, shadow[key])] += 1
            continue
        if f.kernel_owned is None:
            continue
        if f.per_instance:
            if key not in shadow:
                continue
        elif not f.kernel_owned(kernel):
            continue
        owned.append(_entry(key, key, value, shadow.get(key, _NO_BELIEF)))
    # how many members of a kind: none, one, or several (counts would split states without end)
    return (tuple(owned), frozenset((m, min(n, 2)) for m, n in members.items()), shape(kernel), world.tainted)
