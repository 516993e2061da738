"""The invariants every subsystem gets (design.md, "Invariants every subsystem gets")."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import attrs

from fuzzer import lifetimes
from fuzzer.api import StepContext
from fuzzer.effects import describe
from fuzzer.errors import ModelError
from fuzzer.sizes import Access
from fuzzer.spec import ABSENT, Invariant, Violation

KERNEL_OWNED = "kernel-owned-integrity"
DECLARED = "declared-effects"
ACCESS = "access"
OUT_OF_BOUNDS = "out-of-bounds"


def kernel_owned_integrity(ctx: StepContext) -> Iterator[Violation]:
    """A kernel-owned field this step moved away from what the kernel believes.

    Only fields the step changed are examined, so one corruption is reported
    at the step that caused it, not again after every later step.
    """
    world = ctx.world
    state, shadow, kernel = world.device.state, world.shadow, world.kernel
    for name in ctx.changed:
        f = world.field(name)
        if f.kernel_owned is None:
            continue
        if f.per_instance:
            if name not in shadow:  # owned only while the kernel believes it
                continue
        elif not f.owned(kernel):
            continue
        elif name not in shadow:
            raise ModelError(
                f"field {name!r} is kernel-owned now but the kernel holds no belief about it: call "
                f"world.believe({name!r}) where the driver learns it (probe), or make its ownership "
                f"per instance with kernel_owned=BELIEVED"
            )
        now = state.get(name, ABSENT)
        if now != shadow[name]:
            why = f" ({f.doc})" if f.doc else ""
            yield ctx.violation(
                KERNEL_OWNED,
                f"{name} is {now!r} on the device but the kernel believes {shadow[name]!r}{why}",
                field=f.name,
            )


def declared_effects(ctx: StepContext) -> Iterator[Violation]:
    """A userspace command changed a field whose effect class it did not declare."""
    if ctx.step.actor != "user" or not ctx.changed:
        return
    names = ctx.world.subsystem.effects
    for name in ctx.changed:
        f = ctx.world.field(name)
        if f.effect and not f.effect & ctx.declared:  # Effect.NONE: no declaration needed
            yield ctx.violation(
                DECLARED,
                f"{ctx.step.op} declared {describe(ctx.declared, names)} but changed {name} "
                f"({describe(f.effect, names)})",
                field=f.name,
                severity="hole",  # a lying device is a bug whatever the taint
            )


def access(ctx: StepContext) -> Iterator[Violation]:
    """Denied commands change nothing; allowed privileged ones meet the policy's promises."""
    if ctx.step.actor != "user" or ctx.decision is None:
        return
    if not ctx.decision.allowed:
        for name in ctx.changed:
            yield ctx.violation(ACCESS, f"denied {ctx.step.op} still changed {name}",
                                field=ctx.world.field(name).name)
        return
    policy = ctx.world.policy
    if policy is None:
        return
    observed = 0
    for name in ctx.changed:
        observed |= ctx.world.field(name).effect
    caller = ctx.step.caller
    assert caller is not None
    scopes = {c.name: c.scopes for c in ctx.world.subsystem.channels}
    for promise in policy.promises:
        if promise.channel != ctx.step.channel:
            continue
        if promise.effects is not None and not observed & promise.effects:
            continue
        what = describe(observed & promise.effects, ctx.world.subsystem.effects) if promise.effects else "any effect"
        # a promise of no capability does not look at the caller's: the bounded proof's step classes
        # (fuzzer.watched) then merge the callers that differ only in them
        missing = sorted(promise.caps - caller.caps) if promise.caps else []
        if missing:
            yield ctx.violation(
                ACCESS,
                f"{ctx.step.op} had {what} without {', '.join(missing)} ({promise.cite})",
                field="caps",
                severity="hole",
            )
        if promise.min_scope is not None:
            rank = scopes.get(ctx.step.channel, ())
            have = rank.index(caller.scope) if caller.scope in rank else -1
            if have < rank.index(promise.min_scope):
                yield ctx.violation(
                    ACCESS,
                    f"{ctx.step.op} had {what} at scope {caller.scope} below "
                    f"{promise.min_scope} ({promise.cite})",
                    field="scope",
                    severity="hole",
                )
        if caller.lockdown not in promise.lockdown:
            yield ctx.violation(
                ACCESS,
                f"{ctx.step.op} was allowed under lockdown={caller.lockdown} ({promise.cite})",
                field="lockdown",
                severity="hole",
            )
        absent = sorted(promise.taint - ctx.world.tainted)
        if absent:
            yield ctx.violation(
                ACCESS,
                f"{ctx.step.op} had {what} but left the kernel without taint "
                f"{', '.join(absent)} ({promise.cite})",
                field="taint",
                severity="hole",
            )


def first_fault(ctx: StepContext) -> tuple[str, Access] | None:
    """The step's first bad memory event, in the order the model made them, and the invariant it belongs to.

    Transports keep to the kernel's code order, so this is where a kernel
    stops: a fault (a write through kvzalloc(0)'s ZERO_SIZE_PTR), or KASAN's one
    report (``kasan_multi_shot`` is off by default); what the code would have
    done after it is not something a real run shows.  A leak comes last: it is
    what is still allocated once the request has returned.
    """
    accesses = ctx.accesses
    if not accesses:
        return None
    global _first
    cached = _first  # one read: another thread's executor may replace it meanwhile
    if cached[0] is accesses:  # five invariants ask about the same step
        return cached[1]
    found = _scan(accesses)
    _first = (accesses, found)
    return found


#: the last step's accesses and its first fault (kept alive here, so the tuple's id is not reused)
_first: tuple[Any, Any] = (None, None)


def _scan(accesses: tuple[Access, ...]) -> tuple[str, Access] | None:
    for a in accesses:
        if a.lifetime:
            return a.lifetime, a
        if a.out_of_bounds:
            return OUT_OF_BOUNDS, a
    for a in accesses:
        if a.leaked:
            return lifetimes.LEAK, a
    return None


def _memory(name: str, ctx: StepContext) -> Iterator[Violation]:
    found = first_fault(ctx)
    if found is None or found[0] != name:
        return
    a = found[1]
    v = ctx.violation(name, f"{ctx.step.op}: {a.describe()}", field=a.buffer)
    v = attrs.evolve(v, op=a.site)
    # memory safety is not something a policy can trust a caller with
    yield v if a.kind == "user" else attrs.evolve(v, severity="hole")


def out_of_bounds(ctx: StepContext) -> Iterator[Violation]:
    """The first read or write of a step past the bytes a buffer really has, reported as KASAN would.

    The signature names the function and the buffer, as a KASAN title does
    ("slab-out-of-bounds Read in cxl_payload_from_user_allowed"), not the
    command or the offset: one missing check is one finding, whichever of the
    forty mailbox commands shows it.  The message names the command.  Kernel
    memory and device registers are a hole whatever the taint; the caller's
    own buffer follows the taint, because the kernel WARNs when it overruns it.
    Only the step's first bad memory event counts (``first_fault``).
    """
    return _memory(OUT_OF_BOUNDS, ctx)


def use_after_free(ctx: StepContext) -> Iterator[Violation]:
    """A read or write of a freed buffer (KASAN: "slab-use-after-free Read in f"): function and buffer."""
    return _memory(lifetimes.USE_AFTER_FREE, ctx)


def double_free(ctx: StepContext) -> Iterator[Violation]:
    """A second free of a buffer (KASAN: "double-free in f", f the function that called the free)."""
    return _memory(lifetimes.DOUBLE_FREE, ctx)


def invalid_free(ctx: StepContext) -> Iterator[Violation]:
    """A free by a function that cannot free that memory (``fuzzer.lifetimes.why_invalid`` says what the kernel does)."""
    return _memory(lifetimes.INVALID_FREE, ctx)


def leak(ctx: StepContext) -> Iterator[Violation]:
    """An allocation still live when the request returned (kmemleak's "unreferenced object"; its
    backtrace names the allocating function, which the signature names)."""
    return _memory(lifetimes.LEAK, ctx)


GENERIC = (
    Invariant(KERNEL_OWNED, kernel_owned_integrity, doc="kernel-owned fields equal the shadow"),
    Invariant(DECLARED, declared_effects, doc="changes fit the declared effects"),
    Invariant(ACCESS, access, doc="privileged effects met the policy's promises"),
    Invariant(OUT_OF_BOUNDS, out_of_bounds, doc="no buffer is read or written past its size"),
    Invariant(lifetimes.USE_AFTER_FREE, use_after_free, doc="no buffer is read or written after it is freed"),
    Invariant(lifetimes.DOUBLE_FREE, double_free, doc="no buffer is freed twice"),
    Invariant(lifetimes.INVALID_FREE, invalid_free, doc="every free is by a function that can free that memory"),
    Invariant(lifetimes.LEAK, leak, doc="every allocation is freed or kept before the request returns"),
)
