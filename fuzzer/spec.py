"""The declarative records a plugin hands to ptfuzz.

Every record is a frozen attrs class: a plugin describes its subsystem as data
(tables of fields, commands, rules) and a few small functions (a handler per
command, a check per policy rule).  The host only ever reads these records, so
a plugin cannot reach into the engine and the engine can index everything once
at start-up instead of on the per-step hot path.
"""

from __future__ import annotations

import errno as _errno
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import attrs

from fuzzer.effects import Effect
from fuzzer.errors import raised
from fuzzer.safetext import shown
from fuzzer.sizes import Buffer, Envelope, Layout

if TYPE_CHECKING:  # pragma: no cover
    from fuzzer.api import Device, StepContext, World

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
    """The kernel owns the field from probe on, whatever its bookkeeping says."""
    return True


def _believed(kernel: Mapping[str, Any]) -> bool:
    """The kernel owns each key exactly while its shadow holds it (``world.believe``/``world.forget``).

    The integrity invariant asks the shadow, not this predicate: see ``Field``.
    """
    return True


@attrs.frozen
class Field:
    """One piece of device state, tagged with who owns it and what changing it means.

    Who owns it (``kernel_owned``), checked by the kernel-owned-integrity invariant:

    * ``None``: the device (or userspace) owns it;
    * a predicate over the kernel model, because ownership is often
      conditional: the label storage area belongs to libnvdimm only while an
      nvdimm is bound.  While it holds, the kernel must have a belief about
      the field (``world.believe``), else the model is incomplete: an error;
    * ``BELIEVED``: the kernel owns each key exactly while its shadow holds
      it, from ``world.believe(key)`` to ``world.forget(key)``: per-instance
      ownership ("the kernel owns namespace 3 while it exposes it").

    ``effect`` is the effect class that changing the field represents;
    ``Effect.NONE`` means changing it needs no declared effect (a counter, a
    timestamp the device keeps on its own).

    A device whose state is a table of objects (an RDMA HCA's QPs, CQs,
    general objects) declares a *family*: ``family=True`` makes the field
    stand for every state key ``"<name>:<instance>"`` (``qp:5``), keys that
    appear and disappear as objects are created and destroyed.  Violations
    name the family, so one bug has one signature whatever the object id.
    A family's members are always owned per instance: any ``kernel_owned``
    other than None means ``BELIEVED``.

    Example::

        Field("scrub.cycle_hours", Effect.CONFIG_IMMEDIATE,
              kernel_owned=lambda k: True,
              doc="EDAC caches it in cxlmd->scrub_cycle (drivers/cxl/core/edac.c)")
        Field("qp", Effect.CONFIG_IMMEDIATE, BELIEVED, family=True,
              doc="queue pairs; the kernel owns those it created (it believes them)")
    """

    name: str
    #: an ``Effect`` mask, or the subsystem's own bits (``Subsystem.effects``)
    effect: int
    kernel_owned: Callable[[Mapping[str, Any]], bool] | None = None
    doc: str = ""
    family: bool = False

    def owned(self, kernel: Mapping[str, Any]) -> bool:
        return self.kernel_owned is not None and self.kernel_owned(kernel)

    @property
    def per_instance(self) -> bool:
        """Owned exactly while believed (``BELIEVED``, or any owned family)."""
        return self.kernel_owned is not None and (self.family or self.kernel_owned is BELIEVED)

    def key(self, instance: Any) -> str:
        """The state key of one member of a family: ``Field("qp", ...).key(5) == "qp:5"``."""
        return f"{self.name}:{instance}"


#: ``Field(kernel_owned=ALWAYS)``: the kernel owns it from probe on.
ALWAYS = _always
#: ``Field(kernel_owned=BELIEVED)``: the kernel owns each key while its shadow holds it.
BELIEVED = _believed


@attrs.frozen
class Param:
    """One argument of a command or kernel action.

    The same record drives generation (a Hypothesis strategy is derived from
    it), validation of corpus files and printing.  ``kind`` is one of:
    ``int`` (``lo``..``hi``), ``choice`` (one of ``choices``), ``bool``,
    ``handle`` (a value produced earlier into the bundle named ``bundle``),
    ``size`` (a declared length, ``lo``..``hi``: see ``fuzzer.sizes``).
    ``strategy`` overrides the derived strategy but not validation.

    A size is drawn mostly at its ``natural`` value (what a correct caller
    declares: an int, ``"in"``/``"out"``/``"payload"`` for an envelope's
    sizes, a ``device.info`` key, or a function of the other arguments), else
    at the boundaries where length bugs live: 0, 1, the header size,
    natural-1 and natural+1, and ``marks`` (ints, or ``device.info`` keys
    such as ``"payload_size"``).
    """

    name: str
    kind: Literal["int", "choice", "bool", "handle", "size"] = "int"
    lo: int = 0
    hi: int = 0
    choices: tuple[Any, ...] = ()
    bundle: str = ""
    consumes: bool = False
    strategy: Any = None
    doc: str = ""
    #: for a size: where bugs live (ints, or device.info keys such as "payload_size")
    marks: tuple[int | str, ...] = ()
    #: for a size: what a correct caller declares (see the class docstring)
    natural: Any = None

    def __attrs_post_init__(self) -> None:
        # Wrong here, a parameter would fail mid-campaign; wrong at construction, the
        # host reports it against the plugin that imported it.
        where = f"Param({self.name!r})"
        if self.kind not in ("int", "choice", "bool", "handle", "size"):
            raise ValueError(f"{where}: unknown kind {self.kind!r}; use 'int', 'choice', 'bool', 'handle' or 'size'")
        if self.kind in ("int", "size") and self.lo > self.hi:
            raise ValueError(f"{where}: lo={self.lo} is above hi={self.hi}")
        if self.kind == "choice" and not self.choices:
            raise ValueError(f"{where}: a choice needs choices=(...)")
        if self.kind == "handle" and not self.bundle:
            raise ValueError(f"{where}: a handle needs bundle='...' (the bundle its producer fills)")

    def check(self, value: Any) -> str | None:
        """Return why ``value`` is not acceptable, or None."""
        if self.kind == "bool":
            return None if isinstance(value, bool) else "expected true or false"
        if self.kind in ("int", "size"):
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
    status); 0 is success.  ``handle`` is put into the bundle(s) the command
    or action ``produces``; ``handles`` publishes several at once (a scan
    that finds three namespaces).  ``why`` is the reason a trace shows (a
    firmware syndrome, the cause of a kernel error).
    """

    rc: int = 0
    out: Mapping[str, Any] = attrs.field(factory=dict)
    handle: Any = None
    errno: int = 0  # for kernel actions: the error the kernel returns (0 = ok)
    why: str = ""
    handles: tuple[Any, ...] = ()
    #: the output payload as the device produced it (its length is what a transport copies)
    data: bytes = b""

    @property
    def published(self) -> tuple[Any, ...]:
        """Every handle this reply puts into bundles, in order."""
        if self.handle is None:
            return self.handles
        return (self.handle, *self.handles)


Handler = Callable[["Device", Args], Reply]
Forward = Callable[[Args], Reply]
Transport = Callable[["World", "Request", Forward], Reply]
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
    #: the payload on the wire (``fuzzer.sizes.Layout``); None: no byte layout modelled
    layout: Layout | None = None

    def declared(self, args: Args, device: Device) -> int:
        eff = self.effects
        return int(eff) if isinstance(eff, int) else int(eff(args, device))


@attrs.frozen
class Firmware:
    """A firmware operation that kernel code reaches (``world.mailbox``) but the fuzzer never draws.

    Where a channel forwards a command as it is (CXL's mailbox), one
    ``Command`` with ``handler=`` is both; where kernel code stands between
    (DEVX's ``driver=``), the firmware op it sends is declared here, apart
    from the user-facing commands, so the two namespaces never mix.

    Example::

        Firmware("CREATE_QP", 0x500, handler=create_qp, effects=Effect.CONFIG_IMMEDIATE)
    """

    op: str
    opcode: int
    handler: Handler
    effects: EffectsOf = Effect.NONE
    params: tuple[Param, ...] = ()
    doc: str = ""

    def declared(self, args: Args, device: Device) -> int:
        eff = self.effects
        return int(eff) if isinstance(eff, int) else int(eff(args, device))


@attrs.frozen
class DeviceVariant:
    """One flavour of the emulated device: its initial state and its own commands.

    ``commands`` are added to (or replace, by op name) the subsystem's common
    table for this variant only; that is how a vendor device gets opcodes the
    spec device does not implement.  ``info`` holds static facts handlers read
    (capacities, feature tables).  ``firmware`` are firmware ops only this
    variant's firmware has (``Firmware``: reached by kernel code through
    ``world.mailbox``, never drawn); they add to, or replace by op, the
    subsystem's ``firmware``, as ``commands`` do for commands.
    """

    name: str
    state: Callable[[], dict[str, Any]]
    commands: tuple[Command, ...] = ()
    info: Mapping[str, Any] = attrs.field(factory=dict)
    doc: str = ""
    firmware: tuple[Firmware, ...] = ()


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
    #: an op that consumes the channel's handle and releases it (DEVX's CLOSE): what the kernel runs on every
    #: handle still open when the process exits, so the native search ends each drawn sequence with it (a leak
    #: on release shows without a drawn close); the Hypothesis machine does not
    closer: str = ""
    #: the length fields every request on this channel carries (``fuzzer.sizes.Envelope``)
    envelope: Envelope | None = None
    #: kernel code that carries an allowed command to the device:
    #: ``transport(world, request, forward) -> Reply``, ``forward(args)`` runs the command.
    #: It allocates and copies the buffers (``world.buffer``), so length bugs happen here.
    transport: Transport | None = None


@attrs.frozen(cache_hash=True)
class Caller:
    """Who sends a command, and in which kernel configuration.

    Its hash is cached: the executor counts every step under its caller (``Executor.reached``).
    """

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


# --------------------------------------------------------------------------- knobs


KnobValue = bool | int | str | frozenset[str]


def knob_text(value: Any) -> str:
    """A knob value as the command line spells it: ``true``, ``5``, ``kfree``, ``a,b``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (frozenset, set)):
        return ",".join(sorted(str(v) for v in value))
    return str(value)


def policy_label(name: str, removed: Sequence[str] = (), knobs: Mapping[str, Any] | None = None) -> str:
    """``linux-nvme~rescan{write_mounted=true}``: a policy, the rules removed from it, the knobs set over its own
    (in braces: square brackets would be markup to the terminal's console).  One spelling for a run, its corpus
    files and baselines: a finding under other knob values is another policy's."""
    tuned = ",".join(f"{k}={knob_text(frozenset(v) if isinstance(v, (list, tuple)) else v)}"
                     for k, v in sorted((knobs or {}).items()))
    return name + "".join(f"~{n}" for n in removed) + ("{" + tuned + "}" if tuned else "")


_KINDS: dict[type, str] = {bool: "true or false", int: "an integer", str: "a string",
                           frozenset: "a set of strings (a,b,...)"}


@attrs.frozen
class Knob:
    """A setting of a subsystem's kernel model that its policies choose: declared once, checked.

    The type is the default's (``bool``, ``int``, ``str`` or ``frozenset`` of
    strings); ``choices``, if given, are the only values allowed.  A policy
    sets knobs (``Policy(knobs={...})``), a run may change them
    (``ptfuzz run --knob NAME=VALUE``), and rules (``request.knobs``) and the
    kernel model (``world.policy.knobs``) read them; every one of these steps
    refuses a name the subsystem does not declare, so a misspelt knob is an
    error, not a silently closed hole.  ``cite`` is the kernel code (or
    parameter) the knob stands for.

    Example::

        Knob("write_mounted", False, cite="drivers/nvme/host/ioctl.c nvme_cmd_allowed()",
             doc="a writer may send I/O commands to a mounted namespace (the 6.x behaviour)")
    """

    name: str
    default: KnobValue
    doc: str = ""
    cite: str = ""
    choices: tuple[KnobValue, ...] = ()

    def __attrs_post_init__(self) -> None:
        where = f"Knob({self.name!r})"
        if type(self.default) not in _KINDS:
            raise ValueError(f"{where}: default {shown(self.default)} is a {type(self.default).__name__}; "
                             f"a knob holds a bool, an int, a str or a frozenset of str")
        why = self.check(self.default)
        if why:
            raise ValueError(f"{where}: default {why}")
        bad = [c for c in self.choices if type(c) is not type(self.default)]
        if bad:
            raise ValueError(f"{where}: choice {shown(bad[0])} is not of the default's type "
                             f"{type(self.default).__name__}")

    @property
    def kind(self) -> str:
        """What the knob holds, for messages: ``true or false``, ``an integer`` ..."""
        if self.choices:
            return "one of " + ", ".join(knob_text(c) for c in self.choices)
        return _KINDS[type(self.default)]

    def check(self, value: Any) -> str | None:
        """Why ``value`` is not one this knob may hold, or None."""
        want = type(self.default)
        ok = isinstance(value, want) and (want is not int or not isinstance(value, bool))
        if want is frozenset:
            ok = isinstance(value, frozenset) and all(isinstance(v, str) for v in value)
        if not ok:
            return f"{shown(value)} is not {self.kind}"
        if self.choices and value not in self.choices:
            return f"{shown(value)} is not {self.kind}"
        return None

    def coerce(self, value: Any) -> KnobValue:
        """A value from JSON or TOML as the knob holds it (a list of strings is a set); ValueError says why not."""
        if type(self.default) is frozenset and isinstance(value, (list, tuple, set)):
            value = frozenset(value)
        why = self.check(value)
        if why:
            raise ValueError(why)
        return value

    def parse(self, text: str) -> KnobValue:
        """A value from the command line (``true``, ``0x10``, ``kfree``, ``a,b``); ValueError says why not."""
        want = type(self.default)
        value: Any = text
        if want is bool:
            low = text.strip().lower()
            if low not in ("true", "false", "1", "0", "yes", "no", "on", "off"):
                raise ValueError(f"{shown(text)} is not {self.kind}")
            value = low in ("true", "1", "yes", "on")
        elif want is int:
            try:
                value = int(text, 0)
            except ValueError:
                raise ValueError(f"{shown(text)} is not {self.kind}") from None
        elif want is frozenset:
            value = frozenset(v.strip() for v in text.split(",") if v.strip())
        return self.coerce(value)

    def to_json(self, value: KnobValue) -> bool | int | str | list[str]:
        return sorted(value) if isinstance(value, frozenset) else value


class UnknownKnob(LookupError):
    """A rule or the kernel model read a knob its subsystem does not declare."""


def undeclared(name: str, declared: Iterable[str], owner: str) -> str:
    """``knob 'write_mountd' is not declared by nvme; it declares known_effects, write_mounted
    (did you mean 'write_mounted'?)``"""
    import difflib

    names = sorted(declared)
    close = difflib.get_close_matches(name, names, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    listed = ", ".join(names) if names else "none (add Knob records to its Subsystem(knobs=...))"
    return f"knob {shown(name)} is not declared by {owner}; it declares {listed}{hint}"


class Knobs(Mapping[str, Any]):
    """A policy's knob values as a run sees them: every declared knob, and only those.

    Reading a name the subsystem does not declare raises ``UnknownKnob``
    (also through ``.get(name, default)``: a default at the call site would
    hide a misspelt name, which is how a planted hole silently disappears).
    """

    __slots__ = ("_declared", "_own", "_owner", "_values")

    def __init__(self, declared: tuple[Knob, ...], values: Mapping[str, Any], owner: str) -> None:
        self._declared = tuple(k.name for k in declared)
        self._owner = owner
        self._own = dict(values)
        self._values: dict[str, Any] = {k.name: k.default for k in declared}
        self._values.update(values)

    @property
    def own(self) -> dict[str, Any]:
        """The values the policy (or the run) set; the other knobs hold their declared defaults."""
        return dict(self._own)

    def __getitem__(self, name: str) -> Any:
        try:
            return self._values[name]
        except KeyError:
            raise UnknownKnob(undeclared(name, self._declared, self._owner)) from None

    def get(self, name: str, default: Any = None) -> Any:
        return self[name]

    def __contains__(self, name: object) -> bool:
        return name in self._values

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"Knobs({self._values!r})"


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
    #: the policy's own settings (``Policy.knobs``)
    knobs: Mapping[str, Any] = attrs.field(factory=dict)
    #: the input payload as the kernel copied it in (channels with an ``Envelope``); read it
    #: through ``payload.read``/``field`` so the bounds oracle sees every access
    payload: Buffer | None = None
    #: where the command's own payload starts in ``payload`` (after the channel's header)
    payload_base: int = 0

    def size(self, name: str) -> int:
        """A declared size argument (``in_size``, ``in_len``, ``op_size``)."""
        return int(self.args[name])

    def field(self, name: str, by: str) -> Any:
        """Read slot ``name`` of the command's payload as function ``by`` does (the read is logged)."""
        if self.payload is None or self.command.layout is None:
            raise ValueError(f"{self.command.op} on {self.channel} has no payload layout to read {name!r} from: "
                             f"give the channel an Envelope and the command a Layout")
        return self.payload.field(self.command.layout, name, by, base=self.payload_base, args=self.args)


class RuleError(Exception):
    """A rule broke its contract (not a verdict): the executor reports it against the rule."""

    def __init__(self, rule: Rule, message: str) -> None:
        super().__init__(f"rule {rule.name!r}: {message}")
        self.rule = rule


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


def _names(record: str, field: str, value: Any) -> None:
    """Refuse a bare string where a tuple of names is meant: ``ops="FORMAT"`` would match "F", "O" ..."""
    if isinstance(value, str):
        raise TypeError(f"{record}: {field}={value!r} is a string; pass a tuple of names: "
                        f"{field}=({value!r},)")
    if not all(isinstance(v, str) for v in value):
        raise TypeError(f"{record}: {field} must be names (strings), got {list(value)!r}")


@attrs.frozen
class Reaction:
    """What the kernel does after a command it let through has reached the device.

    Policies are half admission, half aftermath: after a command whose
    effects say so, the driver freezes queues, rescans, re-reads
    capabilities or drops a cache.  ``run(world, request, reply)`` updates
    the kernel model (``world.kernel``, ``world.believe``, ``world.forget``)
    as that driver code does, in the policy's order, before the invariants
    are checked.  ``Policy.without(name)`` removes a reaction as it removes
    a rule.

    ``effects`` filters on what the *kernel* believes the command does, not
    on what the device says: Linux reacts to its own copy of the effects log,
    read at probe and patched where it knows better
    (``nvme_command_effects()``).  That copy is ``Subsystem.kernel_effects``;
    a subsystem without one falls back to the command's declared effects.
    The reaction runs when those effects intersect ``effects`` (always if
    None).  They are computed before the command runs, as
    ``nvme_passthru_start()`` does, so a command that changes the cache does
    not change what the kernel does after it.

    A reaction may publish handles (a rescan finds a new namespace, and its
    block device appears) with ``world.publish(bundle, *handles)`` into a
    bundle it names in ``produces``; the searches then draw commands that
    take them.

    Example::

        Reaction("passthru-rescan", rescan_namespaces, effects=NIC | NCC, produces="namespaces",
                 cite="drivers/nvme/host/core.c nvme_passthru_end()")
    """

    name: str
    run: Callable[[World, Request, Reply], None]
    cite: str
    channels: tuple[str, ...] = ()
    ops: tuple[str, ...] = ()
    effects: int | None = None
    #: bundle(s) ``run`` may publish handles into (``world.publish``)
    produces: str | tuple[str, ...] = ""

    def __attrs_post_init__(self) -> None:
        where = f"Reaction({self.name!r})"
        _names(where, "channels", self.channels)
        _names(where, "ops", self.ops)
        if not isinstance(self.produces, str):
            _names(where, "produces", self.produces)

    @property
    def bundles(self) -> tuple[str, ...]:
        """The bundles named in ``produces`` (``""`` is none)."""
        names = (self.produces,) if isinstance(self.produces, str) else tuple(self.produces)
        return tuple(n for n in names if n)


@attrs.frozen
class Trust:
    """A finding a policy accepts by design: root may erase a mounted filesystem's blocks, and that is no hole.

    A violation gets severity ``trusted`` (saved and reported apart; it does
    not fail the run) when its step was sent by a caller holding all of
    ``caps``, on ``channels``/``ops``, *and* the violation is one the trust
    names: its invariant in ``invariants`` and its field in ``fields``
    (empty: any, as a trust of the whole step).  Each violation of a step is
    matched on its own, so a step can carry a trusted violation and a hole:
    root's Format NVM of a mounted namespace destroys the data the
    filesystem believes (trusted) and must still make the kernel rescan the
    block size (a stale one is a hole).  Name what you trust as narrowly as
    the kernel's authors meant it; a trust of a whole step hides every other
    bug that step shows.

    Example::

        Trust(frozenset({"CAP_SYS_ADMIN"}), cite="drivers/nvme/host/ioctl.c nvme_cmd_allowed()",
              ops=("FORMAT_NVM",), invariants=("kernel-owned-integrity",), fields=("ns.data",),
              reason="root destroying data under a mounted filesystem is its own business")
    """

    caps: frozenset[str]
    cite: str
    channels: tuple[str, ...] = ()
    ops: tuple[str, ...] = ()
    reason: str = ""
    #: the invariants whose violations are trusted (``Violation.invariant``); empty: any
    invariants: tuple[str, ...] = ()
    #: the fields whose violations are trusted (``Violation.field``: a family's name, not ``qp:5``); empty: any
    fields: tuple[str, ...] = ()

    def __attrs_post_init__(self) -> None:
        where = f"Trust({self.cite!r})"
        for name in ("channels", "ops", "invariants", "fields"):
            _names(where, name, getattr(self, name))

    def covers(self, channel: str, op: str, caller: Caller) -> bool:
        """This caller's command is one the trust is about (some of its violations may be trusted)."""
        return (self.caps <= caller.caps and (not self.channels or channel in self.channels)
                and (not self.ops or op in self.ops))

    def excuses(self, invariant: str, field: str) -> bool:
        """A violation of ``invariant`` on ``field`` is one this trust accepts (given that it ``covers`` the step)."""
        return (not self.invariants or invariant in self.invariants) and (not self.fields or field in self.fields)


@attrs.frozen
class Decision:
    allowed: bool
    errno: int = 0
    taint: frozenset[str] = frozenset()
    rule: str = ""
    reason: str = ""
    #: arguments the policy rewrote (merged over the step's own)
    rewrite: Mapping[str, Any] = attrs.field(factory=dict)
    #: the rules that tainted or rewrote on the way to the verdict (a coverage report's rule x verdict)
    marked: tuple[str, ...] = ()

    def describe(self) -> str:
        head = "allow" if self.allowed else f"deny {_errno_name(self.errno)}"
        if self.taint:
            head += " +taint " + ",".join(sorted(self.taint))
        if self.rewrite:
            head += " rewrite " + ", ".join(f"{k}={v!r}" for k, v in self.rewrite.items())
        if self.rule:
            head += f" [{self.rule}]"
        return head


_Scoped = TypeVar("_Scoped", Rule, Reaction)


def _scoped(items: tuple[_Scoped, ...], cache: dict[tuple[str, str], tuple[_Scoped, ...]],
            channel: str, op: str) -> tuple[_Scoped, ...]:
    """The rules (or reactions) that apply to ``op`` on ``channel``, in order; indexed once per pair."""
    key = (channel, op)
    found = cache.get(key)
    if found is None:
        found = tuple(r for r in items if (not r.channels or channel in r.channels) and (not r.ops or op in r.ops))
        cache[key] = found
    return found


def _errno_name(n: int) -> str:
    return "-" + _errno.errorcode.get(n, str(n))


@attrs.frozen
class Policy:
    """A named passthrough policy: an ordered table of rules and the promises it makes.

    ``without("rule")`` gives the same policy with one check removed, which
    is how planted-hole variants are made for tests and for "what if" runs.

    A policy named after Linux says which kernel it encodes: ``kernel`` (the
    release or tree it was read from) or, for a historical policy, ``predates``
    (the fix it comes before); ``version`` is what users see.

    Example::

        Policy("linux-raw", "cxl", channels=("cxl.raw",), rules=(
            Rule("lockdown", lambda r: Deny(EPERM) if r.caller.lockdown != "none" else None,
                 cite="drivers/cxl/core/mbox.c cxl_mem_raw_command_allowed()"),
        ), promises=(Promise("cxl.raw", taint=frozenset({"WARN"}), cite="..."),), kernel="7.3.4")
    """

    name: str
    subsystem: str
    channels: tuple[str, ...]
    rules: tuple[Rule, ...] = ()
    promises: tuple[Promise, ...] = ()
    doc: str = ""
    removed: tuple[str, ...] = ()
    reactions: tuple[Reaction, ...] = ()
    #: the policy's own settings, seen by rules (``request.knobs``) and the kernel (``world.policy.knobs``);
    #: each one a ``Knob`` its subsystem declares
    knobs: Mapping[str, Any] = attrs.field(factory=dict)
    trusts: tuple[Trust, ...] = ()
    #: the kernel source whose code the policy encodes: a release ("7.3.4"), a tree at a
    #: commit ("at 98f21c54"), or "unversioned" where the plugin never pinned its reading
    kernel: str = ""
    #: for a historical policy: the fix it predates, a commit id ("60b5d1f68338") or, where
    #: the commit is not known, what the fix is and the first release seen with it
    predates: str = ""
    #: channels the kernel has but this configuration refuses, and with what errno (a
    #: compiled-out RAW command id is -EPERM, not -ENODEV); they are not drawn
    refuses: Mapping[str, int] = attrs.field(factory=dict)
    #: knobs the run set over the policy's own (``--knob``, a campaign file, a corpus file): the
    #: label shows them and corpus files record them; set with ``Registry.policy(knobs=...)``
    tuned: Mapping[str, Any] = attrs.field(factory=dict)
    _index: dict[tuple[str, str], tuple[Rule, ...]] = attrs.field(
        factory=dict, eq=False, repr=False, init=False
    )
    _after: dict[tuple[str, str], tuple[Reaction, ...]] = attrs.field(
        factory=dict, eq=False, repr=False, init=False
    )

    def rules_for(self, channel: str, op: str) -> tuple[Rule, ...]:
        return _scoped(self.rules, self._index, channel, op)

    def reactions_for(self, channel: str, op: str) -> tuple[Reaction, ...]:
        return _scoped(self.reactions, self._after, channel, op)

    def trusted(self, channel: str, op: str, caller: Caller) -> Trust | None:
        """The first trust that covers this caller's command, if any (which violations: ``Trust.excuses``)."""
        for t in self.trusts:
            if t.covers(channel, op, caller):
                return t
        return None

    def trusts_for(self, channel: str, op: str, caller: Caller) -> tuple[Trust, ...]:
        """Every trust that covers this caller's command, in the policy's order."""
        return tuple(t for t in self.trusts if t.covers(channel, op, caller))

    def decide(self, request: Request) -> Decision:
        taint: set[str] = set()
        rewrite: dict[str, Any] = {}
        marked: tuple[str, ...] = ()
        for rule in self.rules_for(request.channel, request.command.op):
            try:
                verdict = rule.check(request)
            except Exception as exc:
                raise RuleError(rule, f"raised {raised(exc)}") from exc
            if verdict is None:
                continue
            if isinstance(verdict, Taint):
                taint.add(verdict.flag)
                marked += (rule.name,)
                continue
            if isinstance(verdict, Rewrite):
                unknown = set(verdict.args) - {p.name for p in request.command.params}
                if unknown:
                    raise RuleError(rule, f"rewrote {sorted(unknown)}, which {request.command.op} does not have; "
                                          f"its parameters are {sorted(p.name for p in request.command.params)}")
                rewrite.update(verdict.args)
                marked += (rule.name,)
                request = attrs.evolve(request, args={**request.args, **verdict.args})
                continue
            if isinstance(verdict, Deny):
                return Decision(False, verdict.errno, frozenset(taint), rule.name, verdict.reason, rewrite, marked)
            return Decision(True, 0, frozenset(taint), rule.name, verdict.reason, rewrite, marked)
        return Decision(True, 0, frozenset(taint), "", "no rule objected", rewrite, marked)

    def without(self, *names: str) -> Policy:
        """The same policy with rules or reactions removed (planted holes, "what if")."""
        known = {r.name for r in self.rules} | {r.name for r in self.reactions}
        missing = [n for n in names if n not in known]
        if missing:
            raise KeyError(
                f"policy {self.name!r} has no rule(s) {', '.join(shown(m) for m in missing[:3])}; "
                f"its rules and reactions are {sorted(known)}"
            )
        return attrs.evolve(
            self,
            rules=tuple(r for r in self.rules if r.name not in names),
            reactions=tuple(r for r in self.reactions if r.name not in names),
            removed=self.removed + tuple(names),
        )

    @property
    def label(self) -> str:
        """``linux-nvme~rescan{write_mounted=true}``: the name, the removed rules, the knobs the run set
        (``policy_label``)."""
        return policy_label(self.name, self.removed, self.tuned)

    @property
    def version(self) -> str:
        """The kernel code this policy encodes, as lists, traces and exports show it.

        ``"7.3.4"``, ``"before 60b5d1f68338"``, or ``""`` for a policy that encodes no kernel
        (a blank cheque, a hypothetical driver).  It comes from the policy record only: a
        corpus file names a policy, never a version, so a file cannot claim one.
        """
        if self.predates:
            return f"before {self.predates}"
        return self.kernel


# --------------------------------------------------------------------------- steps


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


# --------------------------------------------------------------------------- invariants


@attrs.frozen
class Violation:
    """An invariant that failed after a step.

    ``severity`` is ``hole`` for a violation while the kernel is untainted,
    ``tainted`` once the policy has tainted the kernel (the user was warned),
    and ``trusted`` when the step's caller is one the policy trusts by design
    (``Trust``).
    """

    invariant: str
    field: str
    message: str
    severity: Literal["hole", "tainted", "trusted"] = "hole"
    op: str = ""
    step: int = 0
    subsystem: str = ""

    @property
    def signature(self) -> str:
        sig = f"{self.invariant}:{self.subsystem}:{self.op}:{self.field}"
        return sig if self.severity == "hole" else f"{sig}:{self.severity}"


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
    the shadow).  ``commands`` is the table of user-facing commands common to
    all device variants; ``firmware`` the operations only kernel code sends
    (``world.mailbox``), and ``unsupported`` the device status it answers for
    an op neither table has.  ``effects`` names the subsystem's own effect
    bits (an NVMe effects log's NIC, LBCC ...), for traces and messages.
    ``knobs`` declares the settings its policies may set and its rules and
    kernel model read (``Knob``); a policy can set no other.

    ``kernel_effects(request)`` is the kernel's own view of a command's
    effects: the copy of the device's effects log (NVMe) or CEL (CXL) the
    driver read at probe and keeps in ``world.kernel``, patched where the
    kernel knows better.  The policy's reactions filter on it
    (``Reaction.effects``), because the driver acts on its copy, not on what
    the device declares today; it returns the subsystem's effect flags, or
    None where the kernel keeps no copy for this command (the reaction then
    sees the declared effects).  It gets the ``Request`` a rule gets, so a
    per-payload cache (CXL's Set Feature effects per feature) fits too.
    Without it, reactions see the declared effects.
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
    firmware: tuple[Firmware, ...] = ()
    effects: Mapping[int, str] = attrs.field(factory=dict)
    unsupported: int = -1
    #: the effects the kernel believes a command has (its cached log), or None: the declared ones
    kernel_effects: Callable[[Request], int | None] | None = None
    knobs: tuple[Knob, ...] = ()


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

