"""Comparison logging for rule tables: which values a step's arguments were compared with.

A device that accepts a command only for one key out of 2^32, a policy rule
that passes a size only below a limit, a driver that takes a different path
for one opcode: the search draws boundaries and small values, but a value
the model compares an argument *with* is not among them unless it happens to
be.  Coverage-guided fuzzers solve the same problem for C code by logging the
operands of comparisons (AFL++'s CmpLog, libFuzzer's value profile, Redqueen's
input-to-state correspondence) and feeding them back as argument values.

Here a traced step's integer arguments are ``Traced`` ints: an ``int`` that,
while its step runs, records ``(parameter, other operand)`` whenever it is
compared (``==``, ``!=``, ``<``, ``<=``, ``>``, ``>=``, and so ``in`` a tuple
of values and ``lo <= v <= hi``) with another integer, by the policy's rules,
the transport, the driver, the device handler or an invariant.  Python gives a
subclass's reflected comparison priority, so ``5 == v`` is seen as well as
``v == 5``.  The search then draws those operands, and their neighbours
(``<`` against ``<=``), for that parameter (``fuzzer.explore.COMPARED``).

What it does not see (said once here): comparisons of a value derived from an
argument -- ``offset + length > size`` (arithmetic gives a plain ``int``), a
value read back out of the encoded payload bytes (fwctl's and RAW's rules
decode the request: new ints) -- and non-integer arguments (choices are drawn
from their declared list anyway).  A ``Traced`` that a model stores in the
device state stays an ``int`` in every other respect; it records nothing once
its step is over (``Log.begin`` starts a new step), and copies and pickles of
it are plain ints, so snapshots and corpus files never hold one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["LOG", "Log", "Traced", "traced_args"]


class Log:
    """The comparisons the traced step being run made: ``(parameter, operand)`` pairs."""

    def __init__(self) -> None:
        #: the step being traced (a fresh object per step); a ``Traced`` of another step records nothing
        self.step: object | None = None
        self.seen: list[tuple[str, int]] = []

    def begin(self) -> object:
        """Start tracing a step: forget what the last one compared; return its token for its ``Traced`` args."""
        self.step = token = object()
        self.seen = []
        return token

    def end(self) -> list[tuple[str, int]]:
        """Stop tracing; what the step compared, in order, without repeats."""
        self.step = None
        seen, self.seen = list(dict.fromkeys(self.seen)), []
        return seen


#: the one log (steps run one at a time in a process)
LOG = Log()


def _recorder(name: str, op: Callable[[int, int], bool]) -> Callable[[Traced, object], Any]:
    def compare(self: Traced, other: object) -> Any:
        if (isinstance(other, int) and not isinstance(other, bool) and self._step is LOG.step
                and self._step is not None):
            LOG.seen.append((self._param, int(other)))
        return op(self, other)  # type: ignore[arg-type]

    compare.__name__ = name
    return compare


class Traced(int):
    """An ``int`` argument that records what it is compared with while its step runs (see the module docstring)."""

    _param: str
    _step: object

    def __new__(cls, value: int, param: str, step: object) -> Traced:
        self = super().__new__(cls, value)
        self._param = param
        self._step = step
        return self

    __eq__ = _recorder("__eq__", int.__eq__)
    __ne__ = _recorder("__ne__", int.__ne__)
    __lt__ = _recorder("__lt__", int.__lt__)
    __le__ = _recorder("__le__", int.__le__)
    __gt__ = _recorder("__gt__", int.__gt__)
    __ge__ = _recorder("__ge__", int.__ge__)
    __hash__ = int.__hash__

    def __reduce__(self) -> tuple[type[int], tuple[int]]:
        return int, (int(self),)

    def __copy__(self) -> int:
        return int(self)

    def __deepcopy__(self, memo: dict[int, Any]) -> int:
        return int(self)


def traced_args(args: Mapping[str, Any], names: frozenset[str], step: object) -> dict[str, Any]:
    """``args`` with the integer values of ``names`` traced for ``step`` (``LOG.begin()``'s token)."""
    return {k: Traced(v, k, step) if k in names and type(v) is int else v for k, v in args.items()}
