"""What a step touches of the world: the bounded proof's reuse of a step class across states.

While the bounded proof (``fuzzer.bounded``, "Cross-state reuse") expands
a node whose children will be expanded, the device state, the kernel's
bookkeeping and the shadow are ``WatchedMap`` s that note each key a step
reads or writes (``world_read``), and the world is a ``WatchedWorld`` that
notes its taint (by flag) and handle counter as more keys of the kernel's.
A step class whose run changed nothing (or only the device and the taint) is
then judged again from a child world that differs from its parent only in
keys the run did not touch.  ``fuzzer.watched`` does the same for a step's
caller and arguments, within one world.

What touches a key: ``m[k]``, ``m.get(k)``, ``k in m`` (objects come and go,
so presence differs between worlds) and a write (``m[k] = v``, ``del``,
``pop``, ``setdefault``); anything that sees the whole map touches all of it
(``ALL``).  ``copy()`` touches nothing and returns a ``WatchedMap`` on the
same record: what is later read of the copy is noted (the executor's
``before``, which invariants read).  The executor's own diff of the state
uses ``dict``'s methods, so it is not counted: which keys it reports is
decided by the step's writes, which are.  What would defeat the record: a
model that keeps world state anywhere else (a module's global, an attribute
of the device other than ``state``: ``fuzzer.snapshot`` restores only these
parts too), code that tells worlds apart by identity, or C code that reads a
``WatchedMap``'s storage directly.
"""

from __future__ import annotations

from collections.abc import ItemsView, Iterable, Iterator, KeysView, ValuesView
from collections.abc import Set as AbstractSet
from typing import Any

import attrs

from fuzzer.world import World

__all__ = ["ALL", "HANDLES", "TAINT", "TaintView", "Touched", "WatchedMap", "WatchedWorld", "taint_keys", "world_read"]

#: in a ``WatchedMap``'s record: the whole map was seen
ALL = "\0all"
#: in the kernel's record: the world's taint and its handle counter were read or written (``WatchedWorld``)
TAINT = "\0tainted"
HANDLES = "\0handles"


class WholeView(dict[Any, Any]):
    """A ``dict`` whose whole-map views (iteration, ``keys``/``values``/``items``, ``len``, ``==``, ``repr``)
    call ``_all``: a record of reads, where seeing the whole mapping reads every key."""

    def _all(self) -> None:
        raise NotImplementedError

    def __iter__(self) -> Iterator[Any]:
        self._all()
        return super().__iter__()

    def __reversed__(self) -> Iterator[Any]:
        self._all()
        return super().__reversed__()

    def keys(self) -> KeysView[Any]:  # type: ignore[override]
        self._all()
        return super().keys()

    def values(self) -> ValuesView[Any]:  # type: ignore[override]
        self._all()
        return super().values()

    def items(self) -> ItemsView[Any, Any]:  # type: ignore[override]
        self._all()
        return super().items()

    def __len__(self) -> int:
        self._all()
        return super().__len__()

    def __eq__(self, other: object) -> bool:
        self._all()
        return super().__eq__(other)

    def __ne__(self, other: object) -> bool:
        self._all()
        return super().__ne__(other)

    def __repr__(self) -> str:
        self._all()
        return super().__repr__()


class WatchedMap(WholeView):
    """A world's ``dict`` (device state, kernel bookkeeping, shadow) that notes each key touched in ``seen``
    (see the module docstring for what touches what)."""

    __slots__ = ("seen",)

    def __init__(self, data: Any = (), seen: set[Any] | None = None) -> None:
        super().__init__(data)
        self.seen: set[Any] = set() if seen is None else seen

    def _all(self) -> None:
        self.seen.add(ALL)

    def __getitem__(self, key: Any) -> Any:
        self.seen.add(key)
        return super().__getitem__(key)

    def get(self, key: Any, default: Any = None) -> Any:
        self.seen.add(key)
        return super().get(key, default)

    def __contains__(self, key: object) -> bool:
        self.seen.add(key)
        return super().__contains__(key)

    def __setitem__(self, key: Any, value: Any) -> None:
        self.seen.add(key)
        super().__setitem__(key, value)

    def __delitem__(self, key: Any) -> None:
        self.seen.add(key)
        super().__delitem__(key)

    def setdefault(self, key: Any, default: Any = None) -> Any:
        self.seen.add(key)
        return super().setdefault(key, default)

    def pop(self, key: Any, *default: Any) -> Any:
        self.seen.add(key)
        return super().pop(key, *default)

    def copy(self) -> WatchedMap:
        return WatchedMap(dict.items(self), self.seen)  # dict.copy would call keys(), the whole map

    def __reduce_ex__(self, protocol: Any) -> Any:  # copy, deepcopy, pickle
        self._all()
        return dict, (dict(dict.items(self)),)

    def popitem(self) -> tuple[Any, Any]:
        self._all()
        return super().popitem()

    def clear(self) -> None:
        self._all()
        super().clear()

    def update(self, *args: Any, **kwargs: Any) -> None:
        self._all()
        super().update(*args, **kwargs)

    def __or__(self, other: Any) -> Any:
        self._all()
        return dict(dict.items(self)) | other

    def __ror__(self, other: Any) -> Any:
        self._all()
        return other | dict(dict.items(self))

    def __ior__(self, other: Any) -> WatchedMap:
        self._all()
        super().update(other)
        return self


class WatchedWorld(World):
    """A ``World`` whose taint and handle counter note what a step reads of them as the kernel's keys: a
    world's class is set to it while the proof watches (same slots, so it may be).

    The handle counter is one key (``HANDLES``).  The taint is read through a ``TaintView`` while a step
    runs, which notes a flag's membership as the key ``(TAINT, flag)`` and anything that sees the whole
    set as ``TAINT``; a flag the step itself added (``taint``) is known without reading.  Adding flags
    reads nothing: the taint after is the taint before with them, whatever it was, and a proof hands a
    class on only to a child whose taint holds its parent's (``fuzzer.snapshot.Snapshot.changed``).
    """

    __slots__ = ()

    @property
    def tainted(self) -> frozenset[str]:
        value: frozenset[str] = _TAINTED.__get__(self)
        return TaintView(value, world_read.added) if world_read.active else value  # type: ignore[return-value]

    @tainted.setter
    def tainted(self, value: frozenset[str]) -> None:
        world_read.kernel.add(TAINT)
        _TAINTED.__set__(self, frozenset(value))

    @property
    def handles(self) -> int:
        world_read.kernel.add(HANDLES)
        return _HANDLES.__get__(self)

    @handles.setter
    def handles(self, value: int) -> None:
        world_read.kernel.add(HANDLES)
        _HANDLES.__set__(self, value)

    def taint_mark(self) -> frozenset[str]:
        value: frozenset[str] = _TAINTED.__get__(self)
        # not a read yet: what the invariants do with it is (no flag of it is the step's own)
        return TaintView(value, frozenset()) if world_read.active else value  # type: ignore[return-value]

    def taint(self, *flags: str) -> None:
        if world_read.active:
            world_read.added.update(flags)
        _TAINTED.__set__(self, _TAINTED.__get__(self) | frozenset(flags))


_TAINTED, _HANDLES = World.__dict__["tainted"], World.__dict__["handles"]


def taint_keys(before: frozenset[str], after: frozenset[str]) -> frozenset[Any]:
    """The kernel's keys a change of taint from ``before`` to ``after`` changed: ``TAINT`` and each new flag's."""
    new = after - before
    return frozenset((TAINT, *((TAINT, f) for f in new))) if new or after != before else frozenset()


class TaintView(AbstractSet[str]):
    """The taint as a step sees it: a read-only set that notes each flag whose membership it answers
    (``(TAINT, flag)``: ``in``, ``A - t``, ``A & t``, ``t >= A``, ``isdisjoint``) and ``TAINT`` for anything
    that sees it whole (iteration, ``len``, ``==``, ``hash``, ``t - A``, ``|``).  Not a ``frozenset``
    subclass on purpose: C set methods read a subclass's storage directly (``A.issubset(t)``), but must
    iterate anything else, which notes it whole.  Results are plain frozensets."""

    __slots__ = ("own", "value")

    def __init__(self, value: frozenset[str], own: AbstractSet[str]) -> None:
        self.value, self.own = value, own

    @classmethod
    def _from_iterable(cls, it: Iterable[Any]) -> frozenset[Any]:
        return frozenset(it)

    def __contains__(self, flag: object) -> bool:
        if flag not in self.own:
            world_read.kernel.add((TAINT, flag))
        return flag in self.value

    def _whole(self) -> frozenset[str]:
        world_read.kernel.add(TAINT)
        return self.value

    def __iter__(self) -> Iterator[str]:
        return iter(self._whole())

    def __len__(self) -> int:
        return len(self._whole())

    def __bool__(self) -> bool:
        return True if self.own & self.value else bool(self._whole())

    def __eq__(self, other: object) -> bool:
        return self._whole() == (other.value if isinstance(other, TaintView) else other)

    def __ne__(self, other: object) -> bool:
        return not self == other

    def __hash__(self) -> int:
        return hash(self._whole())

    def __repr__(self) -> str:
        return repr(self._whole())

    def __reduce__(self) -> Any:  # copy, deepcopy, pickle
        return frozenset, (self._whole(),)

    def __ge__(self, other: AbstractSet[Any]) -> bool:  # (the mixin's compares lengths first: the whole set)
        if not isinstance(other, AbstractSet):
            return NotImplemented
        return all(x in self for x in other)

    def issuperset(self, other: Iterable[Any]) -> bool:
        return self >= frozenset(other)

    def issubset(self, other: Iterable[Any]) -> bool:
        return self._whole() <= frozenset(other)

    def intersection(self, *others: Iterable[Any]) -> frozenset[str]:
        out = self._whole() if not others else frozenset(x for x in frozenset(others[0]) if x in self)
        return out.intersection(*others[1:])

    def union(self, *others: Iterable[Any]) -> frozenset[str]:
        return self._whole().union(*others)

    def difference(self, *others: Iterable[Any]) -> frozenset[str]:
        return self._whole().difference(*others)

    def symmetric_difference(self, other: Iterable[Any]) -> frozenset[str]:
        return self._whole().symmetric_difference(other)

    def copy(self) -> frozenset[str]:
        return self._whole()


@attrs.frozen
class Touched:
    """What a step touched of the world's maps: device state keys, kernel bookkeeping keys, shadow keys."""

    state: frozenset[Any]
    kernel: frozenset[Any]
    shadow: frozenset[Any]

    def misses(self, state: frozenset[Any], kernel: frozenset[Any], shadow: frozenset[Any]) -> bool:
        """Whether none of these changed keys was touched (a touched ``ALL`` meets any key)."""
        return all(not changed or (ALL not in mine and mine.isdisjoint(changed))
                   for changed, mine in ((state, self.state), (kernel, self.kernel), (shadow, self.shadow)))


class _WorldRead:
    """The keys the step being run touched of each watched map of the world (``begin()`` before it)."""

    def __init__(self) -> None:
        self.state: set[Any] = set()
        self.kernel: set[Any] = set()
        self.shadow: set[Any] = set()
        #: a step runs (``begin`` to ``taken``): the taint is read through a ``TaintView``
        self.active = False
        #: the taint flags the step being run added
        self.added: set[str] = set()
        #: equal records made once (many steps touch the same keys): shared, so memory and pickles hold each once
        self.known: dict[Touched, Touched] = {}

    def begin(self) -> None:
        """A step starts: nothing touched yet."""
        self.state.clear()
        self.kernel.clear()
        self.shadow.clear()
        self.added.clear()
        self.active = True

    def taken(self) -> Touched:
        """The step ended: what it touched since ``begin()``, as a shared immutable record."""
        self.active = False
        t = Touched(frozenset(self.state), frozenset(self.kernel), frozenset(self.shadow))
        return self.known.setdefault(t, t)


#: the world's keys the step being run touched (only while the proof watches the world)
world_read = _WorldRead()
