"""A fuzz campaign: search until the budget is spent, keeping every distinct bug.

Two searches feed the same bookkeeping.  The default, ``native``
(``fuzzer.explore``), draws steps at executor speed and grows sequences that
reach new behaviour.  ``hypothesis`` runs the subsystem's Hypothesis state
machine in rounds: Hypothesis stops a run soon after it finds a bug, so each
round ignores the signatures already found and searches on with a seed
derived from the campaign's, and no round runs more than ``ROUND_EXAMPLES``
test cases, because Hypothesis's runner caches every test case it ran.

Whichever search finds it, each new signature is written to the corpus the
moment it is seen, then 1-minimized with the executor; a shorter sequence
found later replaces the file.  Ctrl-C or the end of the time budget
therefore loses nothing.

The time budget is a deadline for everything, minimizing included: the
search stops ``FINISH_SHARE`` of the budget early when something is left to
minimize, and every pass asks the clock (``expired``) as it runs.  A finding
still not minimized at the deadline (or at Ctrl-C, which ends the campaign
the same way) stays as it was found, and says so (``Finding.minimized``,
``"minimized": false`` in its corpus file).
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import attrs
from hypothesis.database import ExampleDatabase

from fuzzer import corpus, hypothesis_search
from fuzzer.database import Store, warm_start
from fuzzer.errors import OutputError, UsageError
from fuzzer.executor import Executor
from fuzzer.explore import Explorer, Learnt, shorter_path
from fuzzer.host import Registry
from fuzzer.machine import OutOfBudget, Session, ShrinkBudget
from fuzzer.minimize import CHECK_EVERY, as_plain, one_minimal, simplicity, simplify, violation_of
from fuzzer.spec import DeviceVariant, Policy, Violation
from fuzzer.version import __version__
from fuzzer.world import Step

#: Hypothesis re-runs per round spent shrinking before the round is cut short.
#: The executor's own passes (one_minimal, simplify) guarantee minimality, so
#: this only bounds Hypothesis's extra polish; a count, not a time, so that
#: results depend on the seed alone.
SHRINK_RUNS = 500
#: Test cases one Hypothesis run may generate before the round ends and a fresh
#: runner starts: its caches (every test case, the choice tree) grow without
#: bound otherwise, about 10 MB/s.
ROUND_EXAMPLES = 2000
#: The searches ``--search`` offers.
SEARCHES = ("native", "hypothesis")
#: Sequences when neither a count nor a time is given: a few seconds of either search.
DEFAULT_EXAMPLES = {"native": 2000, "hypothesis": 1000}
#: Share of the native search's time that minimizing findings may take while it runs.
REFINE_SHARE = 0.2
#: Seconds of searching before the native search minimizes anything: most bugs a
#: campaign will find show up in the first second, and are reported together.
REFINE_AFTER = 1.0
#: Longest sequence ``--steps`` may ask for.  A sequence is held in memory (about 500
#: bytes a step) and minimizing is quadratic in its length: at 100 000 steps one
#: candidate takes seconds; bugs need tens.
MAX_STEPS = 100_000
#: Share of the time budget kept for minimizing after the search, when anything is left to minimize.
FINISH_SHARE = 0.15


@attrs.define
class Finding:
    violation: Violation
    steps: list[Step]
    path: Path | None = None
    #: whether simplify() has run on these steps
    polished: bool = False
    found_at: float = 0.0
    sequences: int = 0
    #: search steps run when the violation was first seen (minimizing not counted)
    search_steps: int = 0
    #: False while the steps are as found (or cut short by the deadline): not yet 1-minimal
    minimized: bool = True
    #: the signature of the finding this one follows from (``follow_ons``), or ""
    follows: str = ""

    @property
    def signature(self) -> str:
        return self.violation.signature

    def describe(self) -> str:
        """The one-line announcement of a new finding (terminal, CI log, workers)."""
        return " ".join(self.describe_parts())

    def describe_parts(self) -> tuple[str, ...]:
        """The announcement in parts a narrow terminal prints on lines of their own: what, how, where."""
        raw = "" if self.minimized else ", not minimized"
        return (f"FOUND [{self.violation.severity}] {self.signature}",
                f"({len(self.steps)} steps{raw}, after {self.found_at:.1f}s, sequence {self.sequences})",
                *((f"-> {self.path}",) if self.path else ()))


@attrs.frozen
class Progress:
    """Where a running campaign is, for a progress line (picklable: workers send it to the parent)."""

    sequences: int
    steps: int
    behaviours: int
    findings: int
    elapsed: float

    @classmethod
    def total(cls, parts: list[Progress], elapsed: float) -> Progress:
        """Several workers' progress as one (behaviours: the most any one saw; they are not disjoint)."""
        return cls(sum(p.sequences for p in parts), sum(p.steps for p in parts),
                   max((p.behaviours for p in parts), default=0), max((p.findings for p in parts), default=0),
                   elapsed)


@attrs.define
class Result:
    findings: dict[str, Finding]
    sequences: int
    steps: int
    elapsed: float
    seed: int
    rounds: int
    runs: int = 0
    interrupted: bool = False
    accepted: tuple[str, ...] = ()
    #: distinct behaviours the native search saw (its coverage figure); 0 for Hypothesis
    behaviours: int = 0
    search: str = "native"
    #: coverage of the search space (native search; ``fuzzer.abstract``): distinct abstract states
    #: and (state, move, state) transitions seen, and (seconds, states) as the count grew
    abstract_states: int = 0
    transitions: int = 0
    growth: tuple[tuple[float, int], ...] = ()
    #: seconds into the run when the last new abstract state was seen
    last_new_state: float = 0.0
    #: the counts reached their caps (``fuzzer.explore.STATES_CAP``): they are lower bounds
    coverage_capped: bool = False

    @property
    def stopped_learning(self) -> bool:
        """No new abstract state in the last half of the run: more of the same search is unlikely to find more."""
        return self.abstract_states > 0 and not self.coverage_capped and self.last_new_state < self.elapsed / 2

    def failing(self) -> list[Finding]:
        """Findings that fail the run: not accepted (tainted, with --accept-tainted), not trusted by design."""
        return [f for s, f in sorted(self.findings.items())
                if s not in self.accepted and f.violation.severity != "trusted"]


def follow_ons(executor: Executor, findings: Mapping[str, Finding]) -> dict[str, str]:
    """Which findings follow from another: signature -> the signature of the finding it follows.

    Once a field is broken, later steps trip over it: a kernel action reads the
    corrupted value, another invariant looks at the same field.  Each is a
    signature of its own, but one bug.  A finding *follows* another when its
    own sequence, replayed, first shows the other's violation on the same field,
    at an earlier step or earlier at the same step (invariants in their checking
    order, so of two views of one step the first is the root).  Chains lead to
    their first finding.  A follow-on is still a finding (saved, reported, and
    failing the run as before); reports list it under its root.
    """
    direct: dict[str, str] = {}
    for sig, f in findings.items():
        if not f.violation.field:
            continue
        executor.reset()
        for step in f.steps:
            seen = [v.signature for v in executor.apply(step).violations if v.field == f.violation.field]
            first = next((s for s in seen if s in findings), None)
            if first is not None:
                if first != sig:
                    direct[sig] = first
                break
    roots: dict[str, str] = {}
    for sig in direct:
        root, hops = direct[sig], 0
        while root in direct and hops < len(direct):
            root, hops = direct[root], hops + 1
        if root != sig:
            roots[sig] = root
    return roots


def derive_seed(seed: int, round_no: int) -> int:
    digest = hashlib.sha256(f"{seed}:{round_no}".encode()).digest()
    return int.from_bytes(digest[:8], "little")


class Campaign(Session):
    def __init__(
        self,
        registry: Registry,
        subsystem: str,
        policy: Policy,
        device: DeviceVariant,
        *,
        seed: int,
        max_examples: int | None = None,
        time_budget: float | None = None,
        step_count: int | None = None,
        corpus_dir: str | os.PathLike[str] | None = None,
        accept_tainted: bool = False,
        database: ExampleDatabase | None = None,
        on_finding: Callable[[Finding, bool], None] | None = None,
        on_progress: Callable[[Campaign], None] | None = None,
        targets: frozenset[str] = frozenset(),
        search: str = "native",
        ignore_invariants: frozenset[str] = frozenset(),
        claim: Callable[[str, int], str | None] | None = None,
    ) -> None:
        if search not in SEARCHES:
            raise UsageError(f"unknown search {search!r}; choose one of {', '.join(SEARCHES)}")
        if step_count is not None and not 1 <= step_count <= MAX_STEPS:
            raise UsageError(f"steps per sequence: {step_count} is not between 1 and {MAX_STEPS}")
        if max_examples is None and time_budget is None:
            max_examples = DEFAULT_EXAMPLES[search]
        self.search = search
        self.registry = registry
        self.subsystem = subsystem
        self.policy = policy
        self.device = device
        self.seed = seed
        self.max_examples = max_examples
        self.time_budget = time_budget
        self.step_count = step_count or registry.subsystem(subsystem).steps
        self.corpus_dir = Path(corpus_dir) / subsystem if corpus_dir is not None else None
        self.accept_tainted = accept_tainted
        self.database = database
        #: the native search's memory in ``--db`` (findings, behaviour seeds; ``fuzzer.database``)
        self.store = None if database is None else Store(database, subsystem, policy.label, device.name)
        self.on_finding = on_finding
        self.on_progress = on_progress
        #: a shared store's claim on a signature before its file is written (``fuzzer.shared``):
        #: None if this campaign may write it, else the owner (another campaign) that holds it
        self.claim = claim
        #: signature -> the owner whose corpus holds its file: this campaign does not write it
        self.claimed: dict[str, str] = {}
        #: stop after the round in which all of these signatures were found
        self.targets = targets
        self.executor = registry.executor(subsystem, policy, device)
        self._scopes = {c.name: c.scopes for c in self.executor.subsystem.channels}
        self._checker = registry.executor(subsystem, policy, device)  # for minimizing mid-run
        #: ``--ignore``: invariants this campaign does not check (names checked by the caller)
        self.ignore_invariants = ignore_invariants
        for ex in (self.executor, self._checker):
            ex.invariants = tuple(i for i in ex.invariants if i.name not in ignore_invariants)
        self.findings: dict[str, Finding] = {}
        #: native search: violations seen, not yet minimized (their raw prefixes are saved)
        self._raw: dict[str, Finding] = {}
        #: corpus files this campaign wrote: never adopted as "already known" (they may be raw)
        self._written: set[Path] = set()
        self._refine_spent = 0.0
        self.explorer: Explorer | None = None
        #: what an earlier search on this policy and device learnt, to start the native search from (a cluster
        #: slice's predecessor's: ``fuzzer.slices``)
        self.learnt_from: Learnt | None = None
        #: worlds the native search rebuilt from ``learnt_from``
        self.adopted = 0
        #: the KeyboardInterrupt that stopped the search (Ctrl-C's, or one a plugin raised), with its traceback
        self.interrupt: KeyboardInterrupt | None = None
        self.ignore: frozenset[str] = frozenset()
        #: sequences generated (not counting Hypothesis re-running them to shrink)
        self.sequences = 0
        #: every machine run, shrinking included
        self.runs = 0
        self._shrinking = False
        self._shrink_runs = 0
        self.started = 0.0
        #: when everything ends, minimizing included (monotonic clock)
        self.deadline: float | None = None
        #: when the search ends if anything is left to minimize (``FINISH_SHARE``)
        self.search_deadline: float | None = None
        self._rounds = 0
        #: set from a signal handler (Ctrl-C, SIGTERM): ends the campaign as the deadline would
        self.stop_requested = False
        self._ticks = 0
        #: a corpus file could not be written: raised once the search has stopped
        self._broken: OutputError | None = None
        self._last_progress = 0.0  # set to the start time in run()

    # ------------------------------------------------------------------ Session protocol

    def expired(self) -> bool:
        """True once the deadline has passed or a stop was requested: every long loop asks."""
        return self.stop_requested or (self.deadline is not None and time.monotonic() >= self.deadline)

    def _search_over(self, now: float) -> bool:
        """The search ends at the deadline, or earlier if findings wait to be minimized."""
        if self.deadline is not None and now >= self.deadline:
            return True
        return (self.search_deadline is not None and now >= self.search_deadline
                and (bool(self._raw) or any(not f.polished for f in self.findings.values())))

    def tick(self) -> None:
        """Called by the Hypothesis machine after each step: a long sequence ends at the deadline too."""
        self._ticks += 1
        if self._ticks % CHECK_EVERY == 0:
            if self.stop_requested or self._broken is not None:
                raise KeyboardInterrupt
            if self._search_over(time.monotonic()):
                raise OutOfBudget

    def begin(self) -> None:
        if self.stop_requested or self._broken is not None:
            raise KeyboardInterrupt
        self.runs += 1
        if self._shrinking:
            self._shrink_runs += 1
            if self._shrink_runs > SHRINK_RUNS:
                raise ShrinkBudget
        else:
            # With report_multiple_bugs off, Hypothesis generates nothing new
            # after the first failure of a round: the rest is shrinking.
            self.sequences += 1
        now = time.monotonic()
        if self._search_over(now):
            raise OutOfBudget
        if self.on_progress is not None and now - self._last_progress >= 1.0:
            self._last_progress = now
            self.on_progress(self)


    def found(self, steps: list[Step], violations: list[Violation]) -> None:
        hit_at = time.monotonic() - self.started
        if self.search == "hypothesis":
            self._shrinking = True  # Hypothesis shrinks from here on; see begin()
            for v in violations:
                self._record(steps[: v.step], v.signature, hit_at, self.sequences, self.executor.total_steps)
            return
        # Native: note the raw prefix (and save it, so nothing is lost) and minimize later,
        # between sequences, so that bookkeeping never starves the search.
        for v in violations:
            sig = v.signature
            prefix = steps[: v.step]
            raw = self._raw.get(sig)
            if raw is not None and len(prefix) >= len(raw.steps):
                continue
            known = self.findings.get(sig)
            # the first hit stays the first hit: a shorter prefix found later (before the raw one
            # was minimized) replaces the steps, never the time and sequence it was first seen at
            first = known or raw
            finding = Finding(v, prefix, found_at=first.found_at if first else hit_at,
                              sequences=first.sequences if first else self.sequences,
                              search_steps=first.search_steps if first else self.executor.total_steps,
                              minimized=False)
            if known is None and self.corpus_dir is not None:  # a shorter raw prefix replaces the file:
                finding.path = self._save(finding)  # the deadline may come before it is minimized
            if self.store is not None:
                self.store.save_finding(sig, prefix)
            self._raw[sig] = finding

    def _record(self, prefix: list[Step], sig: str, found_at: float, sequences: int, search_steps: int,
                refine: bool = False) -> None:
        """1-minimize a failing prefix and keep it if it beats what is known; save and report it."""
        known = self.findings.get(sig)
        if known is not None and self._simplicity(prefix) >= self._simplicity(known.steps):
            return
        minimal = one_minimal(self._checker, prefix, sig, self.expired)
        cut_short = self.expired()  # then ``minimal`` fails, but may not be 1-minimal
        if refine and not cut_short:
            minimal = self._refine(minimal, sig)
        if known is not None and self._simplicity(minimal) >= self._simplicity(known.steps):
            return
        first = known is None
        finding = Finding(
            violation_of(self._checker, minimal, sig), minimal,  # the violation as the minimal sequence shows it
            found_at=known.found_at if known else found_at,
            sequences=known.sequences if known else sequences,
            search_steps=known.search_steps if known else search_steps,
            polished=refine and not cut_short,
            minimized=not cut_short,
        )
        if self.corpus_dir is not None:
            finding.path = self._save(finding)
        if self.store is not None:
            self.store.save_finding(sig, minimal)
        self.findings[sig] = finding
        if self.on_finding is not None:
            self.on_finding(finding, first)

    def _refine(self, steps: list[Step], sig: str) -> list[Step]:
        """Plainer callers and arguments, 1-minimal again, then a search for a shorter path.

        Deterministic (seeded by the campaign and the length), so the same
        campaign writes the same files.  ``steps`` are 1-minimal, and so is
        what this returns: a pass the deadline cut short is thrown away."""
        for _ in range(4):  # plainer arguments can make a step removable, and the reverse
            nxt = one_minimal(self._checker, simplify(self._checker, steps, sig, self.expired), sig, self.expired)
            if self.expired():
                return steps
            if nxt == steps:
                break
            steps = nxt
        shorter = shorter_path(self._checker, steps, sig, seed=derive_seed(self.seed, len(steps)),
                               expired=self.expired)
        if shorter is not None:
            candidate = one_minimal(self._checker, shorter, sig, self.expired)
            if not self.expired():
                steps = self._refine(candidate, sig)
        return steps

    def _drain(self, budget: float | None = None) -> None:
        """Minimize the raw findings of the native search, oldest signature first.

        With ``budget`` (seconds), stop once it is spent; the rest waits for
        the next call.  Every raw finding is already on disk, so an
        interruption here loses nothing but polish.
        """
        start = time.monotonic()
        while self._raw and not self.expired():
            sig = min(self._raw, key=lambda s: (self._raw[s].found_at, s))
            raw = self._raw.pop(sig)
            self._record(raw.steps, sig, raw.found_at, raw.sequences, raw.search_steps, refine=budget is None)
            if budget is not None and time.monotonic() - start >= budget:
                break
        self._refine_spent += time.monotonic() - start

    def polish(self) -> None:
        """Refine findings not yet refined (``_refine``), once each.

        Runs between Hypothesis rounds rather than in ``found()``, which
        Hypothesis calls for every failing candidate while it shrinks.
        """
        for sig, f in sorted(self.findings.items()):
            if f.polished or not f.minimized:
                continue
            if self.expired():
                return
            steps = self._refine(f.steps, sig)
            # cut short by the deadline, ``steps`` are 1-minimal but perhaps not the plainest
            f.polished = not self.expired()
            if steps != f.steps:  # refining only ever moves toward plainer or shorter
                f.steps = steps
                f.violation = violation_of(self._checker, steps, sig)
                if self.store is not None:
                    self.store.save_finding(sig, steps)
                if self.corpus_dir is not None and sig not in self.claimed:
                    f.path = self._write(self.entry(f))

    def _write(self, entry: corpus.Entry) -> Path:
        """Save ``entry`` in the corpus; a full disk or a lost directory is one line naming the file."""
        assert self.corpus_dir is not None
        try:
            saved = corpus.save(self.corpus_dir, entry, self._checker.payload_of)
        except OSError as exc:
            where = exc.filename or self.corpus_dir / corpus.file_name(entry)
            self._broken = OutputError(f"--corpus: cannot write {str(where)!r}: {exc.strerror or exc}")
            raise self._broken from None
        self._written.add(saved)
        return saved

    def _save(self, finding: Finding) -> Path | None:
        """Write the finding, unless the corpus already holds an equally simple reproducer
        or another campaign sharing the ``--db`` Redis has claimed its signature (then None).

        Re-finding a known bug must not churn a committed corpus: the file on
        disk stays as long as it still reproduces the signature and is no
        more complicated than what this run found.  The finding then adopts
        the file's steps, so what is reported is what is on disk.

        One direction: read what the corpus holds (``corpus.known``), judge it
        with the executor (``minimize.as_plain``), settle the finding, and only
        then hand the finished entry to ``corpus.save``; neither calls back.
        """
        assert self.corpus_dir is not None
        sig = finding.signature
        if sig not in self.claimed and self.claim is not None:
            owner = self.claim(sig, len(finding.steps))
            if owner is not None:
                self.claimed[sig] = owner
        if sig in self.claimed:
            return None
        entry = self.entry(finding)
        path = self.corpus_dir / corpus.file_name(entry)
        known = None if path in self._written else corpus.known(path, self._checker.complete)
        if (known is not None and known.signature == finding.signature
                and as_plain(self._checker, known.steps, finding.steps, finding.signature, self._scopes)):
            finding.steps = list(known.steps)
            finding.violation = violation_of(self._checker, finding.steps, finding.signature)
            finding.polished = known.minimized
            finding.minimized = known.minimized
            return path
        return self._write(entry)

    def _simplicity(self, steps: list[Step]) -> tuple[int, int]:
        return simplicity(steps, self._scopes, self._checker.params_of)

    def entry(self, finding: Finding) -> corpus.Entry:
        return corpus.Entry(
            subsystem=self.subsystem,
            device=self.device.name,
            policy=self.policy.name,
            without=self.registry.without_of(self.policy),
            knobs=dict(self.policy.tuned),
            steps=tuple(finding.steps),
            violation=corpus.violation_to_json(finding.violation),
            plugins=self.registry.plugin_versions(self.subsystem),
            ptfuzz=__version__,
            seed=self.seed,
            minimized=finding.minimized,
        )

    # ------------------------------------------------------------------ running

    def run(self) -> Result:
        self.started = self._last_progress = time.monotonic()
        self.deadline = self.started + self.time_budget if self.time_budget is not None else None
        self.search_deadline = (self.deadline - FINISH_SHARE * self.time_budget
                                if self.deadline is not None and self.time_budget is not None else None)
        self._rounds = 0
        interrupted = False
        try:
            if self.search == "native":
                self._explore()
            else:
                self._hypothesis_rounds()
        except KeyboardInterrupt as exc:
            interrupted = True
            self.interrupt = exc  # its traceback names the plugin whose code raised it, if no Ctrl-C did
        if self._broken is not None:
            raise self._broken
        try:
            self._drain()
            self.polish()
        except KeyboardInterrupt:  # a second Ctrl-C: every finding is on disk already
            interrupted = True
        return self.result(interrupted or self.stop_requested)

    def _done(self) -> bool:
        if self.max_examples is not None and self.sequences >= self.max_examples:
            return True
        return bool(self.targets) and self.targets <= self.findings.keys() | self._raw.keys()

    def _explore(self) -> None:
        """The native search: one explorer, one sequence at a time, until the budget is spent.

        Minimizing waits ``REFINE_AFTER`` seconds, then takes a share of the
        time (``REFINE_SHARE``) while the search runs; what is left is
        minimized when the search ends.
        """
        self._rounds = 1
        explorer = self.explorer = Explorer(self.executor, seed=derive_seed(self.seed, 0), steps=self.step_count)
        if self.learnt_from is not None:
            self.adopted = explorer.adopt(self.learnt_from)
        findings, raw = self.findings, self._raw

        def ignored(v: Violation) -> bool:
            # A known signature matters again only if this prefix is shorter than its finding.
            known = findings.get(v.signature) or raw.get(v.signature)
            return known is not None and v.step >= len(known.steps)

        def replay(steps: list[Step]) -> bool:  # --db: what the last runs found and reached, first
            if self._done():
                return False
            try:
                self.begin()
            except OutOfBudget:
                return False
            explorer.sequence(self.found, ignored, given=steps)
            return True

        if self.store is not None:
            warm_start(self.store, self._checker, replay)
            explorer.on_new_behaviour = self.store.save_seed
        while not self._done():
            try:
                self.begin()
            except OutOfBudget:
                return
            explorer.sequence(self.found, ignored, self._sequence_over)
            if raw:
                searching = time.monotonic() - self.started - self._refine_spent
                if searching >= REFINE_AFTER and self._refine_spent < REFINE_SHARE * searching:
                    self._drain(budget=0.05)

    def _sequence_over(self) -> bool:
        return self.stop_requested or self._search_over(time.monotonic())

    def _hypothesis_rounds(self) -> None:
        while not self._done():
            self._rounds += 1
            self.ignore = frozenset(self.findings)
            before = len(self.findings)
            ended = self._round(self._rounds)
            self.polish()
            if ended == "capped":
                continue  # a fresh runner, for memory's sake
            if ended != "failed" or len(self.findings) == before:
                return  # budget spent, or Hypothesis has nothing new to give

    def result(self, interrupted: bool = False) -> Result:
        """What the campaign has found so far (also after an interruption)."""
        # Raw findings (seen, saved, not yet minimized: an interrupted campaign) count too.
        found = {**{s: f for s, f in self._raw.items() if s not in self.findings}, **self.findings}
        accepted = tuple(s for s, f in found.items()
                         if self.accept_tainted and f.violation.severity == "tainted")
        for sig, root in follow_ons(self._checker, found).items():
            found[sig].follows = root
        elapsed = time.monotonic() - self.started
        ex = self.explorer
        if ex is None:
            coverage: tuple[int, int, tuple[tuple[float, int], ...], float, bool] = (0, 0, (), 0.0, False)
        else:
            growth = list(ex.growth)
            if growth and growth[-1][1] != len(ex.states):
                growth.append((round(ex.last_new, 3), len(ex.states)))
            coverage = (len(ex.states), len(ex.transitions), tuple(growth), ex.last_new, ex.capped)
        return Result(
            found, self.sequences, self.executor.total_steps,
            elapsed, self.seed, self._rounds, self.runs, interrupted, accepted,
            self.behaviours, self.search, *coverage,
        )

    def progress(self) -> Progress:
        return Progress(self.sequences, self.executor.total_steps, self.behaviours, len(self.signatures),
                        time.monotonic() - self.started)

    @property
    def signatures(self) -> set[str]:
        """Every distinct violation seen so far, minimized yet or not."""
        return self.findings.keys() | self._raw.keys()

    @property
    def behaviours(self) -> int:
        return len(self.explorer.behaviours) if self.explorer is not None else 0

    def _round(self, round_no: int) -> str:
        """One Hypothesis run (``fuzzer.hypothesis_search``): ``failed`` (another round may find
        more), ``capped`` (it ran ``ROUND_EXAMPLES`` test cases) or ``spent`` (the budget is)."""
        self._shrinking = False
        self._shrink_runs = 0
        remaining = ROUND_EXAMPLES if self.max_examples is None else max(self.max_examples - self.sequences, 1)
        capped = remaining > ROUND_EXAMPLES
        ended = hypothesis_search.run_round(self, min(remaining, ROUND_EXAMPLES), steps=self.step_count,
                                            database=self.database, seed=derive_seed(self.seed, round_no))
        if ended != "ran":
            return ended
        return "capped" if capped or self.max_examples is None else "spent"
