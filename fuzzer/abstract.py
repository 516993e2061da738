"""The abstract state of a world: what the kernel owns and believes, not the arguments that got there.

Two worlds with the same abstract state are treated as having the same
future: the bounded proof (``fuzzer.bounded``) explores each abstract state
once, and a state-guided search can count them.  What goes in:

* **kernel-owned fields, by value**: every device key whose owner says the
  kernel owns it *now* (``Field.kernel_owned``: ``ALWAYS``, a predicate over
  the kernel model that holds, or ``BELIEVED`` / a family member while the
  shadow holds it).  These are what the integrity invariant protects, so a
  different value is a different situation for every policy;
* **what the kernel believes** (``world.shadow``), by value: a belief that
  differs from the device is exactly a hole's precondition;
* **the kernel's bookkeeping** (``world.kernel``), made hashable (``freeze``):
  dicts and sets become frozensets (order never matters), lists tuples,
  anything unhashable (or hashed by identity) its ``repr``;
* **taint** (``world.tainted``);
* **live handles per bundle, as counts** (``live``, when the caller tracks
  them): "two regions" is a state, "region0 and region3" is not.

What is left out, and why:

* **raw values of device fields the kernel does not own**: an LSA byte, a
  timestamp, a scrub setting nobody owns.  Only their *value class* is kept: for a field the
  kernel believes, whether the device still agrees with the belief; for any
  other, whether it still has the value the device variant ships with.  Keeping
  the values would make every written byte a new state (the state space is then
  the argument space) and nothing would be explored twice, nor once in depth.
  Except: a field the kernel owns under a condition that does not hold now
  (CXL's ``security.state`` and ``security.passphrase`` until an nvdimm binds)
  is kept by value when the value is a scalar (a string, int, bool or None), since the kernel
  takes whatever the device holds once the condition holds (``_class``); a byte buffer
  such as the LSA keeps only its class;
* **argument values** of the steps that led here, and handle names;
* the step count and the executor's counters.

The price: two worlds that differ only in a device-owned value are merged,
so a future that depends on the exact value (the LSA bytes an nvdimm will read
at bind, not just "the LSA was written") is explored from whichever world
was reached first.  Say so wherever a result rests on it (``fuzzer.bounded``).

Example::

    >>> from fuzzer import host
    >>> from fuzzer.world import Step
    >>> reg = host.load()
    >>> ex = reg.executor("cxl", reg.policy("cxl", "linux-ioctl"), reg.device("cxl", "spec"))
    >>> start = abstract_state(ex)
    >>> _ = ex.apply(Step("kernel", "nvdimm_bind"))
    >>> abstract_state(ex) != start      # the kernel now owns the label area
    True
    >>> _ = ex.reset()
    >>> abstract_state(ex) == start      # a fresh world is the same state, in any process
    True
"""

from __future__ import annotations

import weakref
from collections.abc import Hashable, Iterator, Mapping, Sequence
from enum import Enum
from typing import Any

from fuzzer.executor import Executor
from fuzzer.spec import ABSENT, Field
from fuzzer.world import World

__all__ = ["abstract_state", "freeze"]

#: per executor: the device state its variant ships with (the "changed or not" class of device-owned
#: fields), and each state key's field (a family member's lookup parses the key)
_KNOWN: weakref.WeakKeyDictionary[Executor, tuple[dict[str, Any], dict[str, Field]]] = weakref.WeakKeyDictionary()


#: types whose values are their own frozen form (checked by exact type: the hot path)
_ATOMS = frozenset({str, int, bool, float, bytes, type(None)})


def freeze(value: Any) -> Hashable:
    """``value`` as a hashable, order-independent equivalent: dicts and sets as frozensets, lists as tuples.

    A tuple or frozenset that hashes is kept as it is (the common case, and
    the cheap one).  Something unhashable, or hashed by identity (a plain
    object whose equal twin would hash differently), becomes its ``repr``,
    tagged so that it never equals a string.
    """
    t = type(value)
    if t in _ATOMS:
        return value
    if t is tuple or t is frozenset:
        try:
            hash(value)
            return value
        except TypeError:
            pass
    if value is None or isinstance(value, (str, int, float, bytes, Enum)):
        return value
    if isinstance(value, Mapping):
        return ("{}", frozenset((freeze(k), freeze(v)) for k, v in value.items()))
    if isinstance(value, (tuple, frozenset)):
        try:
            hash(value)
            return value
        except TypeError:
            pass
        return tuple(freeze(v) for v in value) if isinstance(value, tuple) else frozenset(freeze(v) for v in value)
    if isinstance(value, set):
        return ("set", frozenset(freeze(v) for v in value))
    if isinstance(value, list):
        return ("list", tuple(freeze(v) for v in value))
    if type(value).__hash__ is None or type(value).__hash__ is object.__hash__:
        return ("repr", repr(value))
    try:
        hash(value)
    except Exception:  # a frozen record holding a dict: hashable by type, not by contents
        return ("repr", repr(value))
    return value


def _owned_now(world: World, key: str, fields: dict[str, Field]) -> bool:
    f = fields.get(key)
    if f is None:
        f = fields[key] = world.field(key)
    if f.kernel_owned is None:
        return False
    if f.per_instance:
        return key in world.shadow
    return f.owned(world.kernel)


#: the value types a field the kernel may own later is kept by, and None (a byte buffer such as the LSA is not:
#: every written byte would be a state, and linux-raw's depth-3 proof grew from 88,210 states to 1.96 million).
#: By ``isinstance``: a traced step (``fuzzer.cmplog``) leaves an int subclass in the device state.
_SCALARS = (str, int)


def _class(value: Any, believed: Any, shipped: Any, field: Field) -> Hashable | None:
    """The class of a device field the kernel does not own now (None: as the variant ships it, and not believed).

    A field the kernel owns under a condition that does not hold now (``security.*`` and ``shutdown_state`` while
    no nvdimm is bound; not the ``lsa`` bytes, see ``_SCALARS``) is kept by value: once the condition holds the
    kernel takes what the device has, and which value that was decides the future (issue 20: "UNLOCK after
    cold reset" needs the locked state apart from the unlocked one, both "changed" to the coarser class, and
    the proof missed it at depth 4)."""
    if field.kernel_owned is not None and not field.per_instance and (value is None or isinstance(value, _SCALARS)):
        return None if believed is ABSENT and _same(value, shipped) else ("=", value)
    if believed is not ABSENT:  # believed but not owned now: does the device still agree?
        return _same(value, believed)
    return None if _same(value, shipped) else False


def abstract_state(executor: Executor, live: Mapping[str, Sequence[Any]] | None = None) -> Hashable:
    """The abstract state of ``executor``'s current world (see the module docstring for what it holds).

    ``live``: the handles alive per bundle, as a search tracks them (only their
    counts count).  Stable: equal worlds give equal states in any process;
    nothing in it refers to the world, so the world may change afterwards.

    Example (a state-guided search)::

        seen: set[Hashable] = set()
        result = executor.apply(step)
        if abstract_state(executor, live) not in seen: ...   # a new situation: keep this world
    """
    world = executor.world
    state = world.device.state
    shadow = world.shadow
    known = _KNOWN.get(executor)
    if known is None:
        known = _KNOWN[executor] = (executor.variant.state(), {})
    shipped, fields = known
    owned: list[tuple[str, Hashable]] = []
    moved: list[tuple[str, Hashable]] = []
    for key, value in state.items():
        if _owned_now(world, key, fields):
            owned.append((key, freeze(value)))
            continue
        cls = _class(value, shadow.get(key, ABSENT), shipped.get(key, ABSENT), fields[key])
        if cls is not None:
            moved.append((key, cls))
    handles = frozenset() if live is None else frozenset((b, len(h)) for b, h in live.items() if h)
    return (frozenset(owned), frozenset(moved), freeze(shadow), freeze(world.kernel), world.tainted, handles)


def _same(a: Any, b: Any) -> bool:
    try:
        return a is b or bool(a == b)
    except Exception:  # an __eq__ that will not answer: say it differs
        return False



def bucket(n: int) -> int:
    """``n`` in AFL's hit-count classes: 0, 1, 2 and 3 apart, then one class per power of two (negative: -1)."""
    return -1 if n < 0 else n if n < 4 else n.bit_length() + 1


def coarse(value: Any) -> Hashable:
    """A value's class for ``state_facts``: booleans and None as they are, an int by ``bucket`` (one at or past
    2**16, a timestamp or an address, is just big), a container or a string by its length's bucket, anything else
    by its type's name."""
    t = type(value)
    if t is bool or value is None or isinstance(value, Enum):
        return value
    if t is int:
        return bucket(value) if value < 1 << 16 else "big"
    if isinstance(value, (str, bytes, tuple, list, dict, set, frozenset)):
        return ("len", bucket(len(value)))
    return t.__name__


def state_facts(executor: Executor, live: Mapping[str, Sequence[Any]] | None = None,
                keys: Sequence[str] | None = None) -> Iterator[Hashable]:
    """The facts of a world, for steering a search rather than proving: a world showing one never seen is new.

    ``abstract_state`` keeps kernel-owned values and the kernel's bookkeeping
    by value, which a proof needs and a search drowns in: on cxl
    ``linux-raw`` 8,000 random sequences reached about 7,000 abstract states
    (each scrub period, poison address and timestamp is one), and even a
    state made only of "changed or not" per field had thousands (each
    combination of changed fields is one).  A fact is one field's class:
    a device field's value class (``coarse``: an int by ``bucket``, a
    container or string by its length's bucket) with whether it differs from
    the kernel's belief and whether the kernel owns it now; a kernel
    bookkeeping entry's class; taint; a bundle's live handle count by
    ``bucket``.  As AFL keeps an input that hits a new edge or a new hit-count
    bucket, a search keeps a world that shows a new fact: there are hundreds
    of facts, not thousands of states, and a chain such as "a passphrase set,
    a cold reset (the device is locked now), the nvdimm bound (the kernel owns
    the security state now)" shows a new one at each step.

    ``keys``: only these device fields' facts (a step that changed only them).
    """
    world = executor.world
    shadow = world.shadow
    known = _KNOWN.get(executor)
    if known is None:
        known = _KNOWN[executor] = (executor.variant.state(), {})
    fields = known[1]
    state = world.device.state
    for key in state if keys is None else keys:
        value = state.get(key, ABSENT)
        believed = shadow.get(key, ABSENT)
        yield (key, coarse(value), believed is not ABSENT and not _same(value, believed),
               _owned_now(world, key, fields))
    if keys is not None:
        return
    for key, value in world.kernel.items():
        yield ("kernel", key, coarse(value))
    yield ("tainted", world.tainted)
    if live is not None:
        for b, h in live.items():
            yield ("live", b, bucket(len(h)))


class Base:
    """A world's abstract state in parts, to compute its successors' after steps that moved only the device.

    ``abstract_state`` looks at every device field; most steps a bounded proof
    runs change one or two, and leave the kernel's side (bookkeeping, shadow,
    taint) as it was.  Then which fields the kernel owns is unchanged, so the
    successor's state is this one with the changed fields' entries redone:
    ``after`` does that in O(changed).  Equal to ``abstract_state`` of the
    successor world (``tests/test_bounded.py`` holds it to that); the caller
    must know that only the device and the taint moved.
    """

    def __init__(self, executor: Executor) -> None:
        world = executor.world
        self.executor = executor
        parts: tuple[Any, ...] = abstract_state(executor)  # type: ignore[assignment]  # its tuple's parts
        self.owned: dict[str, Hashable] = dict(parts[0])
        self.moved: dict[str, Hashable] = dict(parts[1])
        self.shadow: Hashable = parts[2]
        self.kernel: Hashable = parts[3]
        self.world = world

    def after(self, changes: Sequence[tuple[str, Any, Any]], live: Mapping[str, Sequence[Any]] | None = None,
              tainted: frozenset[str] | None = None) -> Hashable:
        """The abstract state after a step whose ``changes`` (the executor's (key, before, after)) and taint
        were the only changes to the world: its kernel bookkeeping and shadow are the base world's (which
        fields the kernel owns depends on those two only).  ``tainted``: the taint after the step, if it is
        not the current world's (a step judged without running: ``fuzzer.bounded``)."""
        world = self.world
        shipped, fields = _KNOWN[self.executor]
        owned, moved = dict(self.owned), dict(self.moved)
        shadow = world.shadow
        for key, _, value in changes:
            owned.pop(key, None)
            moved.pop(key, None)
            if value is ABSENT:  # the field is gone
                continue
            if _owned_now(world, key, fields):
                owned[key] = freeze(value)
                continue
            cls = _class(value, shadow.get(key, ABSENT), shipped.get(key, ABSENT), fields[key])
            if cls is not None:
                moved[key] = cls
        handles = frozenset() if live is None else frozenset((b, len(h)) for b, h in live.items() if h)
        return (frozenset(owned.items()), frozenset(moved.items()), self.shadow, self.kernel,
                world.tainted if tainted is None else tainted, handles)
