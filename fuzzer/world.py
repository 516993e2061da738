"""The mutable state of one run: the device, the kernel's bookkeeping and its shadow.

Kept deliberately plain (dicts of immutable values) because the executor
snapshots and diffs the device after every step: a shallow copy and ``!=`` per
field is the cheapest honest way to see what a command changed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import attrs

from fuzzer.errors import ModelError
from fuzzer.safetext import shown
from fuzzer.spec import (
    ABSENT,
    Args,
    Caller,
    Command,
    Decision,
    DeviceVariant,
    Field,
    Policy,
    Reply,
    Subsystem,
    Violation,
)

#: Device return code the model answers for an opcode it does not implement.
UNSUPPORTED = 3


class Device:
    """A device variant's live state plus its command table, as handlers see it."""

    __slots__ = ("commands", "info", "state", "variant")

    def __init__(self, variant: DeviceVariant, commands: Mapping[str, Command]) -> None:
        self.variant = variant
        self.info = variant.info
        self.state: dict[str, Any] = variant.state()
        self.commands = commands

    def execute(self, op: str, args: Args) -> Reply:
        cmd = self.commands.get(op)
        if cmd is None or cmd.handler is None:
            return Reply(rc=UNSUPPORTED)
        return cmd.handler(self, args)


class World:
    """Device + kernel model for one sequence.

    ``kernel`` is the driver's bookkeeping (regions, bound nvdimm, cached
    feature table, taint flags under the key ``taint``); ``shadow`` is the
    kernel's belief about each kernel-owned field.
    """

    __slots__ = ("device", "families", "fields", "handles", "kernel", "policy", "scopes", "shadow", "subsystem")

    def __init__(
        self,
        subsystem: Subsystem,
        variant: DeviceVariant,
        commands: Mapping[str, Command],
        policy: Policy | None = None,
    ) -> None:
        self.subsystem = subsystem
        self.policy = policy
        self.fields: dict[str, Field] = {f.name: f for f in subsystem.fields if not f.family}
        self.families: dict[str, Field] = {f.name: f for f in subsystem.fields if f.family}
        self.scopes: dict[str, tuple[str, ...]] = {c.name: c.scopes for c in subsystem.channels}
        self.device = Device(variant, commands)
        self.kernel: dict[str, Any] = subsystem.kernel()
        self.kernel.setdefault("taint", frozenset())
        self.shadow: dict[str, Any] = {}
        self.handles = 0

    def mailbox(self, op: str, **args: Any) -> Reply:
        """Send a command as the kernel driver does: no policy, straight to the device."""
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

    def taint(self, *flags: str) -> None:
        self.kernel["taint"] = self.kernel["taint"] | frozenset(flags)

    def new_handle(self, prefix: str) -> str:
        """Deterministic handle names (``region0``, ``region1``...) so replays print the same."""
        name = f"{prefix}{self.handles}"
        self.handles += 1
        return name


@attrs.frozen
class Step:
    """One action of a sequence: a kernel action or a userspace command."""

    actor: Literal["kernel", "user"]
    op: str
    args: Mapping[str, Any] = attrs.field(factory=dict)
    channel: str = ""
    caller: Caller | None = None

    def describe(self) -> str:
        args = ", ".join(f"{k}={shown(v)}" for k, v in self.args.items())  # a 16 MiB value is cut
        if self.actor == "kernel":
            return f"kernel {self.op}({args})"
        who = self.caller.describe() if self.caller else "?"
        return f"user   {self.channel} {self.op}({args}) as {who}"


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

    @property
    def allowed(self) -> bool:
        return self.decision is None or self.decision.allowed

    @property
    def tainted(self) -> bool:
        return bool(self.world.kernel["taint"])

    def violation(self, invariant: str, message: str, field: str = "-", *, severity: str | None = None) -> Violation:
        """Make a violation for this step; severity defaults to ``tainted`` if the kernel is."""
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
