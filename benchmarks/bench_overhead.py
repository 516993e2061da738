"""Fuzzing throughput: ptfuzz's native search, its Hypothesis search, and a bare Hypothesis machine.

ptfuzz: a ``Campaign`` on linux-fwctl/spec (finds nothing, so there is no
shrinking), once with ``search="native"`` (ten times the sequences, so that
its run is long enough to time) and once with ``search="hypothesis"`` (one
round); steps/s = ``r.steps / r.elapsed``.

Bare: a ``RuleBasedStateMachine`` with one trivial rule per ptfuzz rule (same
count, same number of arguments per rule, each drawn with ``st.integers`` over
the parameter's range; user rules also draw a 4-integer caller tuple) whose body
only increments a counter.  No bundles, no executor.  Both run under the
settings the campaign uses: stateful_step_count=20, the same max_examples,
deadline None, database None, all health checks suppressed, a fixed seed.

The ratio bare/ptfuzz is how much slower a fuzzing step is than Hypothesis's
own cost of drawing and dispatching it.

    python benchmarks/bench_overhead.py [--examples 500] [--reps 3]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import hypothesis
from _common import hide_from_hypothesis
from hypothesis import HealthCheck, Phase, Verbosity, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, rule, run_state_machine_as_test

from fuzzer import host
from fuzzer.campaign import Campaign
from fuzzer.executor import Executor
from fuzzer.machine import caller_strategy, param_strategy
from fuzzer.spec import Param

SUBSYSTEM, POLICY, DEVICE = "cxl", "linux-fwctl", "spec"
STEP_COUNT = 20


def int_strategy(p: Param) -> st.SearchStrategy[int]:
    if p.kind == "int":
        return st.integers(p.lo, p.hi)
    if p.kind == "choice":
        return st.integers(0, max(len(p.choices) - 1, 0))
    return st.integers(0, 1)  # bool, handle


def rule_shapes(ex: Executor) -> list[tuple[str, tuple[Param, ...], bool]]:
    """(name, params, is_user) for every rule ``fuzzer.machine.build_machine`` makes."""
    shapes = [(f"kernel__{a.name}", a.params, False) for a in ex.subsystem.actions]
    for (channel, op), cmd in sorted(ex.user_index.items()):
        if channel in ex.policy.channels:
            shapes.append((f"{channel}__{op}".replace(".", "_").replace("-", "_"), cmd.params, True))
    return shapes


class Counter:
    steps = 0
    sequences = 0


def mirror_strategies(ex: Executor, name: str, params: tuple[Param, ...], user: bool) -> dict[str, Any]:
    """ptfuzz's own strategies for a rule (handles become a constant: no bundles)."""
    out: dict[str, Any] = {
        p.name: st.just("region0") if p.kind == "handle" else param_strategy(p, {}) for p in params
    }
    if user:
        channel = next(c for c in ex.subsystem.channels
                       if name.startswith(c.name.replace(".", "_").replace("-", "_") + "__"))
        out["caller"] = caller_strategy(ex.subsystem.callers, channel)
    return out


def integer_strategies(ex: Executor, name: str, params: tuple[Param, ...], user: bool) -> dict[str, Any]:
    out: dict[str, Any] = {p.name: int_strategy(p) for p in params}
    if user:
        out["caller"] = st.tuples(st.integers(0, 2), st.integers(0, 3), st.integers(0, 2), st.integers(0, 1))
    return out


Strategies = Callable[[Executor, str, tuple[Param, ...], bool], dict[str, Any]]


def build_bare(ex: Executor, strategies: Strategies = integer_strategies) -> type[RuleBasedStateMachine]:
    ns: dict[str, Any] = {}

    def _init(self: Any) -> None:
        RuleBasedStateMachine.__init__(self)
        Counter.sequences += 1
        self.n = 0

    ns["__init__"] = _init

    def make(name: str, params: tuple[Param, ...], user: bool) -> Callable[..., None]:
        def fn(self: Any, **kw: Any) -> None:
            self.n += 1
            Counter.steps += 1

        fn.__name__ = name
        return rule(**strategies(ex, name, params, user))(fn)

    for name, params, user in rule_shapes(ex):
        ns[name] = make(name, params, user)
    return type("Bare", (RuleBasedStateMachine,), ns)


def run_bare(machine: type[RuleBasedStateMachine], max_examples: int, seed: int) -> tuple[int, int, float]:
    conf = settings(
        max_examples=max_examples,
        stateful_step_count=STEP_COUNT,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
        verbosity=Verbosity.quiet,
        phases=[Phase.generate, Phase.shrink],
        derandomize=False,
        print_blob=False,
    )
    Counter.steps = Counter.sequences = 0
    seeded: Any = hypothesis.seed(seed)(machine)
    t0 = time.perf_counter()
    run_state_machine_as_test(seeded, settings=conf)
    return Counter.steps, Counter.sequences, time.perf_counter() - t0


def run_ptfuzz(reg: host.Registry, max_examples: int, seed: int, search: str = "hypothesis") -> tuple[int, int, float]:
    c = Campaign(reg, SUBSYSTEM, reg.policy(SUBSYSTEM, POLICY), reg.device(SUBSYSTEM, DEVICE),
                 seed=seed, max_examples=max_examples, step_count=STEP_COUNT, corpus_dir=None, search=search)
    r = c.run()
    assert not r.findings and r.rounds == 1, (list(r.findings), r.rounds)
    return r.steps, r.sequences, r.elapsed


def run(max_examples: int = 500, reps: int = 3, seed: int = 1) -> dict[str, Any]:
    hide_from_hypothesis()
    reg = host.load()
    ex = reg.executor(SUBSYSTEM, reg.policy(SUBSYSTEM, POLICY), reg.device(SUBSYSTEM, DEVICE))
    machines = {"bare": build_bare(ex, integer_strategies), "bare_mirror": build_bare(ex, mirror_strategies)}
    for m in machines.values():  # warm-up (imports, strategy caches)
        run_bare(m, 20, seed)
    run_ptfuzz(reg, 20, seed)
    run_ptfuzz(reg, 20, seed, "native")
    rates: dict[str, list[float]] = {"native": [], "ptfuzz": [], **{k: [] for k in machines}}
    last: dict[str, tuple[int, int, float]] = {}
    for i in range(reps):  # interleaved, so drift hits all alike
        last["native"] = run_ptfuzz(reg, 10 * max_examples, seed + i, "native")
        last["ptfuzz"] = run_ptfuzz(reg, max_examples, seed + i)
        for k, m in machines.items():
            last[k] = run_bare(m, max_examples, seed + i)
        for k, (steps, _, elapsed) in last.items():
            rates[k].append(steps / elapsed)
    med = {k: statistics.median(v) for k, v in rates.items()}
    return {
        "rules": len(rule_shapes(ex)), "max_examples": max_examples, "reps": reps,
        "rates": med, "last": last,
        "ratio": med["bare"] / med["ptfuzz"], "ratio_mirror": med["bare_mirror"] / med["ptfuzz"],
        "ratio_native": med["native"] / med["ptfuzz"],
    }


LABELS = {
    "native": f"ptfuzz native {POLICY}/{DEVICE}",
    "ptfuzz": f"ptfuzz hypothesis {POLICY}/{DEVICE}",
    "bare": "bare, st.integers args",
    "bare_mirror": "bare, ptfuzz's strategies",
}


def report(r: dict[str, Any]) -> str:
    lines = [f"fuzzing throughput ({r['rules']} rules, max_examples={r['max_examples']}, "
             f"step_count={STEP_COUNT}, median of {r['reps']}):"]
    for k, label in LABELS.items():
        rate = r["rates"][k]
        steps, seqs, elapsed = r["last"][k]
        lines.append(f"  {label:<38} {rate:>8,.0f} steps/s ({1e6 / rate:.0f} us/step; "
                     f"last rep: {steps} steps, {seqs} seqs, {elapsed:.2f} s)")
    lines.append(f"  bare/ptfuzz-hypothesis: {r['ratio']:.2f}x (st.integers)   {r['ratio_mirror']:.2f}x "
                 f"(same strategies);  native/hypothesis: {r['ratio_native']:.1f}x")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--examples", type=int, default=500)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args(argv)
    r = run(a.examples, a.reps, a.seed)
    print(report(r))
    return r


if __name__ == "__main__":
    main()
