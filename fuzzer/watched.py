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

The world's side, for reuse across states, is ``fuzzer.touched``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import (
    Callable,
    Hashable,
    Mapping,
    Sequence,
)
from operator import attrgetter, itemgetter
from typing import Any

import attrs

from fuzzer.spec import Caller
from fuzzer.touched import Touched, WholeView

__all__ = ["FIELDS", "Classes", "Effect", "Entry", "Uncounted", "Watched", "WatchedArgs", "read", "watched"]

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


class WatchedArgs(WholeView):
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




#: what a class's step did to a world whose only changes were the device's and the taint: the executor's
#: ``changes`` and the taint flags it added (None: none)
Effect = tuple[tuple[tuple[str, Any, Any], ...], "frozenset[str] | None"]
#: a class a proof may hand to a child world: (caller fields, argument keys) read, the arguments' and the caller's
#: values there, what it tallied, what it touched of the world, and its effect (None: it changed nothing)
Entry = tuple[tuple[tuple[str, ...], "tuple[str, ...] | None"], Hashable, Hashable, tuple[str, ...], Touched,
              "Effect | None"]


def _projections(callers: tuple[Caller | None, ...], fields: tuple[str, ...], keys: tuple[str, ...] | None,
                 ) -> tuple[list[Hashable], Callable[[Mapping[str, Any]], Hashable], tuple[tuple[Hashable, list[int]], ...]]:
    """A read pattern's projections of a move's callers and arguments, and the callers grouped by projection."""
    of_caller: Callable[[Any], Any] = attrgetter(*fields) if fields else (lambda c: ())
    of_args: Callable[[Mapping[str, Any]], Hashable]
    if keys is None:
        of_args = lambda a: tuple(a.values())  # noqa: E731 - one expression, named by its type
    else:
        of_args = itemgetter(*keys) if keys else (lambda a: ())
    of_callers = [of_caller(c) for c in callers]
    groups: dict[Hashable, list[int]] = {}
    for i, value in enumerate(of_callers):
        groups.setdefault(value, []).append(i)
    return of_callers, of_args, tuple(groups.items())


#: (id of a move's callers, caller fields, argument keys) -> (the callers, ``_projections``): the same for every
#: world the move is tried from (each node's ``Classes`` would otherwise make them again)
_PROJECTIONS: dict[tuple[int, tuple[str, ...], tuple[str, ...] | None], tuple[Any, ...]] = {}

#: a read pattern's projections and table (``Classes._pattern``)
Pattern = tuple[list[Hashable], Callable[[Mapping[str, Any]], Hashable], dict[Hashable, dict[Hashable, Any]],
                tuple[tuple[Hashable, list[int]], ...]]


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
        self.tables: dict[tuple[tuple[str, ...], tuple[str, ...] | None], Pattern] = {}
        #: the classes a child world may take, with what they touched of the world (``add``, ``inherit``)
        self.entries: list[Entry] = []
        #: per caller index, the effects of the inherited classes that changed the world met first by the
        #: last ``judged`` argument set (None: none)
        self.due: dict[int, Effect] | None = None

    def judged(self, args: Mapping[str, Any]) -> list[tuple[str, ...] | None]:
        """Per caller: what its class tallied, if a step of the class ran; else None (it must run).  An
        inherited class that changed the world, met here for the first time, is also ``due``: the first
        caller of its class here reaches a successor of its own (its later steps here, the same one)."""
        out: list[tuple[str, ...] | None] = [None] * len(self.callers)
        self.due = None
        for _, of_args, table, groups in self.tables.values():
            try:
                sub = table.get(of_args(args))
            except (TypeError, KeyError):  # an unhashable value, a key this set lacks: not this pattern
                continue
            if not sub:
                continue
            for value, indices in groups:
                same = sub.get(value)
                if same is not None:
                    if type(same) is _Later:
                        if self.due is None:
                            self.due = {}
                        self.due.setdefault(indices[0], same.effect)
                        same = sub[value] = same.tallied
                    for i in indices:
                        if out[i] is None:
                            out[i] = same
        return out

    def _pattern(self, fields: tuple[str, ...], keys: tuple[str, ...] | None) -> Pattern:
        """The read pattern's entry in ``tables``: the callers' projections, the arguments' projection, its table,
        and the callers grouped by projection (one lookup a group: a pattern that reads no caller field, one)."""
        pattern = self.tables.get((fields, keys))
        if pattern is None:
            made = _PROJECTIONS.get((id(self.callers), fields, keys))
            if made is None or made[0] is not self.callers:
                made = _PROJECTIONS[(id(self.callers), fields, keys)] = (self.callers, *_projections(
                    self.callers, fields, keys))
            pattern = self.tables[(fields, keys)] = (made[1], made[2], {}, made[3])
        return pattern

    def add(self, args: Mapping[str, Any], index: int, tallied: tuple[str, ...],
            touched: Touched | None = None, effect: Effect | None = None) -> list[int]:
        """Record the step just run (plain ``args``, the caller at ``index``) with what ``read`` says it
        read; the callers after it that are in its class (they agree on the fields it read).

        ``touched``: what the run touched of the world, given when a child world may take the class
        (``entries``, for its ``inherit``): it changed nothing, or only the device and the taint (``effect``)."""
        fields = tuple(f for f in FIELDS if f in read.fields) if self.callers[index] is not None else ()
        keys = None if read.all_keys else tuple(sorted(read.keys))
        of_callers, project, table, _ = self._pattern(fields, keys)
        mine = of_callers[index]
        try:
            values = project(args)
            table.setdefault(values, {})[mine] = tallied
        except (TypeError, KeyError):
            return []
        if touched is not None:
            self.entries.append(((fields, keys), values, mine, tallied, touched, effect))
        return [j for j in range(index + 1, len(of_callers)) if of_callers[j] == mine]

    def inherit(self, entries: Sequence[Entry], state: frozenset[Any], kernel: frozenset[Any],
                shadow: frozenset[Any]) -> None:
        """Take the parent world's classes that touched none of the keys that differ here (``state``,
        ``kernel``, ``shadow``): their steps run here as they ran there (``fuzzer.bounded``).  Those that
        changed the world become ``due`` when ``judged`` first meets them."""
        kept: dict[int, bool] = {}  # by the touched record's id: records are shared (``world_read.taken``)
        tables: dict[Any, dict[Hashable, dict[Hashable, Any]]] = {}
        for entry in entries:
            pattern, values, mine, tallied, touched, effect = entry
            ok = kept.get(id(touched))
            if ok is None:
                ok = kept[id(touched)] = touched.misses(state, kernel, shadow)
            if not ok:
                continue
            table = tables.get(pattern)
            if table is None:
                table = tables[pattern] = self._pattern(*pattern)[2]
            table.setdefault(values, {})[mine] = tallied if effect is None else _Later(tallied, effect)
            self.entries.append(entry)


class _Later:
    """An inherited class that changed the world, in a table until ``Classes.judged`` meets it."""

    __slots__ = ("effect", "tallied")

    def __init__(self, tallied: tuple[str, ...], effect: Effect) -> None:
        self.tallied, self.effect = tallied, effect


class Uncounted(Counter[Any]):
    """A coverage counter that counts nothing and hashes no key (see the module docstring)."""

    def get(self, key: Any, default: Any = None) -> Any:
        return 0

    def __getitem__(self, key: Any) -> int:
        return 0

    def __setitem__(self, key: Any, value: Any) -> None:
        pass
