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
from collections.abc import Callable, Sequence
from enum import Enum
from typing import Any

from fuzzer.cmplog import Traced
from fuzzer.executor import Executor
from fuzzer.spec import ABSENT
from fuzzer.touched import HANDLES, taint_keys
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

    def __init__(self, world: World, wrap: Callable[[World], None] | None = None) -> None:
        """``wrap``: done to the world after the copy and after each restore (``fuzzer.bounded`` watches its
        maps with it: ``fuzzer.touched.WatchedMap``)."""
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
        self.wrap = wrap
        if wrap is not None:
            wrap(world)
        self.mark(world)

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

    def mark(self, world: World) -> None:
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

    def changed(self, executor: Executor, changes: Sequence[tuple[str, Any, Any]],
                ) -> tuple[frozenset[Any], frozenset[Any], frozenset[Any]] | None:
        """The keys in which the current world differs from the snapshot's: of the device state (the
        executor's ``changes`` of the step since the snapshot), of the kernel's bookkeeping (by value; the
        taint as ``fuzzer.touched.taint_keys``, the handle counter as ``HANDLES``) and of the shadow
        (by value); None if the device state is another object (the changes may not tell it all) or the taint
        lost a flag (``WatchedWorld.taint`` counts on a child's taint holding its parent's)."""
        world = executor.world
        if world is not self.world or world.device.state is not self.live_state or not world.tainted >= self.tainted:
            return None
        kernel = _differ(world.kernel, self.kernel) | taint_keys(self.tainted, world.tainted)
        if world.handles != self.handles:
            kernel |= {HANDLES}
        return frozenset(k for k, _, _ in changes), kernel, _differ(world.shadow, self.shadow)

    def restore(self, executor: Executor) -> None:
        world = self.world
        executor.world = world
        world.device.state = dict(self.state) if self.flat else self._copy(self.state)
        mutable, pristine = self.mutable, self.kernel
        world.kernel = {k: self._copy(v) if k in mutable else v for k, v in pristine.items()}
        world.shadow = dict(self.shadow)
        world.tainted = self.tainted
        world.handles = self.handles
        if self.wrap is not None:
            self.wrap(world)
        self.mark(world)




def _differ(now: dict[Any, Any], then: dict[Any, Any]) -> frozenset[Any]:
    """The keys whose values differ between two maps (present in one only, or not ``==``), read with ``dict``'s own
    methods (a watched map's reads here are not a step's)."""
    out = set()
    for k in {*dict.keys(now), *dict.keys(then)}:
        a, b = dict.get(now, k, ABSENT), dict.get(then, k, ABSENT)
        try:
            same = a is b or bool(a == b)
        except Exception:  # an __eq__ that will not answer: say it differs
            same = False
        if not same:
            out.add(k)
    return frozenset(out)
