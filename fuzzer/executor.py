"""Apply steps to a device model and kernel model under a policy, and check invariants.

The heart of ptfuzz, and deliberately free of Hypothesis: the state machine
feeds it drawn steps, replay feeds it steps from a corpus file, the
minimizer feeds it sub-sequences.  All three therefore see the same verdicts,
bit for bit.  Everything that can be indexed is indexed in ``__init__`` so
that ``apply`` does one snapshot, one policy decision, one handler call and
the invariant checks.
"""

from __future__ import annotations

import errno
from collections.abc import Iterable, Sequence
from typing import Any

import attrs

from fuzzer.errors import ModelError
from fuzzer.invariants import GENERIC
from fuzzer.safetext import shown
from fuzzer.spec import (
    ABSENT,
    Command,
    Decision,
    DeviceVariant,
    Invariant,
    KernelAction,
    Policy,
    Reply,
    Request,
    Subsystem,
    Violation,
    check_args,
)
from fuzzer.world import Step, StepContext, World


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

    @property
    def reply_handle(self) -> Any:
        return None if self.reply is None else self.reply.handle


def variant_commands(
    subsystem: Subsystem, variant: DeviceVariant, extra: Iterable[Command] = ()
) -> dict[str, Command]:
    """The command table of one device variant: common, then plugin-added, then the variant's own."""
    table = {c.op: c for c in subsystem.commands}
    table.update({c.op: c for c in extra})
    table.update({c.op: c for c in variant.commands})
    return table


class Executor:
    def __init__(
        self,
        subsystem: Subsystem,
        policy: Policy,
        device: DeviceVariant,
        *,
        extra_commands: Iterable[Command] = (),
        invariants: Sequence[Invariant] = (),
    ) -> None:
        self.subsystem = subsystem
        self.policy = policy
        self.variant = device
        self.commands = variant_commands(subsystem, device, extra_commands)
        self.user_index: dict[tuple[str, str], Command] = {
            (ch, c.op): c for c in self.commands.values() for ch in c.channels
        }
        self.actions: dict[str, KernelAction] = {a.name: a for a in subsystem.actions}
        self.invariants = tuple(GENERIC) + tuple(
            i for i in invariants if i.subsystem in (None, subsystem.name)
        )
        self.channels = {c.name for c in subsystem.channels}
        self.channel_specs = {c.name: c for c in subsystem.channels}
        self.total_steps = 0
        self.world = self.reset()
        self.index = 0

    # ------------------------------------------------------------------ running

    def reset(self) -> World:
        """A fresh device, a fresh kernel, and the driver's probe."""
        world = World(self.subsystem, self.variant, self.commands, self.policy)
        try:
            self.subsystem.probe(world)
        except (Exception, SystemExit) as exc:  # a model bug, not a finding (nor a reason to exit)
            raise ModelError(f"{self.subsystem.name} probe raised {type(exc).__name__}: {exc}") from exc
        self.world = world
        self.index = 0
        return world

    def run(self, steps: Iterable[Step]) -> list[StepResult]:
        self.reset()
        return [self.apply(s) for s in steps]

    def apply(self, step: Step) -> StepResult:
        world = self.world
        self.index += 1
        self.total_steps += 1
        state = world.device.state
        before = state.copy()
        taint_before = world.kernel["taint"]
        decision: Decision | None = None
        reply: Reply | None = None
        command: Command | None = None
        declared = 0
        try:
            if step.actor == "kernel":
                action = self.actions[step.op]
                reply = action.run(world, step.args)
            else:
                command = self.user_index[(step.channel, step.op)]
                assert step.caller is not None
                declared = command.declared(step.args, world.device)
                if step.channel not in self.policy.channels:
                    decision = Decision(
                        False, errno.ENODEV, rule="channel-closed",
                        reason=f"{self.policy.name} does not open {step.channel}",
                    )
                else:
                    decision = self.policy.decide(
                        Request(command, step.channel, step.args, step.caller, world.kernel, world.device)
                    )
                if decision.taint:
                    world.taint(*decision.taint)
                if decision.allowed:
                    args = {**step.args, **decision.rewrite} if decision.rewrite else step.args
                    if command.driver is not None:
                        reply = command.driver(world, args, step.caller)
                    else:
                        assert command.handler is not None
                        reply = command.handler(world.device, args)
        except KeyError as exc:
            if step.actor == "kernel" and step.op not in self.actions:
                raise ModelError(self._unknown(step)) from exc
            if step.actor == "user" and (step.channel, step.op) not in self.user_index:
                raise ModelError(self._unknown(step)) from exc
            raise ModelError(self._crash(step, exc)) from exc
        except ModelError:
            raise
        except (Exception, SystemExit) as exc:  # a plugin's sys.exit() must not end the run as "clean"
            raise ModelError(self._crash(step, exc)) from exc
        # O(changed) comparisons: an unchanged value is the same object, so ``is`` settles most keys
        # without calling __eq__ (a long replay may hold hundreds of firmware objects).
        get = before.get
        moved = [k for k, v in state.items() if (old := get(k, ABSENT)) is not v and old != v]
        added = sum(1 for k in moved if k not in before)
        if not added and len(state) == len(before):
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
        )
        violations: list[Violation] = []
        try:
            for inv in self.invariants:
                violations.extend(inv.check(ctx))
        except ModelError:
            raise
        except (Exception, SystemExit) as exc:
            raise ModelError(f"invariant {inv.name!r}: {self._crash(step, exc)}") from exc
        return StepResult(self.index, step, decision, reply, changes, tuple(violations), declared)

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
        return self._check_caller(step) or check_args(command.params, step.args)

    def _check_caller(self, step: Step) -> str | None:
        """Refuse caller capabilities, scopes, lockdown states and switches the channel does not declare.

        A corpus file may only name what the subsystem could have drawn: an
        unknown capability can never matter to a policy, and a made-up one is
        how hostile text would reach exported code and terminals.
        """
        c = step.caller
        assert c is not None
        channel = self.channel_specs[step.channel]
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
        return (
            f"unknown op {shown(step.op)} on channel {shown(step.channel)} for device "
            f"{self.variant.name!r}; it carries {ops}"
        )

    def _crash(self, step: Step, exc: BaseException) -> str:
        return (
            f"{self.subsystem.name} model raised {type(exc).__name__}: {exc} "
            f"in step {self.index} ({step.describe()})"
        )
