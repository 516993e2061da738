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
        self.total_steps = 0
        self.world = self.reset()
        self.index = 0

    # ------------------------------------------------------------------ running

    def reset(self) -> World:
        """A fresh device, a fresh kernel, and the driver's probe."""
        world = World(self.subsystem, self.variant, self.commands, self.policy)
        try:
            self.subsystem.probe(world)
        except Exception as exc:  # a model bug, not a finding
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
        except Exception as exc:
            raise ModelError(self._crash(step, exc)) from exc
        if state.keys() == before.keys():
            changes = tuple((k, before[k], v) for k, v in state.items() if before[k] != v)
        else:  # objects were created or destroyed
            changes = tuple(
                (k, before.get(k, ABSENT), state.get(k, ABSENT))
                for k in sorted(before.keys() | state.keys())
                if before.get(k, ABSENT) != state.get(k, ABSENT)
            )
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
        for inv in self.invariants:
            violations.extend(inv.check(ctx))
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
            return f"unknown channel {step.channel!r}; {self.subsystem.name} has {sorted(self.channels)}"
        command = self.user_index.get((step.channel, step.op))
        if command is None:
            return self._unknown(step)
        if step.caller is None:
            return "a user step needs a caller"
        return check_args(command.params, step.args)

    def _unknown(self, step: Step) -> str:
        if step.actor == "kernel":
            return f"unknown kernel action {step.op!r}; {self.subsystem.name} has {sorted(self.actions)}"
        ops = sorted(op for ch, op in self.user_index if ch == step.channel)
        return (
            f"unknown op {step.op!r} on channel {step.channel!r} for device "
            f"{self.variant.name!r}; it carries {ops}"
        )

    def _crash(self, step: Step, exc: BaseException) -> str:
        return (
            f"{self.subsystem.name} model raised {type(exc).__name__}: {exc} "
            f"in step {self.index} ({step.describe()})"
        )
