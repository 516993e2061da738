"""A step whose caller and arguments record what was read of them: the bounded proof's step classes.

The bounded proof (``fuzzer.bounded``) tries, from each state, every
argument set of every move with every caller of its channel (CXL's RAW
path: 229 argument sets of SET_LSA x 18 callers).  Most of these runs read
little of the step: a RAW command refused under lockdown reads the caller's
lockdown and the declared input size, not the capabilities nor the bytes.
The executor is deterministic, so a step whose run, from a given world, read
only the caller fields ``F`` and the argument keys ``K`` runs *identically*
for every step of the same move, from the same world, that agrees with it on
``F`` and ``K``: the same policy decision, reply, changes, violations and
successor world.  The proof runs one step per such class and counts the
others as judged by it (``Proof.applied`` says how many ran).

What counts as a read:

* of the caller (``Watched``): an attribute access to one of its fields,
  from anywhere (rules, transports, drivers, invariants, ``describe()``);
  and all of them when it is hashed, compared or printed (``==``, a dict or
  set lookup, ``repr``), since those see every field;
* of the arguments (``WatchedArgs``, a ``dict``): ``args[k]``, ``args.get(k)``
  and a write read ``k``; anything that sees the whole mapping -- iteration,
  ``keys``/``values``/``items``, ``len``, ``==``, ``repr``, a copy, ``**args``
  -- reads every key.  ``k in args`` reads nothing: every argument set of a
  move has the same keys (``fuzzer.bounded.arguments``), so presence cannot
  tell two of them apart.

The executor's coverage counter (``Executor.reached``) hashes the caller on
every step; the proof swaps it for ``Uncounted`` while it runs, so that
bookkeeping does not read the caller on the policy's behalf (a proof reports
no coverage).

What would defeat it, and does not occur in ptfuzz's models: code that tells
two callers or argument sets apart without reading them through these
methods -- by identity (``is``, ``id()``), by ``type()``, or by C code that
reads a ``dict`` subclass's storage directly (``PyDict_GetItem``; the
builtins used on arguments here, ``dict(...)``, ``{**args}``, ``json``, go
through the overridden methods).  Callers and argument dicts are built fresh
for every step (``callers_of``, corpus files), so no model can rely on identity.
``tests/test_bounded.py`` holds the classes to running every step.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Hashable, ItemsView, Iterator, KeysView, Mapping, ValuesView
from operator import attrgetter, itemgetter
from typing import Any

import attrs

from fuzzer.spec import Caller

__all__ = ["FIELDS", "Classes", "Uncounted", "Watched", "WatchedArgs", "read", "watched"]

#: the fields of a ``Caller``, in declaration order
FIELDS: tuple[str, ...] = tuple(a.name for a in attrs.fields(Caller))
_FIELDS = frozenset(FIELDS)


class _Read:
    """What the step being run has read so far: caller fields, argument keys (one step at a time)."""

    def __init__(self) -> None:
        self.fields: set[str] = set()
        self.keys: set[str] = set()
        #: every key of the arguments was read (the whole mapping was seen)
        self.all_keys = False

    def clear(self) -> None:
        self.fields.clear()
        self.keys.clear()
        self.all_keys = False


#: the reads of the step being run (``clear()`` before it)
read = _Read()


class Watched(Caller):
    """A ``Caller`` equal (``==``, ``hash``) to the plain one with its fields, that notes each field read."""

    __slots__ = ()

    def __getattribute__(self, name: str) -> Any:
        if name in _FIELDS:
            read.fields.add(name)
        return object.__getattribute__(self, name)

    def plain(self) -> Caller:
        """The same caller as a plain ``Caller``; reads nothing."""
        get = object.__getattribute__
        return Caller(*(get(self, f) for f in FIELDS))

    def __eq__(self, other: object) -> bool:  # a plain Caller's __eq__ would refuse a subclass
        if not isinstance(other, Caller):
            return NotImplemented
        read.fields.update(FIELDS)
        return self.plain() == (other.plain() if isinstance(other, Watched) else other)

    def __ne__(self, other: object) -> bool:
        same = self.__eq__(other)
        return same if same is NotImplemented else not same

    def __hash__(self) -> int:
        read.fields.update(FIELDS)
        return hash(self.plain())

    def __repr__(self) -> str:
        read.fields.update(FIELDS)
        return repr(self.plain())


def watched(caller: Caller) -> Watched:
    """``caller`` as a ``Watched`` one."""
    return Watched(*(getattr(caller, f) for f in FIELDS))


class WatchedArgs(dict[str, Any]):
    """A step's arguments that note each key read (see the module docstring for what reads what)."""

    __slots__ = ()

    def _all(self) -> None:
        read.all_keys = True

    def __getitem__(self, key: str) -> Any:
        read.keys.add(key)
        return super().__getitem__(key)

    def get(self, key: str, default: Any = None) -> Any:
        read.keys.add(key)
        return super().get(key, default)

    def __setitem__(self, key: str, value: Any) -> None:
        read.keys.add(key)
        super().__setitem__(key, value)

    def __iter__(self) -> Iterator[str]:
        self._all()
        return super().__iter__()

    def keys(self) -> KeysView[str]:  # type: ignore[override]
        self._all()
        return super().keys()

    def values(self) -> ValuesView[Any]:  # type: ignore[override]
        self._all()
        return super().values()

    def items(self) -> ItemsView[str, Any]:  # type: ignore[override]
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

    def copy(self) -> dict[str, Any]:
        self._all()
        return dict(super().items())

    def __reduce_ex__(self, protocol: Any) -> Any:  # copy, deepcopy, pickle
        self._all()
        return dict, (dict(super().items()),)

    def pop(self, *args: Any) -> Any:
        self._all()
        return super().pop(*args)

    def popitem(self) -> tuple[str, Any]:
        self._all()
        return super().popitem()

    def setdefault(self, key: str, default: Any = None) -> Any:
        read.keys.add(key)
        return super().setdefault(key, default)

    def update(self, *args: Any, **kwargs: Any) -> None:
        self._all()
        super().update(*args, **kwargs)

    def __or__(self, other: Any) -> Any:
        self._all()
        return dict(super().items()) | other

    def __ror__(self, other: Any) -> Any:
        self._all()
        return other | dict(super().items())


class Classes:
    """The step classes met so far for one move from one world: which steps need not run again.

    Kept per read pattern (the caller fields and argument keys a run read): a
    table from the argument keys' values to the caller fields' values to what
    that class's step tallied (``Proof.uncounted``'s signatures).  The move's
    callers are fixed, so each pattern projects them once.  Every argument set
    of a move has the same keys in the same order (``fuzzer.bounded.arguments``),
    so a run that saw the whole mapping is identified by its values in order.
    """

    def __init__(self, callers: tuple[Caller | None, ...]) -> None:
        self.callers = callers
        #: (caller fields read, argument keys read or None for all) -> (the callers' projections, the argument
        #: keys' projection, table: argument values -> caller values -> tallied)
        self.tables: dict[tuple[tuple[str, ...], tuple[str, ...] | None],
                          tuple[list[Hashable], Callable[[Mapping[str, Any]], Hashable],
                                dict[Hashable, dict[Hashable, tuple[str, ...]]]]] = {}
        #: the pattern of the step ``add`` recorded last
        self.last: tuple[tuple[str, ...], tuple[str, ...] | None] = ((), ())

    def judged(self, args: Mapping[str, Any]) -> list[tuple[str, ...] | None]:
        """Per caller: what its class tallied, if a step of the class ran; else None (it must run)."""
        out: list[tuple[str, ...] | None] = [None] * len(self.callers)
        for of_callers, of_args, table in self.tables.values():
            try:
                sub = table.get(of_args(args))
            except (TypeError, KeyError):  # an unhashable value, a key this set lacks: not this pattern
                continue
            if sub is None:
                continue
            for i, value in enumerate(of_callers):
                if out[i] is None:
                    out[i] = sub.get(value)
        return out

    def add(self, args: Mapping[str, Any], index: int, tallied: tuple[str, ...]) -> list[int]:
        """Record the step just run (plain ``args``, the caller at ``index``) with what ``read`` says it
        read; the callers after it that are in its class (they agree on the fields it read)."""
        fields = tuple(f for f in FIELDS if f in read.fields) if self.callers[index] is not None else ()
        keys = None if read.all_keys else tuple(sorted(read.keys))
        pattern = self.tables.get((fields, keys))
        if pattern is None:
            of_caller: Callable[[Any], Any] = attrgetter(*fields) if fields else (lambda c: ())
            of_args: Callable[[Mapping[str, Any]], Hashable]
            if keys is None:
                of_args = lambda a: tuple(a.values())  # noqa: E731 - one expression, named by its type
            else:
                of_args = itemgetter(*keys) if keys else (lambda a: ())
            pattern = self.tables[(fields, keys)] = ([of_caller(c) for c in self.callers], of_args, {})
        of_callers, project, table = pattern
        mine = of_callers[index]
        try:
            table.setdefault(project(args), {})[mine] = tallied
        except (TypeError, KeyError):
            return []
        return [j for j in range(index + 1, len(of_callers)) if of_callers[j] == mine]


class Uncounted(Counter[Any]):
    """A coverage counter that counts nothing and hashes no key (see the module docstring)."""

    def get(self, key: Any, default: Any = None) -> Any:
        return 0

    def __getitem__(self, key: Any) -> int:
        return 0

    def __setitem__(self, key: Any, value: Any) -> None:
        pass
