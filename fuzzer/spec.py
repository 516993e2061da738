"""The declarative records a plugin hands to ptfuzz.

Every record is a frozen attrs class: a plugin describes its subsystem as data
(tables of fields, commands, rules) and a few small functions (a handler per
command, a check per policy rule).  The host only ever reads these records, so
a plugin cannot reach into the engine and the engine can index everything once
at start-up instead of on the per-step hot path.
"""

from __future__ import annotations

import errno as _errno
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Literal

import attrs

from fuzzer.effects import Effect
from fuzzer.safetext import shown

if TYPE_CHECKING:  # pragma: no cover
    from fuzzer.world import Device, StepContext, World

#: What a state field or argument may hold: JSON-able scalars and immutable
#: containers, so that a snapshot is a shallow ``dict`` copy and a diff is ``!=``.
Value = Any
Args = Mapping[str, Any]


class _Absent:
    """The value of a state key that does not exist (an object not yet created, or destroyed)."""

    _instance: _Absent | None = None

    def __new__(cls) -> _Absent:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "<absent>"

    def __reduce__(self) -> str:
        return "ABSENT"


#: What ``changes`` and the shadow show for a key that is not in the device state.
ABSENT: Any = _Absent()


# --------------------------------------------------------------------------- state


def _always(kernel: Mapping[str, Any]) -> bool:
    return True


@attrs.frozen
class Field:
    """One piece of device state, tagged with who owns it and what changing it means.

    ``kernel_owned`` is a predicate over the kernel model, because ownership is
    often conditional: the label storage area belongs to libnvdimm only while
    an nvdimm is bound.  ``None`` means the device (or userspace) owns it.

    A device whose state is a table of objects (an RDMA HCA's QPs, CQs,
    general objects) declares a *family*: ``family=True`` makes the field
    stand for every state key ``"<name>:<instance>"`` (``qp:5``), keys that
    appear and disappear as objects are created and destroyed.  Violations
    name the family, so one bug has one signature whatever the object id.

    Example::

        Field("scrub.cycle_hours", Effect.CONFIG_IMMEDIATE,
              kernel_owned=lambda k: True,
              doc="EDAC caches it in cxlmd->scrub_cycle (drivers/cxl/core/edac.c)")
        Field("qp", Effect.CONFIG_IMMEDIATE, ALWAYS, family=True,
              doc="queue pairs; the kernel owns those it created (it believes them)")
    """

    name: str
    effect: Effect
    kernel_owned: Callable[[Mapping[str, Any]], bool] | None = None
    doc: str = ""
    family: bool = False

    def owned(self, kernel: Mapping[str, Any]) -> bool:
        return self.kernel_owned is not None and self.kernel_owned(kernel)

    def key(self, instance: Any) -> str:
        """The state key of one member of a family: ``Field("qp", ...).key(5) == "qp:5"``."""
        return f"{self.name}:{instance}"


ALWAYS = _always


@attrs.frozen
class Param:
    """One argument of a command or kernel action.

    The same record drives generation (a Hypothesis strategy is derived from
    it), validation of corpus files and printing.  ``kind`` is one of:
    ``int`` (``lo``..``hi``), ``choice`` (one of ``choices``), ``bool``,
    ``handle`` (a value produced earlier into the bundle named ``bundle``).
    ``strategy`` overrides the derived strategy but not validation.
    """

    name: str
    kind: Literal["int", "choice", "bool", "handle"] = "int"
    lo: int = 0
    hi: int = 0
    choices: tuple[Any, ...] = ()
    bundle: str = ""
    consumes: bool = False
    strategy: Any = None
    doc: str = ""

    def check(self, value: Any) -> str | None:
        """Return why ``value`` is not acceptable, or None."""
        if self.kind == "bool":
            return None if isinstance(value, bool) else "expected true or false"
        if self.kind == "int":
            if isinstance(value, bool) or not isinstance(value, int):
                return f"expected an integer, got {shown(value)}"
            if not self.lo <= value <= self.hi:
                return f"{shown(value)} is outside {self.lo}..{self.hi}"
            return None
        if self.kind == "choice":
            return None if value in self.choices else f"{shown(value)} is not one of {list(self.choices)}"
        if self.kind == "handle":
            return None if isinstance(value, (str, int)) and not isinstance(value, bool) else (
                f"expected a {self.bundle} handle, got {shown(value)}"
            )
        return f"unknown parameter kind {self.kind!r}"


def check_args(params: tuple[Param, ...], args: Args) -> str | None:
    """Why ``args`` do not fit ``params`` (missing, unknown or bad values), or None."""
    names = {p.name for p in params}
    unknown = sorted(set(args) - names)
    if unknown:
        return f"unknown argument(s) {', '.join(shown(u) for u in unknown[:3])}; expected {sorted(names)}"
    for p in params:
        if p.name not in args:
            return f"missing argument {p.name!r}"
        why = p.check(args[p.name])
        if why:
            return f"argument {p.name!r}: {why}"
    return None


# --------------------------------------------------------------------------- device


@attrs.frozen
class Reply:
    """What a device handler or kernel action answers.

    ``rc`` is the device's own status (a CXL mailbox return code, a firmware
    status); 0 is success.  ``handle`` is put into the command's bundle.
    """

    rc: int = 0
    out: Mapping[str, Any] = attrs.field(factory=dict)
    handle: Any = None
    errno: int = 0  # for kernel actions: the error the kernel returns (0 = ok)


Handler = Callable[["Device", Args], Reply]
Driver = Callable[["World", Args, "Caller"], Reply]
EffectsOf = Effect | Callable[[Args, "Device"], int]


@attrs.frozen
class Command:
    """A firmware command: the unit a passthrough channel carries.

    ``effects`` is what the *device declares* (its CEL entry, or per payload
    for commands such as Set Feature whose effects depend on the target).  A
    lying device declares less than its handler does; the declared-effects
    invariant catches that.

    A command reaches the device in one of two ways.  ``handler(device,
    args)`` is the firmware itself: the channel forwards the command as it
    is (CXL's mailbox).  ``driver(world, args, caller)`` is kernel code that
    stands between the channel and the firmware (mlx5 DEVX looks up the
    caller's uid, records a destroy command at create, destroys objects on
    close) and reaches the firmware through ``world.mailbox``.  Give exactly
    one.

    Example::

        Command("SET_TIMESTAMP", 0x0301, channels=("cxl.raw",),
                params=(Param("timestamp", lo=0, hi=2**32),),
                effects=Effect.POLICY_IMMEDIATE, handler=set_timestamp)
    """

    op: str
    opcode: int
    channels: tuple[str, ...]
    handler: Handler | None = None
    effects: EffectsOf = Effect.NONE
    params: tuple[Param, ...] = ()
    #: bundle(s) the reply's handle goes into
    produces: str | tuple[str, ...] = ""
    doc: str = ""
    driver: Driver | None = None

    def declared(self, args: Args, device: Device) -> int:
        eff = self.effects
        return int(eff) if isinstance(eff, int) else int(eff(args, device))


@attrs.frozen
class DeviceVariant:
    """One flavour of the emulated device: its initial state and its own commands.

    ``commands`` are added to (or replace, by op name) the subsystem's common
    table for this variant only; that is how a vendor device gets opcodes the
    spec device does not implement.  ``info`` holds static facts handlers read
    (capacities, feature tables).
    """

    name: str
    state: Callable[[], dict[str, Any]]
    commands: tuple[Command, ...] = ()
    info: Mapping[str, Any] = attrs.field(factory=dict)
    doc: str = ""


# --------------------------------------------------------------------------- kernel


@attrs.frozen
class KernelAction:
    """Something the kernel does on its own behalf (create a region, set scrub via EDAC).

    ``run`` drives the device through ``world.mailbox`` as the driver would and
    updates ``world.shadow`` with what the kernel now believes.
    """

    name: str
    run: Callable[[World, Args], Reply]
    params: tuple[Param, ...] = ()
    #: bundle(s) the reply's handle goes into
    produces: str | tuple[str, ...] = ""
    doc: str = ""


@attrs.frozen
class Channel:
    """A path a userspace command takes (``cxl.raw``, ``cxl.fwctl`` ...).

    ``scopes`` lists, least privileged first, the scope values a caller may
    request on this channel (fwctl's ``enum fwctl_rpc_scope``); empty when the
    channel has no notion of scope.  ``callers`` narrows or widens who is drawn
    for this channel: lockdown matters to CXL's RAW path and nowhere else, and
    drawing it elsewhere only dilutes the search.
    """

    name: str
    doc: str = ""
    scopes: tuple[str, ...] = ()
    #: callers drawn for this channel; None: the subsystem's caller space
    callers: CallerSpace | None = None
    #: an op that opens the channel (DEVX's ALLOC_UCONTEXT): every drawn sequence
    #: starts with one, because nothing else on the channel can run without it and
    #: Hypothesis's swarm testing would otherwise switch it off for half the runs
    opener: str = ""


@attrs.frozen
class Caller:
    """Who sends a command, and in which kernel configuration."""

    caps: frozenset[str] = frozenset()
    scope: str | None = None
    lockdown: str = "none"
    switches: frozenset[str] = frozenset()

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"caps": sorted(self.caps)}
        if self.scope is not None:
            out["scope"] = self.scope
        if self.lockdown != "none":
            out["lockdown"] = self.lockdown
        if self.switches:
            out["switches"] = sorted(self.switches)
        return out

    def describe(self) -> str:
        parts = ["+".join(sorted(self.caps)) or "unprivileged"]
        if self.scope is not None:
            parts.append(f"scope={self.scope}")
        if self.lockdown != "none":
            parts.append(f"lockdown={self.lockdown}")
        parts.extend(sorted(self.switches))
        return " ".join(parts)


LOCKDOWN_LEVELS = ("none", "integrity", "confidentiality")


@attrs.frozen
class CallerSpace:
    """The callers the fuzzer draws from, least privileged first (shrinking goes there)."""

    caps: tuple[frozenset[str], ...] = (frozenset(),)
    lockdown: tuple[str, ...] = ("none",)
    switches: tuple[frozenset[str], ...] = (frozenset(),)


# --------------------------------------------------------------------------- policy


@attrs.frozen
class Allow:
    reason: str = ""


@attrs.frozen
class Deny:
    errno: int
    reason: str = ""


@attrs.frozen
class Taint:
    """Taint the kernel and go on evaluating (fwctl taints *before* validating)."""

    flag: str
    reason: str = ""


@attrs.frozen
class Rewrite:
    """Change arguments before the command goes on, and go on evaluating.

    The kernel often does not just filter a command but edits it: mlx5 DEVX
    writes the caller's uid into every command header, whatever userspace
    put there.  Later rules and the device see the rewritten arguments.
    """

    args: Mapping[str, Any]
    reason: str = ""


Verdict = Allow | Deny | Taint | Rewrite | None


@attrs.frozen
class Request:
    """What a policy rule sees: the command, how it came, who sent it, the kernel's view."""

    command: Command
    channel: str
    args: Args
    caller: Caller
    kernel: Mapping[str, Any]
    device: Device


@attrs.frozen
class Rule:
    """One check of a policy, citing the kernel code it encodes.

    ``check`` returns None to pass the request to the next rule, ``Deny`` or
    ``Allow`` to decide, ``Taint`` to taint and go on, or ``Rewrite`` to edit
    the command and go on.  ``channels``/``ops``
    restrict where the rule applies (empty: everywhere).
    """

    name: str
    check: Callable[[Request], Verdict]
    cite: str
    channels: tuple[str, ...] = ()
    ops: tuple[str, ...] = ()


@attrs.frozen
class Promise:
    """What a policy guarantees about privileged effects, checked by the access invariant.

    An allowed command on ``channel`` whose observed effects intersect
    ``effects`` (or any allowed command, if ``effects`` is None) must have
    come from a caller holding ``caps``, at ``min_scope`` or above, under one
    of ``lockdown``, and must have left every flag of ``taint`` set.
    """

    channel: str
    cite: str
    effects: int | None = None
    caps: frozenset[str] = frozenset()
    min_scope: str | None = None
    lockdown: tuple[str, ...] = LOCKDOWN_LEVELS
    taint: frozenset[str] = frozenset()


@attrs.frozen
class Decision:
    allowed: bool
    errno: int = 0
    taint: frozenset[str] = frozenset()
    rule: str = ""
    reason: str = ""
    #: arguments the policy rewrote (merged over the step's own)
    rewrite: Mapping[str, Any] = attrs.field(factory=dict)

    def describe(self) -> str:
        head = "allow" if self.allowed else f"deny {_errno_name(self.errno)}"
        if self.taint:
            head += " +taint " + ",".join(sorted(self.taint))
        if self.rewrite:
            head += " rewrite " + ", ".join(f"{k}={v!r}" for k, v in self.rewrite.items())
        if self.rule:
            head += f" [{self.rule}]"
        return head


def _errno_name(n: int) -> str:
    return "-" + _errno.errorcode.get(n, str(n))


@attrs.frozen
class Policy:
    """A named passthrough policy: an ordered table of rules and the promises it makes.

    ``without("rule")`` gives the same policy with one check removed, which
    is how planted-hole variants are made for tests and for "what if" runs.

    Example::

        Policy("linux-raw", "cxl", channels=("cxl.raw",), rules=(
            Rule("lockdown", lambda r: Deny(EPERM) if r.caller.lockdown != "none" else None,
                 cite="drivers/cxl/core/mbox.c cxl_mem_raw_command_allowed()"),
        ), promises=(Promise("cxl.raw", taint=frozenset({"WARN"}), cite="..."),))
    """

    name: str
    subsystem: str
    channels: tuple[str, ...]
    rules: tuple[Rule, ...] = ()
    promises: tuple[Promise, ...] = ()
    doc: str = ""
    removed: tuple[str, ...] = ()
    _index: dict[tuple[str, str], tuple[Rule, ...]] = attrs.field(
        factory=dict, eq=False, repr=False, init=False
    )

    def rules_for(self, channel: str, op: str) -> tuple[Rule, ...]:
        key = (channel, op)
        found = self._index.get(key)
        if found is None:
            found = tuple(
                r
                for r in self.rules
                if (not r.channels or channel in r.channels) and (not r.ops or op in r.ops)
            )
            self._index[key] = found
        return found

    def decide(self, request: Request) -> Decision:
        taint: set[str] = set()
        rewrite: dict[str, Any] = {}
        for rule in self.rules_for(request.channel, request.command.op):
            verdict = rule.check(request)
            if verdict is None:
                continue
            if isinstance(verdict, Taint):
                taint.add(verdict.flag)
                continue
            if isinstance(verdict, Rewrite):
                rewrite.update(verdict.args)
                request = attrs.evolve(request, args={**request.args, **verdict.args})
                continue
            if isinstance(verdict, Deny):
                return Decision(False, verdict.errno, frozenset(taint), rule.name, verdict.reason, rewrite)
            return Decision(True, 0, frozenset(taint), rule.name, verdict.reason, rewrite)
        return Decision(True, 0, frozenset(taint), "", "no rule objected", rewrite)

    def without(self, *names: str) -> Policy:
        known = {r.name for r in self.rules}
        missing = [n for n in names if n not in known]
        if missing:
            raise KeyError(
                f"policy {self.name!r} has no rule(s) {', '.join(shown(m) for m in missing[:3])}; "
                f"its rules are {sorted(known)}"
            )
        return attrs.evolve(
            self,
            rules=tuple(r for r in self.rules if r.name not in names),
            removed=self.removed + tuple(names),
        )

    @property
    def label(self) -> str:
        return self.name + "".join(f"~{n}" for n in self.removed)


# --------------------------------------------------------------------------- invariants


@attrs.frozen
class Violation:
    """An invariant that failed after a step.

    ``severity`` is ``hole`` for a violation while the kernel is untainted and
    ``tainted`` once the policy has tainted the kernel (the user was warned).
    """

    invariant: str
    field: str
    message: str
    severity: Literal["hole", "tainted"] = "hole"
    op: str = ""
    step: int = 0
    subsystem: str = ""

    @property
    def signature(self) -> str:
        sig = f"{self.invariant}:{self.subsystem}:{self.op}:{self.field}"
        return sig + ":tainted" if self.severity == "tainted" else sig


@attrs.frozen
class Invariant:
    """A property checked after every step; ``subsystem`` None means every subsystem.

    Check what the step *changed* (``ctx.changed``), not only the state: a
    state that stays bad would otherwise be reported again after every later
    step, under a new signature each time (the op is part of it).

    Example::

        Invariant("no-sanitize-under-region", subsystem="cxl", check=lambda ctx: [
            ctx.violation("sanitize started with committed decoders", field="media")
        ] if ctx.step.op == "SANITIZE" and ctx.allowed and ctx.world.kernel["regions"] else [])
    """

    name: str
    check: Callable[[StepContext], Iterable[Violation]]
    subsystem: str | None = None
    doc: str = ""


# --------------------------------------------------------------------------- subsystem


@attrs.frozen
class Subsystem:
    """Everything ptfuzz needs to fuzz one subsystem.

    ``kernel`` builds the kernel model's bookkeeping for a fresh boot;
    ``probe`` is what the driver does when it binds (reads the device, fills
    the shadow).  ``commands`` is the table common to all device variants.
    """

    name: str
    fields: tuple[Field, ...]
    channels: tuple[Channel, ...]
    commands: tuple[Command, ...]
    devices: tuple[DeviceVariant, ...]
    actions: tuple[KernelAction, ...]
    kernel: Callable[[], dict[str, Any]]
    probe: Callable[[World], None]
    callers: CallerSpace = CallerSpace()
    #: names of the device's status codes (Reply.rc), for traces
    status_names: Mapping[int, str] = attrs.field(factory=dict)
    #: steps per drawn sequence unless ``--steps`` says otherwise; subsystems whose
    #: bugs need objects created before they are misused want longer sequences
    steps: int = 20
    doc: str = ""


@attrs.frozen
class DeviceSet:
    """More device variants for an existing subsystem."""

    subsystem: str
    devices: tuple[DeviceVariant, ...]


@attrs.frozen
class CommandSet:
    """More commands for an existing subsystem (a vendor's opcodes).

    ``device`` names the variant that implements them; empty means all.
    """

    subsystem: str
    commands: tuple[Command, ...]
    device: str = ""


@attrs.frozen
class Exporter:
    """A format a finding can be written in: ``render(finding) -> text``.

    ``subsystem`` names the one subsystem it knows (a C program needs that
    subsystem's UAPI); None means it renders any finding.
    """

    name: str
    suffix: str
    render: Callable[[Any], str]
    doc: str = ""
    subsystem: str | None = None

