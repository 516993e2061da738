"""Apply steps to a device model and kernel model under a policy, and check invariants.

The heart of ptfuzz, and deliberately free of Hypothesis: the state machine
feeds it drawn steps, replay feeds it steps from a corpus file, the
minimizer feeds it sub-sequences.  All three therefore see the same verdicts,
bit for bit.  Everything that can be indexed is indexed in ``__init__`` so
that ``apply`` does one snapshot, one policy decision, one handler call and
the invariant checks.
"""

from __future__ import annotations

import copy
import errno
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from functools import partial
from typing import Any

import attrs

from fuzzer.errors import ModelError, raised
from fuzzer.invariants import GENERIC
from fuzzer.safetext import shown
from fuzzer.sizes import Buffer, Envelope
from fuzzer.spec import (
    ABSENT,
    Channel,
    Command,
    Decision,
    DeviceVariant,
    Invariant,
    KernelAction,
    Param,
    Policy,
    Reaction,
    Reply,
    Request,
    RuleError,
    Step,
    Subsystem,
    Trust,
    Violation,
    check_args,
)
from fuzzer.world import StepContext, World, firmware_table


def resolve_params(channel: Channel, command: Command, info: Mapping[str, Any]) -> tuple[Param, ...]:
    """A command's parameters on ``channel``: its own, then the envelope's sizes, every size resolved.

    Resolving turns a size's ``natural`` into a function of the other
    arguments and its ``marks`` into ints, once, so drawing and shrinking
    need no device.
    """
    env = channel.envelope
    params = command.params + (env.sizes if env is not None else ())
    if not any(p.kind == "size" for p in params):
        return params
    layout = command.layout
    header = env.header if env is not None else None
    head_in = header.natural({}) if header is not None else 0
    head_out = (header.out or 0) if header is not None else 0

    def payload(args: Mapping[str, Any]) -> int:
        return layout.natural(args) if layout is not None else 0

    def natural_of(p: Param) -> Any:
        n = p.natural
        if callable(n):
            return n
        if n == "in":
            return lambda args: head_in + payload(args)
        if n == "payload":
            return payload
        if n == "out":
            fixed = layout.out if layout is not None else 0
            full = head_out + (fixed if fixed is not None else int(info.get("payload_size", 0)))
            return lambda args: full
        if isinstance(n, str):
            v = int(info.get(n, p.lo))
            return lambda args: v
        v = p.lo if n is None else int(n)
        return lambda args: v

    out = []
    for p in params:
        if p.kind != "size":
            out.append(p)
            continue
        marks = {0, 1, head_in, p.lo, p.hi}
        for m in p.marks:
            v = int(info[m]) if isinstance(m, str) and m in info else m
            if isinstance(v, int):
                marks.update((v, v + 1))
        out.append(attrs.evolve(p, natural=natural_of(p),
                                marks=tuple(sorted(m for m in marks if p.lo <= m <= p.hi))))
    return tuple(out)


def encode_request(env: Envelope, command: Command, args: Mapping[str, Any]) -> bytes:
    """The bytes a correct caller puts in the input buffer: the channel header, then the command's payload."""
    values = {**args, "opcode": command.opcode}
    base = env.header.natural({})
    data = env.header.encode(values)
    if len(data) < base:
        data.extend(bytes(base - len(data)))
    if command.layout is not None:
        command.layout.encode(values, base, data)
    return bytes(data)


def inbound(world: World, env: Envelope, command: Command, args: Mapping[str, Any]) -> tuple[Buffer, int]:
    """The input buffer the kernel copies in (the encoded request cut to the declared size), and where
    the command's own payload starts in it.  Encoded only if something reads it.

    The encoding sees every argument, but a look at some of its bytes depends
    only on the arguments encoded there (``Layout.sources``): the buffer's
    ``touch`` reads those from ``args`` (so a ``fuzzer.watched`` step notes
    them), and the fill encodes a copy that records nothing (``dict.items``
    of a ``dict`` goes round any overridden method).  A plain ``dict`` notes
    no read, so it needs neither (every mode but the proof: no cost there)."""
    size = int(args.get(env.inbound, 0))
    base = env.header.natural({})
    if type(args) is dict or not isinstance(args, dict):
        return world.buffer("payload_in", size, fill=lambda: encode_request(env, command, args)), base
    buf = world.buffer("payload_in", size, fill=lambda: encode_request(env, command, dict(dict.items(args))))

    def touch(lo: int, hi: int) -> None:
        for key in env.header.sources(args, lo, hi):
            args[key]  # the read is the point: what the bytes depend on
        if hi > base and command.layout is not None:  # the command's slots start at base
            for key in command.layout.sources(args, lo, hi, base):
                args[key]
    buf.touch = touch
    return buf, base


@attrs.frozen
class Reacted:
    """One reaction of the policy after a command, and what it changed in the kernel model.

    Recorded when the executor traces (replay), so a trace can say what the
    kernel computed and did, not only that it reacted.
    """

    name: str
    #: False: the reaction's ``effects`` filter missed the kernel's effects, so it did not run
    ran: bool = True
    #: (key of ``world.kernel``, before, after) for every key the reaction changed
    kernel: tuple[tuple[Any, Any, Any], ...] = ()
    #: (state key, belief before, belief after) for every belief it changed (``ABSENT``: none)
    beliefs: tuple[tuple[str, Any, Any], ...] = ()
    #: taint flags it added
    taint: frozenset[str] = frozenset()
    #: (bundle, handle) it published (``world.publish``)
    published: tuple[tuple[str, Any], ...] = ()

    @property
    def changed(self) -> bool:
        return bool(self.kernel or self.beliefs or self.taint or self.published)


@attrs.frozen
class StepResult:
    index: int
    step: Step
    decision: Decision | None
    reply: Reply | None
    #: (field, before, after) for every field the step changed
    changes: tuple[tuple[str, Any, Any], ...]
    violations: tuple[Violation, ...]
    declared: int = 0
    #: the changed keys that were kernel-owned right after this step (only when the executor traces)
    owned: tuple[str, ...] = ()
    #: the policy's reactions that ran after the command
    reactions: tuple[str, ...] = ()
    #: the effects the kernel believed the command had, which the reactions were filtered on
    #: (``Subsystem.kernel_effects``, else the declared ones); None when no reaction was in scope
    kernel_effects: int | None = None
    #: (bundle, handle) that reactions published with ``world.publish``, in order
    publications: tuple[tuple[str, Any], ...] = ()
    #: every reaction in scope and what it changed (only when the executor traces)
    reacted: tuple[Reacted, ...] = ()

    @property
    def reply_handle(self) -> Any:
        return None if self.reply is None else self.reply.handle

    @property
    def published(self) -> tuple[Any, ...]:
        """Every handle the step made available: its reply's (``Reply.handle(s)``, into the bundles
        the command or action ``produces``), then its reactions' (``publications``)."""
        own = () if self.reply is None else self.reply.published
        if not self.publications:
            return own
        return own + tuple(h for _, h in self.publications)


def variant_commands(
    subsystem: Subsystem, variant: DeviceVariant, extra: Iterable[Command] = ()
) -> dict[str, Command]:
    """The command table of one device variant: common, then plugin-added, then the variant's own."""
    table = {c.op: c for c in subsystem.commands}
    table.update({c.op: c for c in extra})
    table.update({c.op: c for c in variant.commands})
    return table


def handle_bundles(subsystem: Subsystem, extra: Iterable[Command] = ()) -> frozenset[str]:
    """Every bundle some parameter takes handles from, on any device variant (what the probe may publish into)."""
    commands = (*subsystem.commands, *extra, *(c for d in subsystem.devices for c in d.commands))
    params = [p for c in commands for p in c.params] + [p for a in subsystem.actions for p in a.params]
    return frozenset(p.bundle for p in params if p.kind == "handle")


def _kernel_view(world: World) -> tuple[dict[Any, Any], dict[str, Any], frozenset[str]]:
    """A copy of the kernel model to diff a reaction against: deep, since a plugin may mutate a value in place."""
    try:
        kernel = copy.deepcopy(world.kernel)
    except Exception:  # something uncopyable in the bookkeeping: a shallow copy still sees replaced values
        kernel = dict(world.kernel)
    return kernel, dict(world.shadow), world.tainted


def _diff(before: Mapping[Any, Any], after: Mapping[Any, Any]) -> tuple[tuple[Any, Any, Any], ...]:
    keys = list(before) + [k for k in after if k not in before]
    out = []
    for k in keys:
        old, new = before.get(k, ABSENT), after.get(k, ABSENT)
        try:
            same = old is new or bool(old == new)
        except Exception:  # an __eq__ that will not answer: say it changed
            same = False
        if not same:
            out.append((k, old, new))
    return tuple(out)


def _owned_now(world: World, key: str) -> bool:
    f = world.field(key)
    if f.kernel_owned is None:
        return False
    if f.per_instance:
        return key in world.shadow
    return f.owned(world.kernel)


class Executor:
    def __init__(
        self,
        subsystem: Subsystem,
        policy: Policy,
        device: DeviceVariant,
        *,
        extra_commands: Iterable[Command] = (),
        invariants: Sequence[Invariant] = (),
        provider: Mapping[tuple[str, ...], str] | None = None,
        trace: bool = False,
    ) -> None:
        self.subsystem = subsystem
        self.policy = policy
        self.variant = device
        #: which plugin registered what (``Registry.provider``), to blame the right one
        self.provider = provider or {}
        #: record per step which changed keys were kernel-owned (replay's traces need it; searches do not)
        self.trace = trace
        self.commands = variant_commands(subsystem, device, extra_commands)
        self.firmware = firmware_table(subsystem, self.commands, device)
        self.user_index: dict[tuple[str, str], Command] = {
            (ch, c.op): c for c in self.commands.values() for ch in c.channels
        }
        self.actions: dict[str, KernelAction] = {a.name: a for a in subsystem.actions}
        self.invariants = tuple(GENERIC) + tuple(
            i for i in invariants if i.subsystem in (None, subsystem.name)
        )
        self.channels = {c.name: c for c in subsystem.channels}
        #: (channel, op) -> the command's parameters plus its channel's size arguments, resolved
        self.params: dict[tuple[str, str], tuple[Param, ...]] = {
            key: resolve_params(self.channels[key[0]], c, device.info) for key, c in self.user_index.items()
        }
        #: (channel, op) -> its size parameters: a step that leaves one out gets the natural value
        self.sized: dict[tuple[str, str], tuple[Param, ...]] = {
            key: sizes for key, ps in self.params.items() if (sizes := tuple(p for p in ps if p.kind == "size"))
        }
        #: the bundles some parameter takes (the probe may publish into any of them)
        self.bundles = handle_bundles(subsystem, extra_commands)
        #: per reaction of the policy: the bundles it may publish into
        self.reaction_bundles: dict[str, frozenset[str]] = {r.name: frozenset(r.bundles) for r in policy.reactions}
        #: (bundle, handle) the probe published: every sequence starts with them
        self.probed: tuple[tuple[str, Any], ...] = ()
        self.total_steps = 0
        #: what the steps reached, for a campaign's coverage report (``fuzzer.reach``): a user step
        #: counts under (channel, op, caller, deciding rule, allowed, errno, taint, marking rules),
        #: a kernel action under ("", op, None, "", ran, errno, (), ()), a reaction under
        #: ("reaction", name).  One tuple and one dict update a step: about 1 % of a step's cost.
        self.reached: Counter[tuple[Any, ...]] = Counter()
        self.world = self.reset()
        self.index = 0

    # ------------------------------------------------------------------ running

    def reset(self) -> World:
        """A fresh device, a fresh kernel, and the driver's probe."""
        world = World(self.subsystem, self.variant, self.commands, self.policy, self.firmware)
        world.bundles = self.bundles
        world.publishing = ("the probe", self.bundles)
        try:
            self.subsystem.probe(world)
        except ModelError as exc:
            raise ModelError(f"plugin {self._plugin('subsystem', self.subsystem.name)!r}: probe: {exc}") from exc
        except (Exception, SystemExit) as exc:  # a model bug, not a finding (nor a reason to exit)
            raise ModelError(f"plugin {self._plugin('subsystem', self.subsystem.name)!r}: probe raised "
                             f"{raised(exc)}") from exc
        self.probed = tuple(world.published)
        world.published = []
        world.publishing = None
        self.world = world
        self.index = 0
        return world

    def run(self, steps: Iterable[Step]) -> list[StepResult]:
        self.reset()
        return [self.apply(s) for s in steps]

    def apply(self, step: Step) -> StepResult:
        world = self.world
        reached = self.reached
        reached_get = reached.get
        self.index += 1
        self.total_steps += 1
        world.accesses = []
        if world.published:
            world.published = []
        if step.actor == "user":
            sized = self.sized.get((step.channel, step.op))
            if sized and any(p.name not in step.args for p in sized):
                step = self.complete(step)
        state = world.device.state
        before = state.copy()
        taint_before = world.taint_mark()
        decision: Decision | None = None
        reply: Reply | None = None
        command: Command | None = None
        declared = 0
        trusts: tuple[Trust, ...] = ()
        kernel_effects: int | None = None
        reacted: list[str] = []
        traced: list[Reacted] = []
        what = "kernel action" if step.actor == "kernel" else "command"
        try:
            if step.actor == "kernel":
                action = self.actions[step.op]
                reply = action.run(world, step.args)
                self.reached[("", step.op, None, "", True, getattr(reply, "errno", 0), frozenset(), ())] += 1
            else:
                command = self.user_index[(step.channel, step.op)]
                assert step.caller is not None
                declared = command.declared(step.args, world.device)
                policy = self.policy
                channel = self.channels[step.channel]
                request = self.request(step, command)
                if step.channel not in policy.channels:
                    decision = Decision(
                        False, policy.refuses.get(step.channel, errno.ENODEV), rule="channel-closed",
                        reason=f"{policy.name} does not open {step.channel}",
                    )
                else:
                    what = "policy"
                    decision = policy.decide(request)
                    what = "command"
                if policy.trusts:
                    trusts = policy.trusts_for(step.channel, step.op, step.caller)
                key = (step.channel, step.op, step.caller, decision.rule, decision.allowed, decision.errno,
                       decision.taint, decision.marked)
                reached[key] = reached_get(key, 0) + 1
                if decision.taint:
                    world.taint(*decision.taint)
                if decision.allowed:
                    if decision.rewrite:
                        request = attrs.evolve(request, args={**step.args, **decision.rewrite})
                    caller = step.caller
                    reactions = policy.reactions_for(step.channel, step.op)
                    if reactions:  # read before the command runs, as nvme_passthru_start() does
                        what = "kernel effects"
                        kernel_effects = self.kernel_effects(request, declared, step)
                        what = "command"

                    def forward(args: Mapping[str, Any], command: Command = command) -> Reply:
                        if command.driver is not None:
                            return command.driver(world, args, caller)
                        assert command.handler is not None
                        return command.handler(world.device, args)

                    if channel.transport is not None:
                        what = "transport"
                        reply = channel.transport(world, request, forward)
                        what = "command"
                    else:
                        reply = forward(request.args)
                    if isinstance(reply, Reply) and reactions:
                        assert kernel_effects is not None
                        for reaction in reactions:
                            if reaction.effects is not None and not kernel_effects & reaction.effects:
                                if self.trace:
                                    traced.append(Reacted(reaction.name, ran=False))
                                continue
                            what = f"reaction {reaction.name!r}"
                            view = _kernel_view(world) if self.trace else None
                            mark = len(world.published)
                            world.publishing = (what, self.reaction_bundles[reaction.name])
                            reaction.run(world, request, reply)
                            world.publishing = None
                            reacted.append(reaction.name)
                            self.reached[("reaction", reaction.name)] += 1
                            if view is not None:
                                traced.append(self._reacted(reaction, view, tuple(world.published[mark:])))
            if not isinstance(reply, Reply) and not (decision is not None and not decision.allowed):
                raise ModelError(f"{self._owner(step)}: {self._callable(step)} returned "
                                 f"{type(reply).__name__}, not a Reply")
        except KeyError as exc:
            if step.actor == "kernel" and step.op not in self.actions:
                raise ModelError(self._unknown(step)) from exc
            if step.actor == "user" and (step.channel, step.op) not in self.user_index:
                raise ModelError(self._unknown(step)) from exc
            raise ModelError(self._crash(step, exc, what)) from exc
        except ModelError as exc:
            if str(exc).startswith("plugin "):
                raise
            who = self._owner(step)
            if what.startswith("reaction"):
                who = f"plugin {self._plugin('policy', self.subsystem.name, self.policy.name)!r}: {what}"
            raise ModelError(f"{who}: {exc} in step {self.index} ({step.describe()})") from exc
        except RuleError as exc:
            who = self._plugin("policy", self.subsystem.name, self.policy.name)
            raise ModelError(f"plugin {who!r}: policy {self.policy.name!r}: {exc} "
                             f"in step {self.index} ({step.describe()})") from exc
        except (Exception, SystemExit) as exc:  # a plugin's sys.exit() must not end the run as "clean"
            raise ModelError(self._crash(step, exc, what)) from exc
        # O(changed) comparisons: an unchanged value is the same object, so ``is`` settles most keys
        # without calling __eq__ (a long replay may hold hundreds of firmware objects).
        # dict's own methods, not the state's: a proof's watched state (fuzzer.touched) must not count this
        # diff as the step's reads (the keys it reports are the step's writes, which it does count).
        get = partial(dict.get, before)
        moved = [k for k, v in dict.items(state) if (old := get(k, ABSENT)) is not v and old != v]
        added = sum(1 for k in moved if k not in before)
        if not added and dict.__len__(state) == dict.__len__(before):
            changes = tuple((k, before[k], state[k]) for k in moved)
        else:  # objects were created or destroyed: report in key order
            if len(before) > len(state) - added:
                moved.extend(k for k in before if k not in state)
            changes = tuple((k, get(k, ABSENT), state.get(k, ABSENT)) for k in sorted(moved))
        ctx = StepContext(
            index=self.index,
            step=step,
            world=world,
            before=before,
            changed=tuple(c[0] for c in changes),
            taint_before=taint_before,
            command=command,
            decision=decision,
            reply=reply,
            declared=declared,
            trusts=trusts,
            accesses=tuple(world.accesses),
        )
        violations: list[Violation] = []
        for inv in self.invariants:
            try:
                violations.extend(inv.check(ctx))
            except ModelError as exc:
                raise ModelError(f"plugin {self._plugin('invariant', inv.subsystem or '*', inv.name)!r}: "
                                 f"invariant {inv.name!r}: {exc} in step {self.index} ({step.describe()})") from exc
            except (Exception, SystemExit) as exc:
                raise ModelError(f"plugin {self._plugin('invariant', inv.subsystem or '*', inv.name)!r}: "
                                 f"invariant {inv.name!r} raised {raised(exc)} in step {self.index} "
                                 f"({step.describe()})") from exc
        owned = tuple(k for k, _, _ in changes if _owned_now(world, k)) if self.trace and changes else ()
        return StepResult(self.index, step, decision, reply, changes, tuple(violations), declared, owned,
                          tuple(reacted), kernel_effects, tuple(world.published) if world.published else (),
                          tuple(traced) if traced else ())

    def kernel_effects(self, request: Request, declared: int, step: Step) -> int:
        """The effects the kernel believes ``request``'s command has: ``Subsystem.kernel_effects``, else ``declared``."""
        hook = self.subsystem.kernel_effects
        if hook is None:
            return declared
        found = hook(request)
        if found is None:
            return declared
        if isinstance(found, bool) or not isinstance(found, int):
            raise ModelError(f"plugin {self._plugin('subsystem', self.subsystem.name)!r}: Subsystem.kernel_effects "
                             f"returned {type(found).__name__} {shown(found)}, not an effect mask (int) or None, "
                             f"in step {self.index} ({step.describe()})")
        return int(found)

    def _reacted(self, reaction: Reaction, view: tuple[dict[Any, Any], dict[str, Any], frozenset[str]],
                 published: tuple[tuple[str, Any], ...]) -> Reacted:
        kernel, shadow, taint = view
        world = self.world
        return Reacted(reaction.name, True, _diff(kernel, world.kernel), _diff(shadow, world.shadow),
                       world.tainted - taint, published)

    def request(self, step: Step, command: Command | None = None) -> Request:
        """What the policy sees for user ``step`` in the current world (its payload copied in, if sized)."""
        command = command or self.user_index[(step.channel, step.op)]
        assert step.caller is not None
        channel = self.channels[step.channel]
        payload, base = None, 0
        if channel.envelope is not None:
            payload, base = inbound(self.world, channel.envelope, command, step.args)
        return Request(command, step.channel, step.args, step.caller, self.world.kernel, self.world.device,
                       self.policy.knobs, payload, base)

    def complete(self, step: Step) -> Step:
        """``step`` with every size argument it leaves out set to its natural value.

        A size left out means "what a correct caller declares", so tests and
        plugin authors write ``Step("user", "CLEAR_LOG", {"log": ...}, ...)``.
        """
        sized = self.sized.get((step.channel, step.op)) if step.actor == "user" else None
        if not sized:
            return step
        args = dict(step.args)
        for p in sized:
            if p.name not in args:
                args[p.name] = p.natural(args) if callable(p.natural) else p.lo
        return attrs.evolve(step, args=args)

    def params_of(self, step: Step) -> tuple[Param, ...] | None:
        """The resolved parameters of a user step (None for a kernel action or an unknown command)."""
        return self.params.get((step.channel, step.op)) if step.actor == "user" else None

    def payload_of(self, step: Step) -> bytes | None:
        """The input bytes a user step hands the kernel (header and payload, cut to the declared size)."""
        if step.actor != "user":
            return None
        channel = self.channels.get(step.channel)
        command = self.user_index.get((step.channel, step.op))
        if channel is None or channel.envelope is None or command is None:
            return None
        size = max(0, int(step.args.get(channel.envelope.inbound, 0)))
        return encode_request(channel.envelope, command, step.args)[:size].ljust(min(size, 256), b"\0")

    # ------------------------------------------------------------------ checking input

    def validate(self, step: Step) -> str | None:
        """Why ``step`` cannot run on this subsystem and device, or None."""
        if step.actor == "kernel":
            action = self.actions.get(step.op)
            if action is None:
                return self._unknown(step)
            return check_args(action.params, step.args)
        if step.channel not in self.channels:
            return f"unknown channel {shown(step.channel)}; {self.subsystem.name} has {sorted(self.channels)}"
        command = self.user_index.get((step.channel, step.op))
        if command is None:
            return self._unknown(step)
        if step.caller is None:
            return "a user step needs a caller"
        params = self.params[(step.channel, step.op)]
        given = tuple(p for p in params if p.kind != "size" or p.name in step.args)  # a size left out is natural
        return self._check_caller(step) or check_args(given, step.args)

    def _check_caller(self, step: Step) -> str | None:
        """Refuse caller capabilities, scopes, lockdown states and switches the channel does not declare.

        A corpus file may only name what the subsystem could have drawn: an
        unknown capability can never matter to a policy, and a made-up one is
        how hostile text would reach exported code and terminals.
        """
        c = step.caller
        assert c is not None
        channel = self.channels[step.channel]
        space = channel.callers or self.subsystem.callers
        checks = (
            ("capability", sorted(c.caps - frozenset().union(*space.caps)), sorted(frozenset().union(*space.caps))),
            ("switch", sorted(c.switches - frozenset().union(*space.switches)),
             sorted(frozenset().union(*space.switches))),
            ("lockdown state", [c.lockdown] if c.lockdown not in space.lockdown else [], list(space.lockdown)),
            ("scope", [c.scope] if c.scope is not None and c.scope not in channel.scopes else [],
             list(channel.scopes)),
        )
        for what, bad, known in checks:
            if bad:
                return (f"caller {what} {', '.join(shown(b) for b in bad[:3])}{' ...' if len(bad) > 3 else ''} "
                        f"is not declared for channel {shown(step.channel)}; it has {known or 'none'}")
        return None

    def _unknown(self, step: Step) -> str:
        if step.actor == "kernel":
            return f"unknown kernel action {shown(step.op)}; {self.subsystem.name} has {sorted(self.actions)}"
        ops = sorted(op for ch, op in self.user_index if ch == step.channel)
        # a bounded message whatever the table's size: the first dozen names, then a count
        listed = f"{ops[:12]}" + (f" and {len(ops) - 12} more" if len(ops) > 12 else "")
        return (
            f"unknown op {shown(step.op)} on channel {shown(step.channel)} for device "
            f"{self.variant.name!r}; it carries {listed}"
        )

    def _plugin(self, *key: str) -> str:
        return self.provider.get(key) or self.provider.get(("subsystem", self.subsystem.name)) or self.subsystem.name

    def _owner(self, step: Step) -> str:
        """``plugin 'x'``: the plugin that registered the step's action or command."""
        if step.actor == "kernel":
            return f"plugin {self._plugin('subsystem', self.subsystem.name)!r}"
        return f"plugin {self._plugin('command', self.subsystem.name, step.op)!r}"

    def _callable(self, step: Step) -> str:
        if step.actor == "kernel":
            return f"kernel action {step.op}"
        cmd = self.user_index.get((step.channel, step.op))
        kind = "driver" if cmd is not None and cmd.driver is not None else "handler"
        return f"{kind} of {step.op}"

    def _crash(self, step: Step, exc: BaseException, what: str = "") -> str:
        blame = self._owner(step)
        if what.startswith("policy") or what.startswith("reaction") or what == "transport":
            blame = f"plugin {self._plugin('policy', self.subsystem.name, self.policy.name)!r}: {what}"
        elif what == "kernel effects":
            blame = f"plugin {self._plugin('subsystem', self.subsystem.name)!r}: Subsystem.kernel_effects"
        else:
            blame = f"{blame}: {self._callable(step)}"
        return f"{blame} raised {raised(exc)} in step {self.index} ({step.describe()})"
