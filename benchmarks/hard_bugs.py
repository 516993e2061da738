"""Search power on the planted holes: ptfuzz's campaign against a uniform random walk (issue 7).

For every hole of ``tests/planted.py`` (a Linux policy with one rule removed,
the signature it opens, its known shortest ops), plus the 2019 DEVX general
object type confusion, and for every seed, under one time budget per run:

* each search mode ``Campaign`` offers (``search="native"``/``"hypothesis"``
  once the new search lands; today's campaign, labelled ``hypothesis``,
  before), stopped as soon as it has seen the hole's signature;
* a random walk written here over the same ``Executor``: no openers, no
  feedback, uniform choices.  It is the naive baseline the issue measured.

It reports per hole and mode the find rate, median time to bug, median
sequences to bug, minimized length against the known minimum, and the ratio
of median times mode / walk; then one line per target of the issue, met or
not.  ``--rss MINUTES`` samples a long CLI campaign's memory and
``--workers-check SECONDS`` compares ``--workers 2`` with one worker; they run
instead of the table unless ``--table`` is given too.

    python benchmarks/hard_bugs.py [--seeds 1-10] [--budget 30] [--holes SUBSTR]
                                   [--modes native,hypothesis,walk] [--json OUT]
                                   [--rss MINUTES] [--workers-check SECONDS] [--search MODE] [--table]
    nox -s hard_bugs -- --seeds 1-3 --budget 10
"""

from __future__ import annotations

import argparse
import gc
import inspect
import json
import math
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import attrs
from _common import HERE, hide_from_hypothesis

from fuzzer import host
from fuzzer.campaign import Campaign, Finding
from fuzzer.executor import Executor
from fuzzer.minimize import one_minimal
from fuzzer.spec import Caller
from fuzzer.world import Step

sys.path.insert(0, str(HERE.parent / "tests"))
from planted import HOLES, Hole  # tests/ is not a package: found through sys.path

#: README's DEVX bug: linux-devx-2019 as shipped (no rule removed) on the lax firmware.
DEVX_CONFUSION = Hole("rdma", "linux-devx-2019", "lax", "",
                      "kernel-owned-integrity:rdma:OBJ_MODIFY$general:general",
                      ["ALLOC_UCONTEXT", "ipsec_offload", "OBJ_CREATE$general", "OBJ_MODIFY$general"])
WALK = "walk"
#: the issue's targets
SPEEDUP = 0.1           # median time to bug at most a tenth of the walk's
DEVX_MEDIAN_S = 0.1     # the DEVX confusion under 0.1 s median
RSS_LIMIT_MB = 200.0    # after 10 minutes
RSS_FLAT_MB_PER_MIN = 1.0  # "flat": the last half grows by less than this
WORKERS_RATIO = 1.8


def label(hole: Hole) -> str:
    if not hole.rule:
        return f"{hole.subsystem}:{hole.policy}-{hole.device}"
    # two holes can share policy, rule and device (a 2-step and a 4-step one): name the last op too
    return f"{hole.name}-{hole.ops[-1]}" if getattr(hole, "deep", False) else hole.name


def all_holes() -> list[Hole]:
    """The test suite's planted holes, then the DEVX confusion unless the table has it already."""
    holes = list(HOLES)
    key = (DEVX_CONFUSION.policy, DEVX_CONFUSION.device, DEVX_CONFUSION.signature)
    if not any((h.policy, h.device, h.signature) == key for h in holes):
        holes.append(DEVX_CONFUSION)
    return holes


def load_registry() -> host.Registry:
    """The builtin plugins plus the test suite's extra devices (``honest-immediate``).

    Those live in ``tests/conftest.py``, which needs pytest; without it the
    holes on those devices are skipped (and listed).  Importing conftest
    outside pytest loads its Hypothesis profile; the default is restored so
    the campaigns run as the CLI runs them.
    """
    import planted

    extra = getattr(planted, "TEST_PLUGIN", None)
    if extra is None:
        had = "conftest" in sys.modules
        try:
            import conftest

            extra = conftest.TEST_PLUGIN
        except ImportError:
            extra = None
        finally:
            if not had:
                from hypothesis import settings

                settings.load_profile("default")
    return host.load(extra=[extra] if extra is not None else [])


def has_device(reg: host.Registry, hole: Hole) -> bool:
    return any(d.name == hole.device for d in reg.subsystem(hole.subsystem).devices)


def holed_policy(reg: host.Registry, hole: Hole) -> Any:
    return reg.policy(hole.subsystem, hole.policy, without=(hole.rule,) if hole.rule else ())


@attrs.frozen
class Run:
    """One search on one hole with one seed.  A miss has ``time_s`` = the budget."""

    hole: str
    mode: str
    seed: int
    found: bool
    time_s: float
    sequences: int
    length: int | None
    ops: tuple[str, ...]
    steps: int
    elapsed: float


# --------------------------------------------------------------------------- the random walk


@attrs.frozen
class WalkRule:
    """A kernel action or (channel, op), with everything a draw needs precomputed."""

    actor: Literal["kernel", "user"]
    op: str
    channel: str
    #: (name, kind, data): int -> (lo, span), choice -> choices, bool -> None
    values: tuple[tuple[str, str, Any], ...]
    #: (name, bundle, consumes)
    handles: tuple[tuple[str, str, bool], ...]
    callers: tuple[Caller | None, ...]
    produces: tuple[str, ...]


def walk_rules(ex: Executor) -> list[WalkRule]:
    """Every kernel action and every (channel, op) on a channel the policy opens."""
    sub = ex.subsystem
    channels = {c.name: c for c in sub.channels}

    def split(params: Sequence[Any]) -> tuple[tuple[tuple[str, str, Any], ...], tuple[tuple[str, str, bool], ...]]:
        values = tuple((p.name, p.kind, (p.lo, p.hi - p.lo + 1) if p.kind == "int"
                        else p if p.kind == "size" else p.choices)
                       for p in params if p.kind != "handle")
        return values, tuple((p.name, p.bundle, p.consumes) for p in params if p.kind == "handle")

    def made(produces: str | tuple[str, ...]) -> tuple[str, ...]:
        return (produces,) if isinstance(produces, str) and produces else tuple(produces or ())

    rules = [WalkRule("kernel", a.name, "", *split(a.params), (None,), made(a.produces)) for a in sub.actions]
    for (ch, op), cmd in sorted(ex.user_index.items()):
        if ch not in ex.policy.channels:
            continue
        space = channels[ch].callers or sub.callers
        callers = tuple(Caller(caps=c, scope=s, lockdown=lk, switches=sw)
                        for c in space.caps for s in (channels[ch].scopes or (None,))
                        for lk in space.lockdown for sw in space.switches)
        rules.append(WalkRule("user", op, ch, *split(ex.params[(ch, op)]), callers, made(cmd.produces)))
    return rules


def random_walk(ex: Executor, signature: str, *, seed: int, budget: float, sequences: int | None = None) -> Run:
    """Uniform random sequences until one hits ``signature`` or the budget is spent.

    ``sequences``: run that many sequences at most instead of stopping at the
    time budget (a miss's count then does not depend on the machine's load:
    the ratio of median sequences is bounded as tightly on a busy machine).

    Per sequence: a fresh world, then ``subsystem.steps`` steps.  Each step
    draws a rule uniformly (redrawn while a handle it needs has none
    produced yet), every argument uniformly from its ``Param``, and the caller
    uniformly from the channel's caps x scopes x lockdown x switches.  Handles
    are earlier replies' ``handle`` in the bundles the rule produces;
    ``consumes`` takes one away.  No opener, no feedback: other violations
    are ignored and the walk goes on.
    """
    rng = random.Random(seed)
    rnd, rules, n_steps, apply = rng.random, walk_rules(ex), ex.subsystem.steps, ex.apply
    bundles = {b for r in rules for b in (*r.produces, *(h[1] for h in r.handles))}
    need = [{b: sum(h[1] == b for h in r.handles) for b in {h[1] for h in r.handles}} for r in rules]
    start_steps, seqs = ex.total_steps, 0
    t0 = time.perf_counter()
    deadline = t0 + budget if sequences is None else math.inf
    while time.perf_counter() < deadline and (sequences is None or seqs < sequences):
        seqs += 1
        ex.reset()
        pools: dict[str, list[Any]] = {b: [] for b in bundles}
        steps: list[Step] = []
        for _ in range(n_steps):
            for _redraw in range(1000):
                i = int(rnd() * len(rules))
                if all(len(pools[b]) >= k for b, k in need[i].items()):
                    break
            else:
                break  # nothing can run (no rule without handles): end this sequence
            r = rules[i]
            args: dict[str, Any] = {}
            for name, kind, data in r.values:
                if kind == "int":
                    args[name] = data[0] + int(rnd() * data[1])
                elif kind == "bool":
                    args[name] = rnd() < 0.5
                elif kind == "size":  # half the time left out (natural), else uniform up to twice that
                    if rnd() < 0.5:
                        n = data.natural(args) if callable(data.natural) else data.lo
                        args[name] = min(data.hi, data.lo + int(rnd() * (2 * n + 65)))
                else:
                    args[name] = data[int(rnd() * len(data))]
            for name, bundle, consumes in r.handles:
                pool = pools[bundle]
                j = int(rnd() * len(pool))
                args[name] = pool.pop(j) if consumes else pool[j]
            step = Step(r.actor, r.op, args, r.channel, r.callers[int(rnd() * len(r.callers))])
            res = apply(step)
            steps.append(step)
            if res.violations and any(v.signature == signature for v in res.violations):
                hit = time.perf_counter() - t0
                done = ex.total_steps - start_steps
                minimal = one_minimal(ex, steps, signature)  # not timed: the walk's own result, 1-minimized
                return Run("", WALK, seed, True, hit, seqs, len(minimal), tuple(s.op for s in minimal),
                           done, hit)
            handle = res.reply.handle if res.reply is not None else None
            if handle is not None:
                for b in r.produces:
                    pools[b].append(handle)
    elapsed = time.perf_counter() - t0
    return Run("", WALK, seed, False, budget if sequences is None else elapsed, seqs, None, (),
               ex.total_steps - start_steps, elapsed)


# --------------------------------------------------------------------------- ptfuzz's campaign


def campaign_modes() -> list[str]:
    """The search modes the installed ``Campaign`` offers, its default first."""
    param = inspect.signature(Campaign).parameters.get("search")
    if param is None:
        return ["hypothesis"]  # today's campaign: the Hypothesis machine is the only search
    default = param.default if isinstance(param.default, str) else "native"
    return [default, *(m for m in ("native", "hypothesis") if m != default)]


def search_kwargs(mode: str) -> dict[str, Any]:
    """``search=mode`` if ``Campaign`` takes it; today's campaign only runs ``hypothesis``."""
    if "search" in inspect.signature(Campaign).parameters:
        return {"search": mode}
    if mode == "hypothesis":
        return {}
    raise SystemExit(f"hard_bugs: --modes {mode}: this Campaign has no search= (it offers: hypothesis)")


def campaign_run(reg: host.Registry, hole: Hole, mode: str, *, seed: int, budget: float) -> Run:
    """ptfuzz's campaign on the hole, stopping once it has seen the hole's signature."""
    seen: list[Finding] = []

    def on_finding(finding: Finding, first: bool) -> None:
        if first and finding.signature == hole.signature:
            seen.append(finding)

    c = Campaign(reg, hole.subsystem, holed_policy(reg, hole), reg.device(hole.subsystem, hole.device),
                 seed=seed, time_budget=budget, corpus_dir=None, targets=frozenset({hole.signature}),
                 on_finding=on_finding, **search_kwargs(mode))
    r = c.run()
    final = r.findings.get(hole.signature)
    if not seen or final is None or seen[0].found_at > budget:
        return Run(label(hole), mode, seed, False, budget, r.sequences, None, (), r.steps, r.elapsed)
    return Run(label(hole), mode, seed, True, seen[0].found_at, seen[0].sequences, len(final.steps),
               tuple(s.op for s in final.steps), r.steps, r.elapsed)


# --------------------------------------------------------------------------- the table


def warm_up(reg: host.Registry, hole: Hole, modes: Sequence[str]) -> None:
    """One tiny throwaway run of each kind, so imports and caches don't land on the first hole."""
    for mode in modes:
        if mode == WALK:
            random_walk(reg.executor(hole.subsystem, holed_policy(reg, hole), reg.device(hole.subsystem, hole.device)),
                        hole.signature, seed=0, budget=0.2)
        else:
            Campaign(reg, hole.subsystem, holed_policy(reg, hole), reg.device(hole.subsystem, hole.device),
                     seed=0, max_examples=20, corpus_dir=None, **search_kwargs(mode)).run()


def run_holes(reg: host.Registry, holes: Sequence[Hole], seeds: Sequence[int], budget: float,
              modes: Sequence[str], progress: Callable[[str], None] | None = None,
              walk_sequences: int | None = None) -> list[Run]:
    """Every mode on every hole and seed; the walk stops at ``walk_sequences`` instead of the budget if given."""
    out: list[Run] = []
    for hole in holes:
        for mode in modes:
            for seed in seeds:
                gc.collect()  # not timed: garbage from the previous run is not this run's cost
                if mode == WALK:
                    ex = reg.executor(hole.subsystem, holed_policy(reg, hole), reg.device(hole.subsystem, hole.device))
                    out.append(attrs.evolve(random_walk(ex, hole.signature, seed=seed, budget=budget,
                                                        sequences=walk_sequences),
                                            hole=label(hole)))
                else:
                    out.append(campaign_run(reg, hole, mode, seed=seed, budget=budget))
        if progress is not None:
            progress(report_rows(out, hole, modes, budget, len(seeds)))
    return out


def ratio(x: float) -> str:
    """As the README writes ratios: ``0.08×``, ``1.15×``, ``183×``."""
    if x >= 100:
        return f"{x:.0f}×"
    return f"{x:.2f}×" if x >= 0.1 else f"{x:.2g}×"


@attrs.frozen
class Summary:
    found: int
    runs: int
    median_s: float
    median_seqs: float
    lengths: tuple[int, ...]

    @property
    def median_is_miss(self) -> bool:
        return self.found * 2 <= self.runs and self.found < self.runs


def summarize(runs: Sequence[Run]) -> Summary:
    return Summary(sum(r.found for r in runs), len(runs), statistics.median(r.time_s for r in runs),
                   statistics.median(r.sequences for r in runs),
                   tuple(sorted({r.length for r in runs if r.length is not None})))


def report_rows(runs: Sequence[Run], hole: Hole, modes: Sequence[str], budget: float, n_seeds: int) -> str:
    """One hole's block: a row per mode (the walk last)."""
    name = label(hole)
    mine = {m: summarize([r for r in runs if r.hole == name and r.mode == m]) for m in modes}
    walk = mine.get(WALK)
    lines = []
    for i, m in enumerate(modes):
        s = mine[m]
        head = f"{name} ({len(hole.ops)} ops)" if i == 0 else ""
        t = f"{s.median_s:.3f}" + ("*" if s.median_is_miss else "")
        rel = "-"
        if walk is not None and m != WALK and walk.median_s > 0:
            # a median that is a miss bounds the ratio from one side only
            bound = {(True, False): "≥", (False, True): "≤", (True, True): "?"}.get(
                (s.median_is_miss, walk.median_is_miss), "")
            rel = bound + ratio(s.median_s / walk.median_s)
        lens = ",".join(map(str, s.lengths)) or "-"
        ok = "" if not s.lengths else (" =" if s.lengths == (len(hole.ops),) else " ≠")
        lines.append(f"  {head:<70} {m:<10} {s.found:>2}/{s.runs:<2} {t:>9} {rel:>7} "
                     f"{s.median_seqs:>9.0f} {lens + ok:>8}")
    return "\n".join(lines)


def report(runs: Sequence[Run], holes: Sequence[Hole], modes: Sequence[str], budget: float,
           seeds: Sequence[int], skipped: Sequence[Hole] = ()) -> str:
    lines = [
        f"time to bug, seeds {seeds[0]}..{seeds[-1]} ({len(seeds)}), budget {budget:g} s per run:",
        f"  {'hole (known minimum)':<70} {'mode':<10} {'found':>5} {'median s':>9} {'/walk':>7} "
        f"{'med seqs':>9} {'min len':>8}",
    ]
    lines.extend(report_rows(runs, h, modes, budget, len(seeds)) for h in holes)
    for m in modes:
        mine = [r for r in runs if r.mode == m]
        steps, secs = sum(r.steps for r in mine), sum(r.elapsed for r in mine)
        if secs:
            lines.append(f"  {m}: {steps:,} steps in {secs:.1f} s ({steps / secs:,.0f} steps/s)")
    lines.append(f"  a run that misses counts as {budget:g} s (the budget) and the sequences it ran; "
                 f"* = the median is such a miss;")
    lines.append("  med seqs: sequences generated until the hit (a campaign's shrinking re-runs are not counted,"
                 " its time is)")
    lines.append("  /walk: median time over the walk's (≥/≤: a bound, one median is a miss); min len: distinct")
    lines.append("  minimized lengths (= the known minimum, ≠ not); the walk's hits are only 1-minimized (untimed)")
    if skipped:
        lines.append("  skipped (device not loaded; tests/conftest.py needs pytest): "
                     + ", ".join(label(h) for h in skipped))
    return "\n".join(lines)


def verdict(ok: bool | None) -> str:
    return "not measured" if ok is None else ("met" if ok else "NOT MET")


def targets(runs: Sequence[Run], holes: Sequence[Hole], modes: Sequence[str], n_seeds: int,
            rss: dict[str, Any] | None, workers: dict[str, Any] | None) -> str:
    """One line per target of issue 7, for every campaign mode that ran."""
    lines = ["targets (issue 7):"]
    for m in (m for m in modes if m != WALK):
        per = {label(h): summarize([r for r in runs if r.hole == label(h) and r.mode == m]) for h in holes}
        full = [h for h, s in per.items() if s.found == s.runs]
        lines.append(f"  [{verdict(len(full) == len(per))}] {m}: every hole found on {n_seeds}/{n_seeds} "
                     f"seeds: {len(full)}/{len(per)} holes"
                     + ("" if len(full) == len(per) else
                        " (missed: " + ", ".join(f"{h} {s.found}/{s.runs}" for h, s in per.items()
                                                 if s.found < s.runs) + ")"))
        if WALK in modes:
            walk = {label(h): summarize([r for r in runs if r.hole == label(h) and r.mode == WALK]) for h in holes}
            rel = {h: per[h].median_s / walk[h].median_s for h in per if walk[h].median_s > 0}
            fast = [h for h, x in rel.items() if x <= SPEEDUP]
            worst = max(rel, key=lambda h: rel[h]) if rel else None
            lines.append(f"  [{verdict(len(fast) == len(rel))}] {m}: median time ≤ {SPEEDUP:g}× the walk's on "
                         f"every hole: {len(fast)}/{len(rel)} holes"
                         + (f", worst {ratio(rel[worst])} on {worst}" if worst else ""))
        devx = per.get(label(DEVX_CONFUSION))
        if devx is not None:
            lines.append(f"  [{verdict(devx.median_s < DEVX_MEDIAN_S)}] {m}: DEVX confusion median under "
                         f"{DEVX_MEDIAN_S:g} s: {devx.median_s:.3f} s")
        by_len = {label(h): len(h.ops) for h in holes}
        exact = [h for h, s in per.items() if s.lengths == (by_len[h],)]
        lines.append(f"  [{verdict(len(exact) == len(per))}] {m}: minimized length = known minimum on every "
                     f"found run: {len(exact)}/{len(per)} holes"
                     + ("" if len(exact) == len(per) else
                        " (not: " + ", ".join(f"{h} {list(s.lengths)} vs {by_len[h]}"
                                              for h, s in per.items() if h not in exact) + ")"))
    lines.extend(depth_targets(runs, holes, modes, n_seeds))
    if rss is None:
        lines.append("  [not measured] RSS flat and under 200 MB after 10 minutes (run with --rss 10)")
    for name, r in (rss or {}).items():
        ok = r["last_mb"] < RSS_LIMIT_MB and r["slope_mb_per_min"] < RSS_FLAT_MB_PER_MIN
        note = "" if r["minutes"] >= 10 else f" (measured over {r['minutes']:g} min, the target says 10)"
        lines.append(f"  [{verdict(ok)}] RSS {name}: last {r['last_mb']:.0f} MB (limit {RSS_LIMIT_MB:.0f}), "
                     f"slope of the last half {r['slope_mb_per_min']:+.2f} MB/min (flat: < "
                     f"{RSS_FLAT_MB_PER_MIN:g}){note}")
    if workers is None:
        lines.append(f"  [not measured] --workers 2 ≥ {WORKERS_RATIO}× the sequences of one worker "
                     "(run with --workers-check 60)")
    else:
        lines.append(f"  [{verdict(workers['ratio'] >= WORKERS_RATIO)}] --workers 2 gave {ratio(workers['ratio'])} "
                     f"the sequences of one worker (target ≥ {WORKERS_RATIO}×; load average before: "
                     f"{workers['loadavg']:.2f})")
    return "\n".join(lines)


#: issue 20's targets: holes this deep are found on every seed within ``DEEP_BUDGET_S``; across holes of at least
#: ``DEPTH`` steps the geometric mean of median sequences over the walk's is at most ``DEPTH_RATIO``, and no hole
#: is worse than ``WORST_RATIO`` of the walk's
DEEP = 4
DEEP_BUDGET_S = 10.0
DEPTH = 3
DEPTH_RATIO = 0.1
WORST_RATIO = 1.5


def depth_targets(runs: Sequence[Run], holes: Sequence[Hole], modes: Sequence[str], n_seeds: int) -> list[str]:
    """Issue 20's lines: the deep holes on every seed, and sequences to bug against the walk's by depth.

    Sequences, not seconds: they do not depend on the machine's load.  A run
    that misses counts the sequences it ran, so a walk that misses makes the
    ratio an upper bound (the walk would need more)."""
    lines = ["targets (issue 20):"]
    for m in (m for m in modes if m != WALK):
        budget = max((r.time_s for r in runs if not r.found and r.mode == m), default=0.0)
        per = {label(h): summarize([r for r in runs if r.hole == label(h) and r.mode == m]) for h in holes}
        deep = [label(h) for h in holes if len(h.ops) >= DEEP]
        if deep:
            missed = [f"{h} {per[h].found}/{per[h].runs}" for h in deep if per[h].found < per[h].runs]
            slow = [h for h in deep if any(r.time_s > DEEP_BUDGET_S for r in runs
                                           if r.hole == h and r.mode == m and r.found)]
            ok = not missed and not slow and (budget == 0.0 or budget <= DEEP_BUDGET_S)
            lines.append(f"  [{verdict(ok)}] {m}: every hole of depth ≥ {DEEP} found on {n_seeds}/{n_seeds} seeds "
                         f"within {DEEP_BUDGET_S:g} s: {len(deep) - len(missed)}/{len(deep)} holes"
                         + (f" (missed: {', '.join(missed)})" if missed else "")
                         + (f" (later than {DEEP_BUDGET_S:g} s: {', '.join(slow)})" if slow else ""))
        if WALK not in modes:
            continue
        walk = {label(h): summarize([r for r in runs if r.hole == label(h) and r.mode == WALK]) for h in holes}
        rel = {label(h): per[label(h)].median_seqs / walk[label(h)].median_seqs
               for h in holes if len(h.ops) >= DEPTH and walk[label(h)].median_seqs > 0}
        if not rel:
            continue
        geo = math.exp(statistics.fmean(math.log(max(x, 1e-9)) for x in rel.values()))
        worst = max(rel, key=lambda h: rel[h])
        lines.append(f"  [{verdict(geo <= DEPTH_RATIO)}] {m}: median sequences to bug over the walk's, geometric mean "
                     f"over the {len(rel)} holes of depth ≥ {DEPTH}: {ratio(geo)} (target ≤ {DEPTH_RATIO:g}×)")
        lines.append(f"  [{verdict(rel[worst] <= WORST_RATIO)}] {m}: no hole of depth ≥ {DEPTH} worse than "
                     f"{WORST_RATIO:g}× the walk: worst {ratio(rel[worst])} on {worst}")
    return lines


# --------------------------------------------------------------------------- CLI subprocesses


def cli(*args: str) -> list[str]:
    """``ptfuzz ARGS`` as this interpreter runs it (``python -m fuzzer`` is the same program)."""
    return [sys.executable, "-m", "fuzzer", *args]


def cli_search_args(search: str | None) -> list[str]:
    """``--search MODE`` if asked for and ``ptfuzz run --help`` lists it; else nothing."""
    if not search:
        return []
    helptext = subprocess.run(cli("run", "--help"), capture_output=True, text=True, check=False).stdout
    if "--search" not in helptext:
        print(f"hard_bugs: ptfuzz run has no --search; running its only search (asked for {search})",
              file=sys.stderr)
        return []
    return ["--search", search]


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def slope(points: Sequence[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, MB) in MB per minute."""
    if len(points) < 2:
        return 0.0
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return 60 * sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / den if den else 0.0


#: the campaigns ``--rss`` samples: cxl linux-raw meets the most abstract states (about a thousand new ones a
#: second: the coverage counts reach their caps), rdma linux-devx the most handles and objects
RSS_RUNS = (("cxl", "linux-raw"), ("rdma", "linux-devx"))


def measure_rss(minutes: float, search: str | None, every: float = 10.0) -> dict[str, Any]:
    """A long CLI campaign per entry of ``RSS_RUNS``, all at once (one core each), VmRSS sampled every ``every`` s."""
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        procs = []
        for sub, policy in RSS_RUNS:
            corpus_dir = Path(tmp, f"{sub}-{policy}")
            corpus_dir.mkdir()
            args = cli("run", sub, "--policy", policy, "--device", "spec", "--time", f"{minutes * 60:g}",
                       "--seed", "1", "--corpus", str(corpus_dir), "--json", str(corpus_dir / "summary.json"),
                       *cli_search_args(search))
            log = (corpus_dir / "log").open("w")
            procs.append((sub, policy, args, log, subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)))
        t0 = time.monotonic()
        samples: dict[int, list[tuple[float, float]]] = {p.pid: [] for *_, p in procs}
        while any(p.poll() is None for *_, p in procs):
            time.sleep(every - (time.monotonic() - t0) % every)
            for *_, p in procs:
                mb = rss_mb(p.pid) if p.poll() is None else None
                if mb is not None:
                    samples[p.pid].append((time.monotonic() - t0, mb))
        for sub, policy, args, log, p in procs:
            log.close()
            got = samples[p.pid]
            if p.returncode not in (0, 1) or not got:
                tail = Path(log.name).read_text()[-400:]
                raise SystemExit(f"hard_bugs: --rss: {' '.join(args[2:])} exited {p.returncode}: {tail}")
            summary = json.loads(Path(log.name).with_name("summary.json").read_text())
            half = [s for s in got if s[0] >= got[-1][0] / 2]
            one_min = min(got, key=lambda s: abs(s[0] - 60))
            out[f"{sub} {policy}"] = {
                "minutes": minutes, "samples": [(round(t, 1), round(mb, 1)) for t, mb in got],
                "first_mb": got[0][1], "one_min_mb": one_min[1], "max_mb": max(mb for _, mb in got),
                "last_mb": got[-1][1], "slope_mb_per_min": slope(half),
                "sequences": summary["sequences"], "abstract_states": summary["abstract_states"],
                "coverage_capped": summary.get("coverage_capped", False),
            }
    return out


def rss_report(rss: dict[str, Any]) -> str:
    lines = ["RSS of `ptfuzz run` (VmRSS every 10 s):"]
    for name, r in rss.items():
        lines.append(f"  {name}: first {r['first_mb']:.0f} MB at {r['samples'][0][0]:.0f} s, "
                     f"1 min {r['one_min_mb']:.0f} MB, max {r['max_mb']:.0f} MB, last {r['last_mb']:.0f} MB; "
                     f"last half {r['slope_mb_per_min']:+.2f} MB/min ({len(r['samples'])} samples); "
                     f"{r['sequences']:,} sequences, {r['abstract_states']:,} abstract states"
                     + (" (capped)" if r["coverage_capped"] else ""))
    return "\n".join(lines)


def measure_workers(seconds: float, search: str | None) -> dict[str, Any]:
    """Sequences of ``--workers 1`` and ``--workers 2`` on cxl linux-fwctl in the same time."""
    load = os.getloadavg()[0]
    seqs: dict[int, int] = {}
    for n in (1, 2):
        with tempfile.TemporaryDirectory() as tmp:
            summary = Path(tmp, "out.json")
            args = cli("run", "cxl", "--policy", "linux-fwctl", "--time", f"{seconds:g}", "--seed", "1",
                       "--json", str(summary), "--corpus", str(Path(tmp, "corpus")), "--workers", str(n),
                       *cli_search_args(search))
            proc = subprocess.run(args, capture_output=True, text=True, check=False)
            if proc.returncode not in (0, 1) or not summary.exists():
                raise SystemExit(f"hard_bugs: --workers-check: {' '.join(args[2:])} exited "
                                 f"{proc.returncode}: {(proc.stderr or proc.stdout)[-400:]}")
            seqs[n] = json.loads(summary.read_text())["sequences"]
    return {"seconds": seconds, "sequences_1": seqs[1], "sequences_2": seqs[2],
            "ratio": seqs[2] / seqs[1] if seqs[1] else 0.0, "loadavg": load}


def workers_report(w: dict[str, Any]) -> str:
    return (f"--workers (cxl linux-fwctl, {w['seconds']:g} s): 1 worker {w['sequences_1']:,} sequences, "
            f"2 workers {w['sequences_2']:,} ({ratio(w['ratio'])}); load average before {w['loadavg']:.2f}")


# --------------------------------------------------------------------------- main


def parse_seeds(text: str) -> list[int]:
    """``1-10``, ``3`` or ``1,4,7``."""
    out: list[int] = []
    for part in text.split(","):
        lo, sep, hi = part.partition("-")
        out.extend(range(int(lo), int(hi) + 1) if sep else [int(lo)])
    if not out:
        raise argparse.ArgumentTypeError(f"--seeds {text!r}: no seeds")
    return out


def report_saved(paths: Sequence[Path]) -> dict[str, Any]:
    """The table and the targets of runs saved with ``--json`` (several files: their runs together)."""
    docs = []
    for path in paths:
        try:
            docs.append(json.loads(path.read_text()))
        except (OSError, ValueError) as exc:
            raise SystemExit(f"hard_bugs: --runs {path}: {exc}") from exc
    try:
        runs = [Run(**{**r, "ops": tuple(r["ops"])}) for d in docs for r in d["runs"]]
    except (KeyError, TypeError) as exc:
        raise SystemExit(f"hard_bugs: --runs: not a hard_bugs --json file ({exc})") from exc
    modes = list(dict.fromkeys(m for d in docs for m in d["modes"]))
    ran = {(r.hole, r.mode) for r in runs}
    holes = [h for h in all_holes() if all((label(h), m) in ran for m in modes)]  # a hole some mode skipped: left out
    if not holes:
        raise SystemExit("hard_bugs: --runs: no hole was run in every mode of these files")
    runs = [r for r in runs if r.hole in {label(h) for h in holes}]
    seeds = sorted({r.seed for r in runs})
    budget = max(d["budget"] for d in docs)
    print(report(runs, holes, modes, budget, seeds), flush=True)
    print(targets(runs, holes, modes, len(seeds), None, None))
    return {"budget": budget, "seeds": seeds, "modes": modes, "runs": [attrs.asdict(r) for r in runs]}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--seeds", type=parse_seeds, default=parse_seeds("1-10"), help="e.g. 1-10 or 1,3,5")
    ap.add_argument("--budget", type=float, default=30.0, help="seconds per run (default 30)")
    ap.add_argument("--holes", default="", help="only holes whose name contains this")
    ap.add_argument("--min-ops", type=int, default=1, help="only holes whose known minimum has this many steps or more")
    ap.add_argument("--modes", default="", help="comma-separated: native,hypothesis,walk (default: all available)")
    ap.add_argument("--walk-sequences", type=int, metavar="N",
                    help="the walk runs up to N sequences instead of --budget seconds (a miss then bounds the ratio "
                         "of sequences as tightly on a loaded machine)")
    ap.add_argument("--runs", nargs="+", metavar="JSON", type=Path,
                    help="report the runs saved by earlier --json runs (e.g. seeds split over two processes) "
                         "instead of running")
    ap.add_argument("--json", dest="json_out", help="write every run's raw result here")
    ap.add_argument("--rss", type=float, metavar="MINUTES", help="sample a long CLI campaign's RSS")
    ap.add_argument("--workers-check", type=float, metavar="SECONDS", help="--workers 2 against 1")
    ap.add_argument("--search", help="search mode for --rss/--workers-check (if `ptfuzz run` has --search)")
    ap.add_argument("--table", action="store_true", help="run the hole table too with --rss/--workers-check")
    a = ap.parse_args(argv)
    hide_from_hypothesis()

    modes = [m for m in a.modes.split(",") if m] or [*campaign_modes(), WALK]
    for m in modes:
        if m != WALK:
            search_kwargs(m)  # fail now, naming the mode
    doc: dict[str, Any] = {"budget": a.budget, "walk_sequences": a.walk_sequences, "seeds": a.seeds, "modes": modes,
                           "runs": [],
                           "rss": None, "workers": None}
    runs: list[Run] = []
    holes: list[Hole] = []
    if a.runs:
        return report_saved(a.runs)
    if a.table or (a.rss is None and a.workers_check is None):
        reg = load_registry()
        wanted = [h for h in all_holes() if a.holes in label(h) and len(h.ops) >= a.min_ops]
        holes = [h for h in wanted if has_device(reg, h)]
        skipped = [h for h in wanted if not has_device(reg, h)]
        if not holes:
            raise SystemExit(f"hard_bugs: no hole matches --holes {a.holes!r}")
        warm_up(reg, holes[0], modes)
        runs = run_holes(reg, holes, a.seeds, a.budget, modes,
                         progress=lambda text: print(text, file=sys.stderr, flush=True),
                         walk_sequences=a.walk_sequences)
        print(report(runs, holes, modes, a.budget, a.seeds, skipped), flush=True)
        doc["runs"] = [attrs.asdict(r) for r in runs]
    if a.workers_check is not None:
        doc["workers"] = measure_workers(a.workers_check, a.search)
        print(workers_report(doc["workers"]), flush=True)
    if a.rss is not None:
        doc["rss"] = measure_rss(a.rss, a.search)
        print(rss_report(doc["rss"]), flush=True)
    print(targets(runs, holes, modes if runs else [], len(a.seeds), doc["rss"], doc["workers"]))
    if a.json_out:
        Path(a.json_out).write_text(json.dumps(doc, indent=2) + "\n")
    return doc


if __name__ == "__main__":
    main()
