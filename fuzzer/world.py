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
      kernel-model reset (``taint(...)`` adds to them).
    """

    __slots__ = ("accesses", "device", "families", "fields", "handles", "kernel", "policy", "scopes", "shadow",
                 "subsystem", "tainted")

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

    def taint(self, *flags: str) -> None:
        """Taint the kernel (``TAINT_WARN``, ``TAINT_FWCTL`` ...); taint is never cleared."""
        self.tainted = self.tainted | frozenset(flags)

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
    #: the policy trusts this step's caller by design (``Trust``)
    trusted: bool = False
    #: every buffer read and write of the step (``fuzzer.sizes.Access``)
    accesses: tuple[Access, ...] = ()

    @property
    def allowed(self) -> bool:
        return self.decision is None or self.decision.allowed

    @property
    def tainted(self) -> bool:
        return bool(self.world.tainted)

    def violation(self, invariant: str, message: str, field: str = "-", *, severity: str | None = None) -> Violation:
        """Make a violation for this step.

        Severity: ``trusted`` if the policy trusts the step's caller by design,
        else the one given, else ``tainted`` if the kernel is, else ``hole``.
        """
        if self.trusted:
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
