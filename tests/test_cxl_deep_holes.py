"""The deep CXL holes of tests/planted.py, checked without any search.

Each hole is a Linux policy with one check removed whose shortest failing
sequence has four steps.  Hypothesis may not find one within the budget of
``tests/test_planted_holes.py`` (where they are xfail), so this file replays
the known sequence by hand and checks, for each hole: (a) it opens the
signature under the holed policy, (b) it is 1-minimal, (c) the intact policy
does not open the signature on the same steps, and (d) nothing shorter opens
it, by a bounded exhaustive search.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any, NamedTuple

import pytest
from planted import HOLES, Hole

from fuzzer.executor import Executor
from fuzzer.host import Registry
from fuzzer.minimize import is_one_minimal
from fuzzer.spec import Caller, CallerSpace, Channel, Param
from fuzzer.world import Step

ANYONE = Caller()


def user(op: str, channel: str, caller: Caller = ANYONE, **args: object) -> Step:
    return Step("user", op, args, channel, caller)


def kernel(action: str, **args: object) -> Step:
    return Step("kernel", action, args)


class Deep(NamedTuple):
    hole: Hole
    steps: list[Step]


def _hole(policy: str, device: str, rule: str, last_op: str) -> Hole:
    (found,) = [h for h in HOLES if h.deep and (h.policy, h.device, h.rule, h.ops[-1]) == (policy, device, rule, last_op)]
    return found


# Why each step is needed is said once, in tests/planted.py and here.
DEEP = [
    # all-ram ships without persistent capacity, so cxl_mem_probe() adds no nvdimm.  A partition
    # change is the only way to get some; immediate-flag (still there) makes it wait for the next
    # cold reset, after which the re-probe sees pmem and libnvdimm can bind and own the labels.
    # Without exclusive-cmds, the ioctl's SET_LSA then rewrites them behind libnvdimm.
    Deep(_hole("linux-ioctl", "all-ram", "exclusive-cmds", "SET_LSA"), [
        user("SET_PARTITION_INFO", "cxl.ioctl", volatile=8, immediate=False),
        kernel("cold_reset"),
        kernel("nvdimm_bind"),
        user("SET_LSA", "cxl.ioctl", offset=0, length=1, byte=1),
    ]),
    # The same window through RAW (SET_LSA is in cxl_disabled_raw_commands[]).
    Deep(_hole("linux-raw", "all-ram", "disabled-raw-commands", "SET_LSA"), [
        user("SET_PARTITION_INFO", "cxl.ioctl", volatile=8, immediate=False),
        kernel("cold_reset"),
        kernel("nvdimm_bind"),
        user("SET_LSA", "cxl.raw", offset=0, length=1, byte=1),
    ]),
    # A passphrase set while no nvdimm owns the security state, a cold reset that locks the
    # device, libnvdimm binding to (and caching) a locked DIMM, and an Unlock behind its back.
    Deep(_hole("linux-raw", "spec", "security-command-sets", "UNLOCK"), [
        user("SET_PASSPHRASE", "cxl.raw", old="", new="secret-a"),
        kernel("cold_reset"),
        kernel("nvdimm_bind"),
        user("UNLOCK", "cxl.raw", passphrase="secret-a"),
    ]),
    # The same on all-ram: the one cold reset both makes the new pmem partition live (so the re-probe adds
    # an nvdimm) and locks the device.
    Deep(_hole("linux-raw", "all-ram", "security-command-sets", "UNLOCK"), [
        user("SET_PARTITION_INFO", "cxl.ioctl", volatile=8, immediate=False),
        user("SET_PASSPHRASE", "cxl.raw", old="", new="secret-a"),
        kernel("cold_reset"),
        kernel("nvdimm_bind"),
        user("UNLOCK", "cxl.raw", passphrase="secret-a"),
    ]),
]
IDS = [d.hole.test_id for d in DEEP]


def executor(registry: Registry, hole: Hole, *, intact: bool = False) -> Executor:
    policy = registry.policy(hole.subsystem, hole.policy, without=() if intact else (hole.rule,))
    return registry.executor(hole.subsystem, policy, registry.device(hole.subsystem, hole.device))


def signatures(ex: Executor, steps: list[Step]) -> list[set[str]]:
    return [{v.signature for v in r.violations} for r in ex.run(steps)]


def test_every_deep_hole_has_a_sequence_here() -> None:
    assert sorted(d.hole.test_id for d in DEEP) == sorted(h.test_id for h in HOLES if h.deep and h.subsystem == "cxl")
    for d in DEEP:
        assert [s.op for s in d.steps] == d.hole.ops and len(d.steps) >= 4


@pytest.mark.parametrize("deep", DEEP, ids=IDS)
def test_known_sequence_opens_the_signature_at_its_last_step(registry: Registry, deep: Deep) -> None:
    per_step = signatures(executor(registry, deep.hole), deep.steps)
    assert deep.hole.signature in per_step[-1]
    assert not any(deep.hole.signature in s for s in per_step[:-1])


@pytest.mark.parametrize("deep", DEEP, ids=IDS)
def test_known_sequence_is_one_minimal(registry: Registry, deep: Deep) -> None:
    assert is_one_minimal(executor(registry, deep.hole), deep.steps, deep.hole.signature)


@pytest.mark.parametrize("deep", DEEP, ids=IDS)
def test_intact_policy_closes_it(registry: Registry, deep: Deep) -> None:
    per_step = signatures(executor(registry, deep.hole, intact=True), deep.steps)
    assert not any(deep.hole.signature in s for s in per_step)


# --------------------------------------------------------------------------- nothing shorter
#
# A bounded exhaustive search over distinct worlds.  From the probed device, every candidate
# step is applied to every world reachable in fewer steps; worlds equal in device state,
# kernel bookkeeping, shadow and produced handles are explored once (their futures are the
# same).  A violation's signature names the op of the step that caused it, so a sequence of
# fewer than n steps opens the signature only if some world reachable in at most n-2 steps
# has a step with that op that opens it: all candidates are expanded to depth n-2, and only
# steps with the signature's op are tried at the last level.
#
# Candidates: every kernel action and every (channel, op) the policy opens.  Arguments: both
# booleans, every choice and every handle produced so far, in every combination, each with
# the integer parameters all at their low bound, all at their midpoint or all at their high
# bound.  Callers: every caller of the channel's CallerSpace (caps, lockdown levels, debugfs
# switches, fwctl scopes).
# A step the policy denies without tainting changes nothing (the device never sees it), so
# it is not applied; of callers the policy decides alike, only the first is applied (no CXL
# command has a caller-dependent driver, so they leave the same world behind, and only the
# access invariant, which no hole here is about, tells them apart).


def _values(p: Param, handles: dict[str, tuple[Any, ...]]) -> list[Any]:
    if p.kind == "bool":
        return [False, True]
    if p.kind == "choice":
        return list(p.choices)
    if p.kind == "handle":
        return list(handles.get(p.bundle, ()))
    return [p.lo, (p.lo + p.hi) // 2, p.hi]


def _callers(space: CallerSpace, channel: Channel) -> list[Caller]:
    space = channel.callers or space
    return [Caller(caps, scope, lockdown, switches)
            for caps in space.caps for scope in (channel.scopes or (None,))
            for lockdown in space.lockdown for switches in space.switches]


def _arg_sets(params: tuple[Param, ...], handles: dict[str, tuple[Any, ...]]) -> Iterator[dict[str, Any]]:
    """Every combination of the non-integer values, each with the integers all low, all mid, all high."""
    ints = [p for p in params if p.kind == "int"]
    others = [p for p in params if p.kind not in ("int", "size")]  # sizes left out: the natural ones
    for combo in itertools.product(*(_values(p, handles) for p in others)):
        for i in range(3 if ints else 1):
            yield {**dict(zip((p.name for p in others), combo, strict=True)),
                   **{p.name: _values(p, handles)[i] for p in ints}}


Produces = str | tuple[str, ...]


def _candidates(ex: Executor, handles: dict[str, tuple[Any, ...]], only_op: str | None) -> Iterator[tuple[Step, Produces]]:
    """The steps to try from the executor's current world (only ``only_op`` ones, if given)."""
    for action in ex.subsystem.actions:
        if only_op in (None, action.name):
            for args in _arg_sets(action.params, handles):
                yield Step("kernel", action.name, args), action.produces
    world = ex.world
    channels = {c.name: c for c in ex.subsystem.channels}
    for (channel, op), cmd in sorted(ex.user_index.items()):
        if channel in ex.policy.channels and only_op in (None, op):
            callers = _callers(ex.subsystem.callers, channels[channel])
            for args in _arg_sets(cmd.params, handles):
                seen = set()
                for caller in callers:
                    d = ex.policy.decide(ex.request(ex.complete(Step("user", op, args, channel, caller))))
                    outcome = (d.allowed, d.errno, d.taint, _freeze(dict(d.rewrite)))
                    if (d.allowed or d.taint - world.tainted) and outcome not in seen:
                        seen.add(outcome)
                        yield Step("user", op, args, channel, caller), cmd.produces


def _freeze(value: Any) -> Any:
    if isinstance(value, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    return value


class _Node(NamedTuple):
    device: dict[str, Any]
    kernel: dict[str, Any]
    shadow: dict[str, Any]
    handles: dict[str, tuple[Any, ...]]
    counter: int


def _save(ex: Executor, handles: dict[str, tuple[Any, ...]]) -> _Node:
    w = ex.world
    return _Node(w.device.state.copy(), dict(w.kernel), dict(w.shadow), handles, w.handles)


def _load(ex: Executor, node: _Node) -> None:
    """Put ``node``'s world back.  Shallow copies suffice: the CXL models replace values, never mutate them."""
    w = ex.world
    w.device.state, w.kernel, w.shadow, w.handles = node.device.copy(), dict(node.kernel), dict(node.shadow), node.counter


def _produces(ex: Executor, step: Step) -> Produces:
    return ex.actions[step.op].produces if step.actor == "kernel" else ex.user_index[(step.channel, step.op)].produces


def _produced(handles: dict[str, tuple[Any, ...]], handle: Any, produces: Produces) -> dict[str, tuple[Any, ...]]:
    """``handles`` plus the handle a step produced, in the bundle(s) it goes to."""
    if not produces or handle is None:
        return handles
    bundles = (produces,) if isinstance(produces, str) else produces
    return {**handles, **{b: (*handles.get(b, ()), handle) for b in bundles}}


def shortest_opening(ex: Executor, signature: str, max_len: int, prefix: tuple[Step, ...] = ()) -> list[Step] | None:
    """A sequence of at most ``max_len`` steps after ``prefix`` that opens ``signature``, or None (see above)."""
    invariant, _, op = signature.split(":")[:3]
    assert invariant != "access", "callers decided alike are applied once: not enough for access violations"
    ex.reset()
    handles: dict[str, tuple[Any, ...]] = {}
    for step in prefix:
        handles = _produced(handles, ex.apply(step).reply_handle, _produces(ex, step))
    level: list[tuple[_Node, list[Step]]] = [(_save(ex, handles), [*prefix])]
    seen = {_freeze(level[0][0]._asdict())}
    for depth in range(1, max_len + 1):
        last = depth == max_len
        nxt: list[tuple[_Node, list[Step]]] = []
        for node, path in level:
            _load(ex, node)
            for step, produces in list(_candidates(ex, node.handles, op if last else None)):
                _load(ex, node)
                result = ex.apply(step)
                if any(v.signature == signature for v in result.violations):
                    return [*path, step]
                if last:
                    continue
                child = _save(ex, _produced(node.handles, result.reply_handle, produces))
                key = _freeze(child._asdict())
                if key not in seen:
                    seen.add(key)
                    nxt.append((child, [*path, step]))
        level = nxt
    return None


@pytest.mark.parametrize("deep", DEEP, ids=IDS)
def test_no_shorter_sequence_opens_it(registry: Registry, deep: Deep) -> None:
    ex = executor(registry, deep.hole)
    n = len(deep.steps)
    assert shortest_opening(ex, deep.hole.signature, n - 1) is None
    # ...and the search can succeed: after the known first two steps it finds the other two
    found = shortest_opening(ex, deep.hole.signature, n - 2, prefix=tuple(deep.steps[:2]))
    assert found is not None and len(found) == n and found[-1].op == deep.hole.ops[-1]
