"""Run a campaign file's matrix within one total budget.

Runs go one after another (each may use ``workers`` processes: a local Dask
cluster, ``fuzzer.cluster``, started once for the campaign).  Before each run
its share of the budget is recomputed from what is left (``Plan.shares``), so a
run that overran while minimizing is paid for by the runs after it.  Every
run in this process records what the report needs: its result, what its
executor reached (``fuzzer.reach``), a timeline, and for the first part of
each run (``line_sample``) which plugin lines ran.

With ``cluster`` (``campaign --cluster ADDR``) every entry goes to that Dask
cluster at once, as slices (``fuzzer.slices``): each entry gets its share of
the cluster's time (its sequential share times the worker threads), and as
many slices at once as its ``workers`` or its share asks for; the campaign's
budget is one deadline for all.  Those runs bring back results and findings,
not reach, timelines or line samples (the report shows what it has).

SIGINT and SIGTERM (a CI cancel, ``timeout``) stop the current run after its
sequence, skip the rest and still write every output; a second signal stops
at once.  Whoever runs the plan decides the exit code.
"""

from __future__ import annotations

import contextlib
import math
import signal
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any, Protocol

import attrs

from fuzzer.baseline import Baseline, Judgement, Scope, judge
from fuzzer.campaign import Campaign, Finding, Result
from fuzzer.campaignfile import Plan, Run
from fuzzer.cluster import Engine
from fuzzer.host import Registry
from fuzzer.hypothesis_search import open_database
from fuzzer.reach import Lines, LineSample, Reach, plugin_root
from fuzzer.shared import Shared, db_warnings_once, owner_id, scope_key
from fuzzer.slices import SLICE_SECONDS, Entry


@attrs.define
class Point:
    """One sample of the campaign's timeline (seconds since the campaign started)."""

    at: float
    run: int
    steps: int
    behaviours: int
    findings: int


@attrs.define
class Outcome:
    """One run of the matrix, as it went."""

    run: Run
    index: int
    budget: float
    started: float = 0.0
    result: Result | None = None
    reach: Reach | None = None
    #: (seconds since the campaign started, signature, "new" or "known") for each first sighting
    found: list[tuple[float, str, str]] = attrs.Factory(list)
    #: steps/s of the run while coverage.py traced it, and after
    traced_rate: float | None = None
    untraced_rate: float | None = None

    @property
    def scope(self) -> Scope:
        return Scope(self.run.subsystem, self.run.policy, self.run.without, self.run.device, self.run.knobs)


@attrs.define
class CampaignOutcome:
    plan: Plan
    outcomes: list[Outcome]
    judgement: Judgement
    baseline: Baseline
    elapsed: float
    interrupted: bool
    timeline: list[Point]
    lines: dict[str, Lines]

    def new_failing(self) -> list[tuple[Outcome, Finding]]:
        """Findings that fail the campaign: new, and neither accepted (tainted) nor trusted by design."""
        return [(o, f) for o in self.outcomes if o.result is not None for f in o.result.failing()
                if self.judgement.of(o.index, f.signature) == "new"]

    def slowdown(self) -> float | None:
        """Untraced over traced steps/s, over the runs that measured both (how much line coverage costs)."""
        pairs = [(o.traced_rate, o.untraced_rate) for o in self.outcomes if o.traced_rate and o.untraced_rate]
        if not pairs:
            return None
        return sum(u for _, u in pairs) / sum(t for t, _ in pairs)


class Display(Protocol):
    """Where a running campaign says what it does (a rich live display, or plain lines)."""

    def start(self, outcome: Outcome) -> None: ...
    def progress(self, outcome: Outcome, campaign: Campaign, elapsed: float) -> None: ...
    def finding(self, outcome: Outcome, finding: Finding, status: str) -> None: ...
    def done(self, outcome: Outcome) -> None: ...


class _Stop:
    """The campaign's stop switch, flipped by SIGINT or SIGTERM."""

    def __init__(self) -> None:
        self.requested = False
        self.campaign: Campaign | None = None
        self.engine: Engine | None = None

    def __call__(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        if self.campaign is not None:
            self.campaign.stop_requested = True
        if self.engine is not None:
            self.engine.request_stop()
        name = signal.Signals(signum).name
        sys.stderr.write(f"ptfuzz: {name}: stopping after this sequence, then writing the results "
                         f"({name} again to stop now)\n")


@contextlib.contextmanager
def _signals(stop: _Stop) -> Iterator[None]:
    previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def run_plan(registry: Registry, plan: Plan, baseline: Baseline, display: Display, *,
             plugin_files: tuple[str, ...] = (), clock: Callable[[], float] = time.monotonic,
             ignore: frozenset[str] = frozenset(), cluster: str | None = None,
             warn: Callable[[str], None] | None = None) -> CampaignOutcome:
    """Run every cell of ``plan`` within its budget and judge the findings against ``baseline``.

    ``ignore``: invariants no run checks (``ptfuzz campaign --ignore``); ``cluster``: a Dask
    scheduler's address, to run every cell there at once."""
    stop = _Stop()
    started = clock()
    outcomes: list[Outcome] = []
    timeline: list[Point] = []
    samplers: dict[str, LineSample] = {}
    interrupted = False
    warn = db_warnings_once(warn)
    shared = Shared(plan.db, owner_id(plan.corpus), warn=warn)
    engine: Engine | None = None
    try:
        with _signals(stop):
            if cluster is not None:
                engine = stop.engine = Engine(cluster)
                interrupted = _on_cluster(registry, plan, baseline, display, engine, outcomes, shared,
                                          plugin_files, ignore, started, clock, warn)
            for index, run in enumerate(plan.runs if cluster is None else ()):
                if stop.requested:
                    interrupted = True
                    break
                outcome = Outcome(run, index, plan.shares(clock() - started, index), started=clock() - started)
                outcomes.append(outcome)
                display.start(outcome)
                try:
                    if run.workers > 1:
                        if engine is None:
                            engine = stop.engine = Engine(workers=max(r.workers for r in plan.runs))
                            engine.start()
                        outcome.result = _parallel(registry, run, plan, outcome, baseline, display, engine,
                                                   shared, plugin_files, ignore, warn)
                    else:
                        _single(registry, plan, baseline, outcome, display, stop, samplers, timeline, started,
                                clock, ignore, shared)
                except KeyboardInterrupt:
                    interrupted = True
                if outcome.result is not None:
                    interrupted = interrupted or outcome.result.interrupted
                    timeline.append(Point(clock() - started, index, outcome.result.steps,
                                          outcome.result.behaviours, len(outcome.result.findings)))
                display.done(outcome)
                if interrupted:
                    break
    finally:
        if engine is not None:
            engine.close()
    judgement = judge(registry, baseline, [(o.scope, o.result or _empty(o)) for o in outcomes])
    return CampaignOutcome(plan, outcomes, judgement, baseline, clock() - started, interrupted, timeline,
                           {root: s.lines() for root, s in samplers.items()})


def _empty(outcome: Outcome) -> Result:
    return Result({}, 0, 0, 0.0, outcome.run.seed, 0, interrupted=True)


def _single(registry: Registry, plan: Plan, baseline: Baseline, outcome: Outcome, display: Display, stop: _Stop,
            samplers: dict[str, LineSample], timeline: list[Point], started: float,
            clock: Callable[[], float], ignore: frozenset[str] = frozenset(), shared: Shared | None = None) -> None:
    """One run in this process, with counters, a timeline and a traced first part; with a shared Redis
    ``--db``, a signature another campaign has claimed is reported, not written (``Campaign.claim``)."""
    run = outcome.run
    policy = registry.policy(run.subsystem, run.policy, run.without, dict(run.knobs))
    device = registry.device(run.subsystem, run.device)
    seen: set[str] = set()

    def on_finding(f: Finding, first: bool) -> None:
        if first and f.signature not in seen:
            seen.add(f.signature)
            status = "known" if baseline.match(f.signature, run.subsystem, run.policy_label, run.device) else "new"
            outcome.found.append((round(clock() - started, 3), f.signature, status))
            display.finding(outcome, f, status)

    sampler: LineSample | None = None
    sample_until = outcome.budget * plan.line_sample
    traced: dict[str, float] = {}

    def end_sample(c: Campaign) -> None:
        if sampler is not None and sampler.running and clock() - c.started >= sample_until:
            sampler.stop()
            traced["steps"], traced["seconds"] = c.executor.total_steps, clock() - c.started

    def on_progress(c: Campaign) -> None:
        now = clock()
        end_sample(c)
        if "seconds" in traced:
            traced["last_steps"], traced["last_seconds"] = c.executor.total_steps, now - c.started
        timeline.append(Point(now - started, outcome.index, c.executor.total_steps, c.behaviours,
                              len(c.signatures)))
        display.progress(outcome, c, now - c.started)

    campaign = _Sampled(
        end_sample, registry, run.subsystem, policy, device, seed=run.seed, time_budget=outcome.budget, step_count=run.steps,
        corpus_dir=plan.corpus, accept_tainted=run.accept_tainted, database=open_database(plan.db),
        search=run.search, on_finding=on_finding, on_progress=on_progress, ignore_invariants=ignore,
        claim=None if shared is None or not shared.active else (
            lambda sig, steps: shared.claim(scope_key(run.subsystem, policy.label, run.device), sig, steps)),
    )
    if campaign.store is not None and shared is not None:
        campaign.store.warn = shared.warn
    stop.campaign = campaign
    root = plugin_root(campaign.executor) if plan.line_sample > 0 else None
    if root is not None:
        sampler = samplers.get(root) or samplers.setdefault(root, LineSample(root))
        sampler.start()
    try:
        outcome.result = campaign.run()
    finally:
        stop.campaign = None
        if sampler is not None and sampler.running:
            sampler.stop()
            traced.setdefault("steps", campaign.executor.total_steps)
            traced.setdefault("seconds", clock() - campaign.started)
    outcome.reach = Reach.of(campaign.executor)
    for f in outcome.result.findings.values():  # raw findings of an interrupted run were never announced
        on_finding(f, True)
    if traced.get("seconds") and traced.get("last_seconds"):  # both measured while searching, not minimizing
        outcome.traced_rate = traced["steps"] / traced["seconds"]
        outcome.untraced_rate = (traced["last_steps"] - traced["steps"]) / (traced["last_seconds"] - traced["seconds"])


class _Sampled(Campaign):
    """A campaign that asks, before each sequence, whether the traced sample is over (one clock read)."""

    def __init__(self, end_sample: Callable[[Campaign], None], *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._end_sample = end_sample

    def begin(self) -> None:
        super().begin()
        self._end_sample(self)


def _entry(registry: Registry, run: Run, index: int, plugin_files: tuple[str, ...], ignore: frozenset[str],
           seconds: float, streams: int) -> Entry:
    return Entry(index=index, label=run.label, plugin_files=plugin_files, subsystem=run.subsystem,
                 policy=run.policy, without=run.without, knobs=run.knobs, device=run.device, seed=run.seed,
                 step_count=run.steps or registry.subsystem(run.subsystem).steps, accept_tainted=run.accept_tainted,
                 search=run.search, ignore=ignore, seconds=seconds, streams=streams)


def _announcer(baseline: Baseline, display: Display, outcomes: dict[int, Outcome], started: float,
               clock: Callable[[], float]) -> Callable[[Entry, Finding, str, str | None], None]:
    """What the engine calls with each entry's first sighting of a signature: new or known, then shown."""
    def found(entry: Entry, f: Finding, worker: str, owner: str | None) -> None:
        o = outcomes[entry.index]
        run = o.run
        status = "known" if baseline.match(f.signature, run.subsystem, run.policy_label, run.device) else "new"
        o.found.append((round(clock() - started, 3), f.signature, status))
        display.finding(o, f, status)

    return found


def _parallel(registry: Registry, run: Run, plan: Plan, outcome: Outcome, baseline: Baseline, display: Display,
              engine: Engine, shared: Shared, plugin_files: tuple[str, ...], ignore: frozenset[str],
              warn: Callable[[str], None] | None) -> Result | None:
    """A run with ``workers`` slices at once on the campaign's local cluster: no counters or timeline come back."""
    entry = _entry(registry, run, outcome.index, plugin_files, ignore, outcome.budget * run.workers, run.workers)
    got, _ = engine.run(registry, [entry], deadline=time.time() + outcome.budget, db=plan.db, corpus_dir=plan.corpus,
                        shared=shared, on_found=_announcer(baseline, display, {outcome.index: outcome},
                                                           time.monotonic(), time.monotonic), warn=warn)
    return got.get(outcome.index)


def _on_cluster(registry: Registry, plan: Plan, baseline: Baseline, display: Display, engine: Engine,
                outcomes: list[Outcome], shared: Shared, plugin_files: tuple[str, ...], ignore: frozenset[str],
                started: float, clock: Callable[[], float], warn: Callable[[str], None] | None) -> bool:
    """Every run of the plan on the cluster at once; whether the campaign was interrupted."""
    engine.start()
    width = engine.capacity
    deadline = time.time() + max(plan.budget - (clock() - started), 0.0)
    entries: list[Entry] = []
    spent = 0.0
    for index, run in enumerate(plan.runs):
        share = plan.shares(spent, index)  # the sequential schedule's share of the budget ...
        spent += share
        seconds = share * width  # ... of every worker thread's time
        streams = min(width, max(run.workers, math.ceil(seconds / SLICE_SECONDS)))
        entries.append(_entry(registry, run, index, plugin_files, ignore, seconds, streams))
        outcomes.append(Outcome(run, index, share))
    by_index = {o.index: o for o in outcomes}

    def on_start(entry: Entry) -> None:
        o = by_index[entry.index]
        o.started = clock() - started
        display.start(o)

    def on_done(entry: Entry, result: Result) -> None:
        o = by_index[entry.index]
        o.result = result
        display.done(o)

    got, interrupted = engine.run(registry, entries, deadline=deadline, db=plan.db, corpus_dir=plan.corpus,
                                  shared=shared, on_found=_announcer(baseline, display, by_index, started, clock),
                                  on_start=on_start, on_done=on_done, warn=warn)
    for index, result in got.items():
        by_index[index].result = result
    return interrupted
