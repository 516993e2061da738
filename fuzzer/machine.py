"""Build a Hypothesis ``RuleBasedStateMachine`` from a subsystem, a policy and a device.

One rule per kernel action and per (channel, command), named after them, so
that Hypothesis's printed program reads as the steps themselves.  The machine
only draws steps; the executor decides what they do.  Handles (regions,
objects) flow between rules through Bundles named by the plugin.

Handles that come from no rule (``world.publish``) reach the bundles through
rules that run no step: one ``initialize`` rule per bundle the probe
published into (the probe is deterministic, so its handles are known when
the machine is built), and one rule per bundle a policy's reaction
``produces``, enabled while a step's reactions left handles to hand over.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    initialize,
    multiple,
    precondition,
    rule,
)

from fuzzer.spec import Caller, CallerSpace, Channel, Param, Violation
from fuzzer.world import Step

if TYPE_CHECKING:  # pragma: no cover
    from fuzzer.executor import Executor


class ViolationFound(Exception):
    """Raised by the machine for a violation whose signature is not yet ignored.

    A subclass is made per signature so that Hypothesis treats each signature
    as a distinct bug and never shrinks one into another.
    """

    def __init__(self, violation: Violation, steps: list[Step]) -> None:
        super().__init__(f"{violation.signature}: {violation.message}")
        self.violation = violation
        self.steps = steps


_CLASSES: dict[str, type[ViolationFound]] = {}


def exception_for(violation: Violation, steps: list[Step]) -> ViolationFound:
    sig = violation.signature
    cls = _CLASSES.get(sig)
    if cls is None:
        cls = type(f"Violation[{sig}]", (ViolationFound,), {})
        _CLASSES[sig] = cls
    return cls(violation, steps)


class OutOfBudget(KeyboardInterrupt):
    """Raised inside Hypothesis to end a round when the time budget is spent.

    Hypothesis treats KeyboardInterrupt as "stop now" (it records nothing about
    the interrupted test case), which is exactly what an expired budget means.
    A ``Session`` raises it from ``begin`` or ``tick``; the round's runner
    (``fuzzer.hypothesis_search``) and the native search catch it.
    """


class ShrinkBudget(KeyboardInterrupt):
    """Ends a round whose shrinking has used the campaign's ``SHRINK_RUNS`` runs; findings are already saved."""


class Session:
    """What a machine needs from its campaign (a protocol; ``Campaign`` implements it)."""

    executor: Executor
    ignore: frozenset[str]

    def begin(self) -> None: ...

    def found(self, steps: list[Step], violations: list[Violation]) -> None: ...

    def tick(self) -> None:
        """After every step: a campaign may end a long sequence here (its deadline, Ctrl-C)."""

    def ignored(self, violation: Violation) -> bool:
        return violation.signature in self.ignore


def param_strategy(p: Param, bundles: dict[str, Bundle]) -> Any:
    if p.strategy is not None:
        return p.strategy
    if p.kind == "int":
        return st.integers(p.lo, p.hi)
    if p.kind == "bool":
        return st.booleans()
    if p.kind == "choice":
        return st.sampled_from(p.choices)
    if p.kind == "handle":
        bundle = bundles.setdefault(p.bundle, Bundle(p.bundle))
        return consumes(bundle) if p.consumes else bundle
    if p.kind == "size":
        # None stands for the natural size (the rule leaves it out: ``Executor.complete``);
        # it comes first so that Hypothesis shrinks towards a well-formed request
        edges = [st.sampled_from(p.marks)] if p.marks else []
        return st.one_of(st.none(), *edges, st.integers(p.lo, p.hi))
    raise ValueError(f"parameter {p.name!r} has unknown kind {p.kind!r}")


def caller_strategy(space: CallerSpace, channel: Channel) -> Any:
    space = channel.callers or space
    return st.builds(
        Caller,
        caps=st.sampled_from(space.caps),
        scope=st.sampled_from(channel.scopes) if channel.scopes else st.none(),
        lockdown=st.sampled_from(space.lockdown),
        switches=st.sampled_from(space.switches),
    )


def rule_name(channel: str, op: str) -> str:
    """A Python identifier for the rule (ops may carry syzkaller-style ``$variant`` suffixes)."""
    return re.sub(r"\W", "_", f"{channel}__{op}")


def targets(produces: str | tuple[str, ...]) -> tuple[str, ...]:
    """The bundle names a rule adds its handles to; ``""`` (the records' default) means none."""
    names = (produces,) if isinstance(produces, str) else tuple(produces)
    return tuple(n for n in names if n)


#: Keywords ``rule()`` and ``initialize()`` take for themselves: a parameter of that name
#: (gpu's ``AMDGPU_SCHED`` has a ``target``) would be read as the rule's output bundle.
RESERVED = frozenset({"target", "targets"})


def strategy_key(name: str) -> str:
    """The keyword a parameter's strategy is passed to Hypothesis under (``target`` -> ``target_``)."""
    return f"{name}_" if name in RESERVED else name


def _unmangle(kw: dict[str, Any]) -> dict[str, Any]:
    """The drawn arguments under their parameters' own names again."""
    back = {strategy_key(n): n for n in RESERVED}
    return {back.get(k, k): v for k, v in kw.items()}


def build_machine(session: Session) -> type[RuleBasedStateMachine]:
    """A state machine class whose rules are the subsystem's actions and the policy's commands."""
    executor = session.executor
    subsystem = executor.subsystem
    policy = executor.policy
    bundles: dict[str, Bundle] = {}
    ns: dict[str, Any] = {}

    def _init(self: Any) -> None:
        RuleBasedStateMachine.__init__(self)
        session.begin()
        executor.reset()
        self.steps = []
        #: handles reactions published, per bundle, not yet handed to Hypothesis's bundles
        self.pending = {}

    def _do(self: Any, step: Step, produces: str | tuple[str, ...]) -> Any:
        result = executor.apply(step)
        self.steps.append(step)
        for bundle, handle in result.publications:
            self.pending.setdefault(bundle, []).append(handle)
        if result.violations:
            new = [v for v in result.violations if not session.ignored(v)]
            if new:
                steps = list(self.steps)
                session.found(steps, new)
                raise exception_for(min(new, key=lambda v: v.signature), steps)
        session.tick()
        if not produces or result.reply is None:
            return None
        handles = result.reply.published
        if len(handles) == 1:
            return handles[0]
        return multiple(*handles)

    ns["__init__"] = _init
    ns["_do"] = _do

    def make_rule(fn: Callable[..., Any], strategies: dict[str, Any], produces: str | tuple[str, ...],
                  decorator: Any = rule) -> Any:
        names = targets(produces)
        if names:
            return decorator(targets=tuple(bundles.setdefault(n, Bundle(n)) for n in names), **strategies)(fn)
        return decorator(**strategies)(fn)

    def kernel_rule(name: str, params: tuple[Param, ...], produces: str | tuple[str, ...]) -> Callable[..., Any]:
        def fn(self: Any, **kw: Any) -> Any:
            return self._do(Step("kernel", name, _unmangle(kw)), produces)

        fn.__name__ = f"kernel__{name}"
        strategies = {strategy_key(p.name): param_strategy(p, bundles) for p in params}
        return make_rule(fn, strategies, produces)

    def user_rule(
        channel: Channel, op: str, params: tuple[Param, ...], produces: str | tuple[str, ...],
        decorator: Any = rule,
    ) -> Callable[..., Any]:
        sizes = frozenset(p.name for p in params if p.kind == "size")

        def fn(self: Any, caller: Caller, **kw: Any) -> Any:
            # a size drawn as None is left out, and so becomes the natural one
            args = {k: v for k, v in _unmangle(kw).items() if not (v is None and k in sizes)}
            return self._do(executor.complete(Step("user", op, args, channel.name, caller)), produces)

        fn.__name__ = rule_name(channel.name, op) + ("__first" if decorator is initialize else "")
        strategies = {strategy_key(p.name): param_strategy(p, bundles) for p in params}
        strategies["caller"] = caller_strategy(subsystem.callers, channel)
        return make_rule(fn, strategies, produces, decorator)

    for action in subsystem.actions:
        ns[re.sub(r"\W", "_", f"kernel__{action.name}")] = kernel_rule(action.name, action.params, action.produces)
    channels = {c.name: c for c in subsystem.channels}
    for (channel, op), cmd in sorted(executor.user_index.items()):
        if channel in policy.channels:
            params = executor.params[(channel, op)]
            ns[rule_name(channel, op)] = user_rule(channels[channel], op, params, cmd.produces)
            if channels[channel].opener == op:
                ns[rule_name(channel, op) + "__first"] = user_rule(
                    channels[channel], op, params, cmd.produces, decorator=initialize)
    probed: dict[str, list[Any]] = {}
    for bundle, handle in executor.probed:
        probed.setdefault(bundle, []).append(handle)
    for bundle, handles in sorted(probed.items()):
        ns[re.sub(r"\W", "_", f"probe__{bundle}")] = probe_rule(bundles, bundle, tuple(handles))
    for bundle in sorted({b for r in policy.reactions for b in r.bundles}):
        ns[re.sub(r"\W", "_", f"reacted__{bundle}")] = reacted_rule(bundles, bundle)
    name = f"{subsystem.name}_{policy.label}_{executor.variant.name}".replace("-", "_").replace("~", "_without_")
    return type(name, (RuleBasedStateMachine,), ns)


def probe_rule(bundles: dict[str, Bundle], bundle: str, handles: tuple[Any, ...]) -> Any:
    """An ``initialize`` rule that puts the probe's handles into ``bundle``: they exist from the start."""
    def fn(self: Any) -> Any:
        return multiple(*handles)

    fn.__name__ = re.sub(r"\W", "_", f"probe__{bundle}")
    return initialize(target=bundles.setdefault(bundle, Bundle(bundle)))(fn)


def reacted_rule(bundles: dict[str, Bundle], bundle: str) -> Any:
    """A rule that hands the handles reactions published into ``bundle`` over to it (no step runs)."""
    def fn(self: Any) -> Any:
        return multiple(*self.pending.pop(bundle, ()))

    fn.__name__ = re.sub(r"\W", "_", f"reacted__{bundle}")
    return precondition(lambda self: bool(self.pending.get(bundle)))(
        rule(target=bundles.setdefault(bundle, Bundle(bundle)))(fn))


class _Standalone(Session):
    """A session for a machine run by the user's own Hypothesis test: no budget, no corpus."""

    def __init__(self, executor: Executor) -> None:
        self.executor = executor
        self.ignore = frozenset()


def state_machine(
    subsystem: str, policy: str, device: str | None = None, *, without: tuple[str, ...] = (),
    registry: Any = None,
) -> type[RuleBasedStateMachine]:
    """The ptfuzz state machine of a subsystem, for your own Hypothesis tests.

    Any violation fails the test with a ``ViolationFound`` whose
    ``violation`` and ``steps`` say what broke, and Hypothesis shrinks it
    as usual.  Plugins load as for the command line unless ``registry`` (a
    ``fuzzer.host.Registry``) is given::

        from fuzzer.machine import state_machine
        TestIoctl = state_machine("cxl", "linux-ioctl").TestCase
    """
    from fuzzer import host

    reg = registry if registry is not None else host.load()
    executor = reg.executor(subsystem, reg.policy(subsystem, policy, without), reg.device(subsystem, device))
    return build_machine(_Standalone(executor))
