"""The mutable state of one run: the device, the kernel's bookkeeping and its shadow.

Kept deliberately plain (dicts of immutable values) because the executor
snapshots and diffs the device after every step: a shallow copy and ``!=`` per
field is the cheapest honest way to see what a command changed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import attrs

from fuzzer.errors import ModelError
from fuzzer.lifetimes import Allocator
from fuzzer.safetext import shown
from fuzzer.sizes import Access, Buffer, BufferKind
from fuzzer.spec import (
    ABSENT,
    Args,
    Command,
    Decision,
    DeviceVariant,
    Field,
    Handler,
    Policy,
    Reply,
    Step,
    Subsystem,
    Trust,
    Violation,
)

__all__ = ["Device", "Step", "StepContext", "World", "firmware_table"]


def firmware_table(subsystem: Subsystem, commands: Mapping[str, Command],
                   variant: DeviceVariant | None = None) -> dict[str, Handler]:
    """What the firmware runs, by op: the forwarded commands' handlers, then the firmware ops,
    then the variant's own firmware ops (which replace the subsystem's of the same op)."""
    table: dict[str, Handler] = {op: c.handler for op, c in commands.items() if c.handler is not None}
    table.update({f.op: f.handler for f in subsystem.firmware})
    if variant is not None:
        table.update({f.op: f.handler for f in variant.firmware})
    return table


class Device:
    """A device variant's live state plus its firmware, as handlers see it."""

    __slots__ = ("commands", "firmware", "info", "state", "unsupported", "variant")

    def __init__(self, variant: DeviceVariant, commands: Mapping[str, Command],
                 firmware: Mapping[str, Handler] | None = None, unsupported: int = -1) -> None:
        self.variant = variant
        self.info = variant.info
        self.state: dict[str, Any] = variant.state()
        self.commands = commands
        self.firmware = firmware if firmware is not None else {
            op: c.handler for op, c in commands.items() if c.handler is not None}
        self.unsupported = unsupported

    def execute(self, op: str, args: Args) -> Reply:
        handler = self.firmware.get(op)
        if handler is None:
            if self.unsupported < 0:
                raise ModelError(f"the firmware has no op {op!r}; declare it as a Firmware or give the "
                                 f"Subsystem an unsupported= status to answer")
            return Reply(rc=self.unsupported)
        reply = handler(self, args)
        if not isinstance(reply, Reply):
            raise ModelError(f"firmware handler for {op} returned {type(reply).__name__}, not a Reply")
        return reply


class World:
    """Device + kernel model for one sequence.

    What every plugin callable receives (``probe``, kernel actions, drivers,
    reactions, and invariants through ``ctx.world``):

    * ``device``: the live device (``device.state``, ``device.info``);
    * ``kernel``: the driver's bookkeeping, a plain dict the plugin defines
      (regions, bound nvdimm, cached feature table);
    * ``shadow``: the kernel's belief about each kernel-owned key, kept with
      ``believe`` and ``forget``;
    * ``policy``: the policy under test (``policy.knobs`` for its settings);
    * ``tainted``: the kernel's taint flags, engine state that survives a
      kernel-model reset (``taint(...)`` adds to them);
    * ``publish(bundle, *handles)``: handles the probe or a reaction makes
      available to later steps (a kernel action or a command returns them
      in its ``Reply`` instead).
    """

    __slots__ = ("accesses", "bundles", "device", "families", "fields", "handles", "kernel", "policy", "published",
                 "publishing", "scopes", "shadow", "subsystem", "tainted")

    def __init__(
        self,
        subsystem: Subsystem,
        variant: DeviceVariant,
        commands: Mapping[str, Command],
        policy: Policy | None = None,
        firmware: Mapping[str, Handler] | None = None,
    ) -> None:
        self.subsystem = subsystem
        self.policy = policy
        self.fields: dict[str, Field] = {f.name: f for f in subsystem.fields if not f.family}
        self.families: dict[str, Field] = {f.name: f for f in subsystem.fields if f.family}
        self.scopes: dict[str, tuple[str, ...]] = {c.name: c.scopes for c in subsystem.channels}
        table = firmware if firmware is not None else firmware_table(subsystem, commands, variant)
        self.device = Device(variant, commands, table, subsystem.unsupported)
        self.kernel: dict[str, Any] = subsystem.kernel()
        self.shadow: dict[str, Any] = {}
        self.handles = 0
        self.tainted: frozenset[str] = frozenset()
        #: every buffer access, allocation and free of the current step (the memory oracle reads it)
        self.accesses: list[Access] = []
        #: the bundles some parameter takes handles from (the executor fills it; the probe may publish into these)
        self.bundles: frozenset[str] = frozenset()
        #: (bundle, handle) published by the probe or the current step's reactions, in order
        self.published: list[tuple[str, Any]] = []
        #: who may publish now and into which bundles (set by the executor around the probe and each reaction)
        self.publishing: tuple[str, frozenset[str]] | None = None

    def buffer(self, name: str, size: int, data: bytes = b"", *, kind: BufferKind = "kernel",
               fill: Callable[[], bytes] | None = None, allocator: Allocator | None = None,
               by: str = "") -> Buffer:
        """A buffer of ``size`` bytes whose accesses the memory oracle checks; given an ``allocator``
        (and the function ``by`` that calls it), an allocation that must be freed before the request ends."""
        buf = Buffer(name, size, data, kind=kind, log=self.accesses, fill=fill)
        return buf.allocated(allocator, by) if allocator else buf

    def mailbox(self, op: str, **args: Any) -> Reply:
        """Send a firmware op as the kernel driver does: no policy, straight to the device."""
        return self.device.execute(op, args)

    def field(self, key: str) -> Field:
        """The field a state key belongs to: its own, or its family's (``qp:5`` -> ``qp``)."""
        f = self.fields.get(key)
        if f is None:
            f = self.families.get(key.partition(":")[0])
            if f is None:
                raise ModelError(
                    f"{self.subsystem.name} device state has key {key!r}, which no declared "
                    f"field or field family covers; declare Field({key.partition(':')[0]!r}, ..., family=True)"
                )
        return f

    def believe(self, *names: str) -> None:
        """Record that the kernel now knows the device's current value of ``names``.

        A key the device no longer has (an object the kernel destroyed) is
        forgotten, so the kernel stops expecting it.
        """
        state = self.device.state
        for name in names:
            value = state.get(name, ABSENT)
            if value is ABSENT:
                self.shadow.pop(name, None)
            else:
                self.shadow[name] = value

    def forget(self, *names: str) -> None:
        """The kernel stops believing anything about ``names`` (and so stops owning a per-instance key)."""
        for name in names:
            self.shadow.pop(name, None)

    def publish(self, bundle: str, *handles: Any) -> None:
        """Make ``handles`` available to later steps through ``bundle``, from the probe or a reaction.

        The probe's handles (the block devices the driver created at bind)
        are there when every sequence starts; a reaction's (a rescan found a
        new namespace) from the step it ran after.  The searches draw them
        for any parameter that takes ``bundle``; replay and the minimizer see
        them as ``StepResult.published``, so names must be deterministic
        (``new_handle``).
        """
        if self.publishing is None:
            raise ModelError(
                f"world.publish({bundle!r}) outside the probe or a reaction: a kernel action or a command "
                f"publishes by returning Reply(handle=...) or Reply(handles=...) and declaring produces={bundle!r}")
        who, allowed = self.publishing
        if bundle not in allowed:
            if who == "the probe":
                raise ModelError(
                    f"world.publish({bundle!r}) into a bundle no parameter takes; "
                    f"the subsystem's handle bundles are {sorted(allowed)}")
            raise ModelError(f"world.publish({bundle!r}) into a bundle the reaction does not name: "
                             f"add {bundle!r} to its produces= (it names {sorted(allowed)})")
        for h in handles:
            if isinstance(h, bool) or not isinstance(h, (str, int)):
                raise ModelError(f"world.publish({bundle!r}, ...): a handle is a string or an int (a corpus file "
                                 f"stores it), got {type(h).__name__} {shown(h)}")
            self.published.append((bundle, h))

    def taint(self, *flags: str) -> None:
        """Taint the kernel (``TAINT_WARN``, ``TAINT_FWCTL`` ...); taint is never cleared."""
        self.tainted = self.tainted | frozenset(flags)

    def taint_mark(self) -> frozenset[str]:
        """The taint as a step starts, for ``StepContext.taint_before``: the executor's own look, which a
        proof's watched world (``fuzzer.touched.WatchedWorld``) does not count as the step's read."""
        return self.tainted

    def new_handle(self, prefix: str) -> str:
        """Deterministic handle names (``region0``, ``region1``...) so replays print the same."""
        name = f"{prefix}{self.handles}"
        self.handles += 1
        return name


@attrs.define
class StepContext:
    """What an invariant sees about the step that just ran."""

    index: int
    step: Step
    world: World
    before: dict[str, Any]
    changed: tuple[str, ...]
    taint_before: frozenset[str]
    command: Command | None = None
    decision: Decision | None = None
    reply: Reply | None = None
    declared: int = 0
    #: the policy's trusts that cover this step's caller and command (``Policy.trusts_for``)
    trusts: tuple[Trust, ...] = ()
    #: every buffer read and write of the step (``fuzzer.sizes.Access``)
    accesses: tuple[Access, ...] = ()

    @property
    def allowed(self) -> bool:
        return self.decision is None or self.decision.allowed

    @property
    def tainted(self) -> bool:
        return bool(self.world.tainted)

    @property
    def trusted(self) -> bool:
        """Some trust of the policy covers this step's caller (which of its violations: ``Trust.excuses``)."""
        return bool(self.trusts)

    def violation(self, invariant: str, message: str, field: str = "-", *, severity: str | None = None) -> Violation:
        """Make a violation for this step.

        Severity: ``trusted`` if a trust of the policy covers the step's
        caller and names this invariant and field (``Trust.excuses``), else
        the one given, else ``tainted`` if the kernel is, else ``hole``.
        """
        if self.trusts and any(t.excuses(invariant, field) for t in self.trusts):
            sev = "trusted"
        else:
            sev = severity or ("tainted" if self.tainted else "hole")
        return Violation(
            invariant=invariant,
            field=field,
            message=message,
            severity=sev,  # type: ignore[arg-type]
            op=self.step.op,
            step=self.index,
            subsystem=self.world.subsystem.name,
        )
