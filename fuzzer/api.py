"""What every plugin callable receives, as Protocols: the objects' public faces, documented once.

A handler gets a ``Device``; a kernel action, probe, driver and reaction get a
``World``; an invariant gets a ``StepContext``; a policy rule gets a
``Request`` (a record, in ``fuzzer.spec``).  Type your plugin's functions
with these, imported from ``fuzzer``; the engine's classes (``fuzzer.world``)
implement them and may grow, but these promises stay.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # pragma: no cover
    from fuzzer.lifetimes import Allocator
    from fuzzer.sizes import Access, Buffer, BufferKind
    from fuzzer.spec import (
        Command,
        Decision,
        DeviceVariant,
        Field,
        Policy,
        Reply,
        Step,
        Subsystem,
        Trust,
        Violation,
    )


class Device(Protocol):
    """The emulated device as its firmware handlers see it."""

    #: live state, one key per field (``name`` or ``family:instance``); values are immutable
    state: dict[str, Any]
    #: static facts of the variant (capacities, feature tables)
    info: Mapping[str, Any]
    variant: DeviceVariant

    def execute(self, op: str, args: Mapping[str, Any]) -> Reply:
        """Run firmware op ``op``; the subsystem's ``unsupported`` status if it has none."""
        ...


class World(Protocol):
    """The device and the kernel model of one sequence, as kernel code sees them."""

    @property
    def device(self) -> Device:
        """The live device."""
        ...

    #: the driver's bookkeeping: a plain dict of the plugin's own design
    kernel: dict[str, Any]
    #: the kernel's belief about each kernel-owned key (kept with ``believe``/``forget``)
    shadow: dict[str, Any]
    #: the policy under test (its ``knobs`` are its settings); None outside a run
    policy: Policy | None
    subsystem: Subsystem
    #: the kernel's taint flags; they survive kernel-model resets
    tainted: frozenset[str]

    def mailbox(self, op: str, **args: Any) -> Reply:
        """Send a firmware op as the driver does: no policy, straight to the device."""
        ...

    def believe(self, *keys: str) -> None:
        """The kernel now knows the device's current value of ``keys`` (a gone key is forgotten)."""
        ...

    def forget(self, *keys: str) -> None:
        """The kernel stops believing anything about ``keys`` (a per-instance key stops being owned)."""
        ...

    def taint(self, *flags: str) -> None:
        """Taint the kernel; taint is never cleared."""
        ...

    def publish(self, bundle: str, *handles: Any) -> None:
        """From the probe or a reaction: ``handles`` go into ``bundle`` for later steps to take.

        A reaction names the bundle in its ``produces``; a kernel action or a
        command returns its handles in its ``Reply`` instead.
        """
        ...

    def new_handle(self, prefix: str) -> str:
        """A deterministic handle name (``region0``, ``region1`` ...), so replays print the same."""
        ...

    def field(self, key: str) -> Field:
        """The declared field a state key belongs to (``qp:5`` -> the ``qp`` family)."""
        ...

    def buffer(self, name: str, size: int, data: bytes = b"", *, kind: BufferKind = "kernel",
               allocator: Allocator | None = None, by: str = "") -> Buffer:
        """A buffer whose reads and writes the ``out-of-bounds`` invariant checks; with an ``allocator``
        (called in function ``by``), one the lifetime invariants also follow until it is freed."""
        ...


class StepContext(Protocol):
    """What an invariant sees about the step that just ran."""

    #: 1-based index of the step in its sequence
    index: int
    step: Step

    @property
    def world(self) -> World:
        """The world after the step."""
        ...

    #: the device state before the step
    before: dict[str, Any]
    #: the state keys the step changed (check these, not the whole state: see ``Invariant``)
    changed: tuple[str, ...]
    taint_before: frozenset[str]
    #: the user command (None for a kernel action), the policy's decision and the reply
    command: Command | None
    decision: Decision | None
    reply: Reply | None
    #: the effects the command declared (its CEL entry, or per payload)
    declared: int
    #: the policy's trusts that cover this step's caller and command; ``violation()`` matches each
    #: violation against their ``invariants`` and ``fields``
    trusts: tuple[Trust, ...]
    #: every buffer read, write, allocation and free of the step, in the kernel's order
    accesses: tuple[Access, ...]

    @property
    def allowed(self) -> bool:
        """True for kernel actions and for commands the policy let through."""
        ...

    @property
    def tainted(self) -> bool:
        """The kernel is tainted now."""
        ...

    @property
    def trusted(self) -> bool:
        """Some trust covers this step's caller (not every violation of the step need be trusted)."""
        ...

    def violation(self, invariant: str, message: str, field: str = "-", *,
                  severity: str | None = None) -> Violation:
        """A violation of ``invariant`` at this step, its severity from the taint and trust."""
        ...
