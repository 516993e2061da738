"""One task of a cluster campaign: one entry, searched for one bounded slice of time or sequences.

A Dask worker runs ``run_slice``; ``fuzzer.cluster`` (the client) submits the
slices and alone writes the corpus.  Why slices, not one task per entry:

* **a dead worker loses one slice at most.**  A slice is a function of its
  ``Slice`` record (the seed is derived from the entry's seed and the slice's
  number), so the scheduler's retry on another worker searches the same
  sequences again; what it finds was either reported already (the client
  keeps one of each signature) or is found again.
* **the budget holds for the whole cluster.**  A slice runs at most
  ``SLICE_SECONDS``, and never past the client's deadline (wall clock:
  workers on other machines share no monotonic clock with the client; their
  clocks are assumed NTP-synchronized, a stated simplification).
* **what is known travels with the work.**  Each slice starts with the
  signatures known when it was submitted (this client's, and every campaign's
  in a shared Redis, ``fuzzer.shared``), asks Redis again at the first sighting
  of a signature, and does not minimize a bug known with as short a sequence.

* **what the search learnt travels too.**  A slice hands back what its native
  search learnt (``fuzzer.explore.Learnt``: its kept worlds' paths, the
  argument values, callers and compared values that worked) and the entry's
  next slice starts from it, replaying the paths to rebuild the worlds; so a
  chain of ten-second slices climbs as one long search does.  Slices of one
  entry that run at once (``streams``) each start from the last that finished.

Findings stream to the client as they are minimized (``Worker.log_event`` on
the run's topic), so a worker killed mid-slice has already handed over what it
reported.  Nothing is printed here: warnings (a Redis that went away) travel
back in the result and the client says each once.
"""

from __future__ import annotations

import pickle
import threading
import time
import warnings
from typing import Any

import attrs
from hypothesis.errors import HypothesisDeprecationWarning

from fuzzer.campaign import Campaign, Finding, Result, derive_seed
from fuzzer.database import Tolerant, open_database
from fuzzer.errors import PtfuzzError
from fuzzer.explore import Learnt
from fuzzer.host import Registry
from fuzzer.shared import Shared
from fuzzer.spec import Violation
from fuzzer.world import Step

#: Seconds one slice searches at most: a dead worker costs this much search, and each slice's
#: search starts afresh (shorter slices lose more of what the search learned).
SLICE_SECONDS = 10.0
#: Sequences one slice runs at most when the run is bounded by a count (``--max-examples``).
SLICE_EXAMPLES = 1000
#: A slice with less time than this left before the deadline is not started.
MIN_SLICE = 0.2
#: Seconds between a running slice's looks at the run's stop event.
STOP_POLL = 0.2


@attrs.frozen(kw_only=True)
class Entry:
    """One cell of a campaign as every slice of it needs it (picklable, sent to the workers)."""

    index: int
    label: str
    plugin_files: tuple[str, ...]
    subsystem: str
    policy: str
    without: tuple[str, ...]
    knobs: tuple[tuple[str, Any], ...]
    device: str
    seed: int
    step_count: int | None
    accept_tainted: bool
    search: str
    ignore: frozenset[str] = frozenset()
    #: slice-seconds this entry may use in all (its share of the cluster's time), or None
    seconds: float | None = None
    #: sequences in all, when the run is bounded by a count
    max_examples: int | None = None
    #: slices of this entry that may run at once
    streams: int = 1


@attrs.frozen(kw_only=True)
class Slice:
    entry: Entry
    number: int
    seconds: float | None
    max_examples: int | None
    #: the client's deadline, ``time.time()``, or None
    deadline: float | None
    #: (signature, length of its known sequence)
    known: tuple[tuple[str, int], ...]
    db: str | None
    run_id: str
    #: ``fuzzer.shared.scope_key`` of the entry
    scope: str
    #: what the entry's last finished slice learnt: this one's native search starts from it
    learnt: Learnt | None = None

    @property
    def seed(self) -> int:
        return derive_seed(self.entry.seed, 1000 + self.number)


@attrs.frozen(kw_only=True)
class SliceResult:
    entry: int
    number: int
    worker: str
    result: Result | None
    #: one line saying why the slice failed (a plugin raised, exited, ...), or None
    error: str | None = None
    #: the failure is a bug in ptfuzz (exit 3), not a plugin's (exit 2)
    internal: bool = False
    warnings: tuple[str, ...] = ()
    #: when the slice's campaign started (``time.time()`` on the worker): its findings' ``found_at`` count from it
    started: float = 0.0
    #: bugs this slice met that were known, with as short a sequence, before it (not minimized here)
    sightings: tuple[Finding, ...] = ()
    #: what its native search learnt, for the entry's next slice (None: the Hypothesis search)
    learnt: Learnt | None = None
    #: kept worlds it started from, rebuilt from its predecessor's ``learnt``
    adopted: int = 0


def topic(run_id: str) -> str:
    """The event topic a run's findings stream on."""
    return f"ptfuzz-findings-{run_id}"


def stop_event(run_id: str) -> str:
    """The name of the distributed Event that asks a run's slices to stop."""
    return f"ptfuzz-stop-{run_id}"


class SliceCampaign(Campaign):
    """A campaign that does not minimize what is known, with as short a sequence, elsewhere."""

    def __init__(self, known: dict[str, int], shared: Shared, scope: str, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.known = known
        self.shared = shared
        self.scope = scope
        self._asked: set[str] = set()
        #: violations known elsewhere with as short a sequence: seen, not minimized (the raw prefix)
        self.sightings: dict[str, Finding] = {}

    def _known_as_short(self, v: Violation) -> bool:
        sig = v.signature
        if sig not in self.known and sig not in self._asked and sig not in self.signatures:
            self._asked.add(sig)  # one look at Redis per signature and slice
            length = self.shared.length(self.scope, sig)
            if length is not None:
                self.known[sig] = length
        length = self.known.get(sig)
        return length is not None and v.step >= length

    def ignored(self, violation: Violation) -> bool:  # the Hypothesis search asks this
        return super().ignored(violation) or self._known_as_short(violation)

    def found(self, steps: list[Step], violations: list[Violation]) -> None:
        fresh = []
        for v in violations:
            if not self._known_as_short(v):
                fresh.append(v)
            elif v.signature not in self.sightings and v.signature not in self.signatures:
                # the client still reports it (as saved by its owner): this run met the bug too
                self.sightings[v.signature] = Finding(
                    v, steps[: v.step], found_at=time.monotonic() - self.started, sequences=self.sequences,
                    search_steps=self.executor.total_steps, minimized=False)
        if fresh:
            super().found(steps, fresh)


_registries: dict[tuple[str, ...], Registry] = {}


def _registry(plugin_files: tuple[str, ...]) -> Registry:
    """The plugins, loaded once per worker process (a slice is short; loading is not)."""
    reg = _registries.get(plugin_files)
    if reg is None:
        from fuzzer import host

        reg = _registries[plugin_files] = host.load(plugin_files)
    return reg


def _dask_worker() -> Any:
    """The Dask worker running this task, or None (called in-process)."""
    try:
        from distributed import get_worker

        return get_worker()
    except (ImportError, ValueError):
        return None


class _StopWatch:
    """Sets the campaign's stop flag when the client sets the run's stop event (polled from a thread)."""

    def __init__(self, run_id: str, campaign: Campaign) -> None:
        from distributed import get_client

        self.fired = False
        self._done = threading.Event()
        self._name = stop_event(run_id)
        self._client = get_client()  # in the task's thread: the watching thread has no worker context of its own
        self._campaign = campaign
        self._thread = threading.Thread(target=self._watch, name="ptfuzz-stop-watch", daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        from distributed import Event

        event = Event(self._name, client=self._client)  # made here: an Event is bound to its thread's context
        while not self._done.is_set():
            try:
                if event.wait(timeout=STOP_POLL):
                    self.fired = True
                    self._campaign.stop_requested = True
                    return
            except Exception:  # the scheduler is gone: the client is too, the deadline ends the slice
                self._done.wait(STOP_POLL)

    def close(self) -> None:
        self._done.set()


def run_slice(s: Slice) -> SliceResult:
    """Run one slice; every way it can fail comes back as one line, never as a raised exception.

    A raised exception would cross to the client as a pickled traceback (an
    exception class of a plugin's may not even unpickle there), and a
    ``SystemExit`` raised in a worker's thread could take the worker down.
    """
    worker = _dask_worker()
    name = "local" if worker is None else str(worker.name)
    said: list[str] = []
    e = s.entry
    watch: _StopWatch | None = None
    try:
        budget = s.seconds
        if s.deadline is not None:
            left = s.deadline - time.time()
            budget = left if budget is None else min(budget, left)
        if budget is not None and budget < MIN_SLICE:
            return SliceResult(entry=e.index, number=s.number, worker=name, result=None)
        reg = _registry(e.plugin_files)
        db = open_database(s.db)
        if isinstance(db, Tolerant):
            db.warn = said.append

        def report(f: Finding, first: bool) -> None:
            if worker is not None:
                worker.log_event(topic(s.run_id), {"entry": e.index, "slice": s.number, "name": name,
                                                   "started": started,
                                                   "finding": pickle.dumps(f)})

        campaign = SliceCampaign(
            dict(s.known), Shared(s.db, warn=said.append), s.scope,
            reg, e.subsystem, reg.policy(e.subsystem, e.policy, e.without, dict(e.knobs)),
            reg.device(e.subsystem, e.device), seed=s.seed, max_examples=s.max_examples, time_budget=budget,
            step_count=e.step_count, corpus_dir=None, accept_tainted=e.accept_tainted, database=db,
            on_finding=report, search=e.search, ignore_invariants=e.ignore,
        )
        if campaign.store is not None:
            campaign.store.warn = said.append
        campaign.learnt_from = s.learnt
        if worker is not None:
            watch = _StopWatch(s.run_id, campaign)
        started = time.time()
        with warnings.catch_warnings():
            # The worker's own threads (its event loop) use the global ``random`` while Hypothesis draws, which
            # Hypothesis takes for a strategy using it and warns about, on the worker's stderr: one voice, ours.
            warnings.simplefilter("ignore", HypothesisDeprecationWarning)
            result = campaign.run()
        if result.interrupted and not (watch is not None and watch.fired):
            # the campaign stops on KeyboardInterrupt and keeps no traceback: no stop was asked, so a plugin raised it
            raise PtfuzzError(f"the campaign stopped on a KeyboardInterrupt that no signal sent: code of a plugin "
                              f"of {e.subsystem} raised it; only Ctrl-C may raise KeyboardInterrupt")
        return SliceResult(entry=e.index, number=s.number, worker=name, result=result,
                           warnings=tuple(dict.fromkeys(said)), started=started,
                           sightings=tuple(f for sig, f in sorted(campaign.sightings.items())
                                           if sig not in result.findings),
                           learnt=campaign.explorer.learnt() if campaign.explorer is not None else None,
                           adopted=campaign.adopted)
    except BaseException as exc:  # every way a slice fails is reported, as one line, by the client
        message, internal = failure(exc)
        return SliceResult(entry=e.index, number=s.number, worker=name, result=None, error=message,
                           internal=internal, warnings=tuple(dict.fromkeys(said)))
    finally:
        if watch is not None:
            watch.close()


def failure(exc: BaseException) -> tuple[str, bool]:
    """(one-line reason, whether it is a bug in ptfuzz) for what ended a slice."""
    from fuzzer.errors import raised
    from fuzzer.host import blame

    if isinstance(exc, PtfuzzError):  # a plugin that raised or exited (ModelError), a bad file, a bad name
        return str(exc), False
    who = blame(exc)
    if isinstance(exc, SystemExit):
        return f"{f'plugin {who!r}' if who else 'something'} called sys.exit({exc.code!r})", False
    if who is not None:  # a BaseException of its own, past the executor's wrapping
        return f"plugin {who!r} raised {raised(exc)}", False
    if isinstance(exc, MemoryError):
        return "out of memory", False
    return raised(exc), True
