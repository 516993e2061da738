"""A world's snapshot: return to it after steps changed it, instead of replaying the path that led there.

The bounded proof (``fuzzer.bounded``) returns to a node after each step that
changed it; the state-guided search (``fuzzer.explore``) branches from the
worlds that reached a new abstract state.  Both would otherwise replay the
path from ``Executor.reset``, which costs as many steps as the path is long.
A snapshot copies only what a step can change, so a restore costs less than
one step on the builtin models.
"""

from __future__ import annotations

import copy
from enum import Enum
from typing import Any

from fuzzer.cmplog import Traced
from fuzzer.executor import Executor
from fuzzer.spec import ABSENT
from fuzzer.world import World

__all__ = ["Snapshot"]


def _immutable(value: Any, known: dict[int, Any]) -> bool:
    """Whether ``value`` can never change: atoms, enums, and tuples and frozensets of such (remembered by id)."""
    t = type(value)
    if t in _ATOMS or isinstance(value, Enum):
        return True
    if t is tuple or t is frozenset:
        if id(value) in known:
            return True
        if all(_immutable(v, known) for v in value):
            known[id(value)] = value  # kept alive, so the id is not reused
            return True
    return False


_ATOMS = frozenset({str, int, bool, float, bytes, type(None), Traced})  # Traced: an int argument a handler stored


class Snapshot:
    """A node's world, to return to after each step that changed it, instead of replaying the node's path.

    Only the world's mutable parts are copied: the device state, the kernel's
    bookkeeping, the shadow, taint and the handle counter (``World.__slots__``;
    the rest is the subsystem's declarations).  Immutable values are shared;
    dicts, lists and sets are copied level by level; anything else a plugin
    keeps in its kernel dict (an object of its own) is ``copy.deepcopy``-ed,
    the world and device it may point back to excepted.  ``tests/test_bounded.py``
    checks that this gives the same states and transitions as replaying.
    """

    def __init__(self, world: World) -> None:
        self.known: dict[int, Any] = {}
        self.world = world
        self.device = world.device
        self.state = self._copy(world.device.state)
        #: the device state holds only immutable values (the World's contract): a restore is a dict copy
        self.flat = all(_immutable(v, self.known) for v in self.state.values())
        self.kernel = self._copy(world.kernel)
        #: the kernel keys whose values can change in place (copied on restore, compared by value)
        self.mutable = tuple(k for k, v in self.kernel.items() if not _immutable(v, self.known))
        self.shadow = dict(world.shadow)
        self.tainted = world.tainted
        self.handles = world.handles
        self._mark(world)

    def _copy(self, value: Any) -> Any:
        if _immutable(value, self.known):
            return value
        t = type(value)
        if t is dict:
            return {k: self._copy(v) for k, v in value.items()}
        if t is list:
            return [self._copy(v) for v in value]
        if t is set:
            return {self._copy(v) for v in value}
        return copy.deepcopy(value, {id(self.world): self.world, id(self.device): self.device})

    def _mark(self, world: World) -> None:
        """Remember what the current world holds, to tell cheaply whether a step changed it."""
        self.live_state = world.device.state
        self.live_kernel = dict(world.kernel)

    def unchanged(self, executor: Executor) -> bool:
        """The world is still the node's (the device state did not change: the executor's diff says so)."""
        world = executor.world
        return (world is self.world and world.device.state is self.live_state and world.tainted is self.tainted
                and self.kernel_unchanged(executor))

    def kernel_unchanged(self, executor: Executor) -> bool:
        """The kernel's side of the world is the node's, taint aside: bookkeeping, shadow and handle counter.

        Same objects in the bookkeeping, and its mutable values equal to the
        snapshot's (``==``: an object of a plugin's own that compares by
        identity never is, so it is restored, the safe way to be wrong)."""
        world = executor.world
        if world is not self.world or world.handles != self.handles or world.shadow != self.shadow:
            return False
        kernel, ref = world.kernel, self.live_kernel
        if len(kernel) != len(ref) or any(kernel.get(k, ABSENT) is not v for k, v in ref.items()):
            return False
        pristine = self.kernel
        try:
            return all(kernel[k] == pristine[k] for k in self.mutable)
        except Exception:  # an __eq__ that will not answer: say it changed
            return False

    def restore(self, executor: Executor) -> None:
        world = self.world
        executor.world = world
        world.device.state = dict(self.state) if self.flat else self._copy(self.state)
        mutable, pristine = self.mutable, self.kernel
        world.kernel = {k: self._copy(v) if k in mutable else v for k, v in pristine.items()}
        world.shadow = dict(self.shadow)
        world.tainted = self.tainted
        world.handles = self.handles
        self._mark(world)


