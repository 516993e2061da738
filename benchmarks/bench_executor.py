"""Executor replay throughput: steps/second of ``Executor.run`` on a fixed sequence.

The sequence is generated once from a seeded ``random.Random``: kernel actions
and user commands (on every channel the policy opens) with arguments drawn
from each ``Param``'s range or choices and callers from the subsystem's
``CallerSpace``.  Handles come from real ``region_create`` replies, so the
replay touches the same code paths as fuzzing does.  Invariants found along
the way are ignored; only speed is measured.

    python benchmarks/bench_executor.py [--policy linux-fwctl] [--device spec] [--steps 2000] [--reps 7]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from typing import Any

from _common import hide_from_hypothesis

from fuzzer import host
from fuzzer.executor import Executor
from fuzzer.spec import Caller, Param
from fuzzer.world import Step

SUBSYSTEM = "cxl"


def draw_arg(rng: random.Random, p: Param, handles: dict[str, list[Any]]) -> Any:
    if p.kind == "int":
        # Mostly small values, as Hypothesis draws them, with the odd big one.
        hi = p.hi if rng.random() < 0.2 else min(p.hi, p.lo + 15)
        return rng.randint(p.lo, hi)
    if p.kind == "bool":
        return rng.random() < 0.5
    if p.kind == "choice":
        return rng.choice(p.choices)
    if p.kind == "handle":
        pool = handles.get(p.bundle) or []
        if not pool:
            return f"{p.bundle}0"  # dangling: the kernel refuses it, as it would
        return pool.pop(rng.randrange(len(pool))) if p.consumes else rng.choice(pool)
    raise ValueError(f"unknown param kind {p.kind!r}")


def make_steps(ex: Executor, n: int, seed: int = 0) -> list[Step]:
    """A deterministic, realistic sequence of ``n`` steps for ``ex``'s subsystem, policy and device."""
    rng = random.Random(seed)
    space = ex.subsystem.callers
    scopes = {c.name: c.scopes for c in ex.subsystem.channels}
    user = sorted(k for k in ex.user_index if k[0] in ex.policy.channels)
    kernel = sorted(ex.actions)
    handles: dict[str, list[Any]] = {}
    steps: list[Step] = []
    ex.reset()
    while len(steps) < n:
        if len(steps) % 20 == 0:  # sequences of 20 steps, as the state machine runs them
            ex.reset()
            handles = {}
        produces: str | tuple[str, ...] = ""
        if rng.random() < 0.3:
            action = ex.actions[rng.choice(kernel)]
            args = {p.name: draw_arg(rng, p, handles) for p in action.params if p.kind != "size"}
            step = Step("kernel", action.name, args)
            produces = action.produces
        else:
            channel, op = rng.choice(user)
            cmd = ex.user_index[(channel, op)]
            # sizes left out: the executor gives each its natural value, as a correct caller declares it
            args = {p.name: draw_arg(rng, p, handles) for p in cmd.params if p.kind != "size"}
            sc = scopes[channel]
            caller = Caller(
                caps=rng.choice(space.caps),
                scope=rng.choice(sc) if sc else None,
                lockdown=rng.choice(space.lockdown),
                switches=rng.choice(space.switches),
            )
            step = Step("user", op, args, channel, caller)
            produces = cmd.produces
        why = ex.validate(step)
        assert why is None, f"{step.describe()}: {why}"
        reply = ex.apply(step).reply
        if produces and reply is not None and reply.handle is not None:
            for bundle in (produces,) if isinstance(produces, str) else produces:
                handles.setdefault(bundle, []).append(reply.handle)
        steps.append(step)
    return steps


def run(policy: str = "linux-fwctl", device: str = "spec", n_steps: int = 2000, reps: int = 7,
        seq_len: int = 20, seed: int = 0, subsystem: str = SUBSYSTEM) -> dict[str, Any]:
    """Replay ``n_steps`` steps as ``n_steps/seq_len`` sequences (``ex.run`` each), ``reps`` times."""
    hide_from_hypothesis()
    reg = host.load()
    ex = reg.executor(subsystem, reg.policy(subsystem, policy), reg.device(subsystem, device))
    steps = make_steps(ex, n_steps, seed)
    seqs = [steps[i:i + seq_len] for i in range(0, len(steps), seq_len)]
    for s in seqs[:5]:  # warm-up
        ex.run(s)
    times: list[float] = []
    for _ in range(reps):
        t0 = time.perf_counter()
        for s in seqs:
            ex.run(s)
        times.append(time.perf_counter() - t0)
    # One long sequence too: no reset/probe, pure apply().
    long_times: list[float] = []
    for _ in range(reps):
        t0 = time.perf_counter()
        ex.run(steps)
        long_times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    med_long = statistics.median(long_times)
    user = sum(s.actor == "user" for s in steps)
    return {
        "subsystem": subsystem, "policy": policy, "device": device, "steps": len(steps), "user_steps": user,
        "reps": reps, "seq_len": seq_len,
        "median_s": med, "steps_per_s": len(steps) / med,
        "seqs_per_s": len(seqs) / med,
        "median_long_s": med_long, "long_steps_per_s": len(steps) / med_long,
    }


def report(r: dict[str, Any]) -> str:
    return (
        f"executor replay ({r['subsystem']} {r['policy']}/{r['device']}, {r['steps']} steps, {r['user_steps']} user, "
        f"median of {r['reps']}):\n"
        f"  {r['seq_len']}-step sequences (reset+probe each): {r['steps_per_s']:>10,.0f} steps/s  "
        f"({r['seqs_per_s']:,.0f} seq/s, {r['median_s'] * 1e3:.1f} ms)\n"
        f"  one {r['steps']}-step sequence (apply only):    {r['long_steps_per_s']:>10,.0f} steps/s  "
        f"({r['median_long_s'] * 1e3:.1f} ms)"
    )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--policy", default="linux-fwctl")
    ap.add_argument("--device", default="spec")
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    r = run(a.policy, a.device, a.steps, a.reps, seed=a.seed)
    print(report(r))
    return r


if __name__ == "__main__":
    main()
