"""Campaigns on a Dask cluster: ``run --workers N``, ``run --cluster ADDR`` and ``campaign --cluster ADDR``.

One engine, two kinds of cluster.  ``--cluster tcp://HOST:8786`` connects to a
running Dask scheduler (its workers have ptfuzz and the plugins installed);
``--workers N`` without it starts a ``LocalCluster`` of N worker processes with
one thread each (the search is pure Python: threads would share one GIL).
``--workers 1`` without ``--cluster`` stays in one process (``Campaign.run``):
no cluster start-up (about 2 s), and the exact sequences ``--seed`` has always
meant.

Work goes out as slices (``fuzzer.slices``): one entry, one bounded slice of time
or sequences, a seed derived from the entry's.  The engine keeps at most one
slice per worker thread in flight, and gives the next free thread to the entry
furthest behind its share (spent over allotted slice-seconds); that is the
whole of the scheduling, and Dask does the rest: placement, retry on another
worker when one dies (``ALLOWED_FAILURES`` times on a local cluster; a remote
scheduler's own setting otherwise), and shipping results back.

The client alone writes the corpus (``Keeper``): one file per signature, the
plainest sequence, atomically (``Campaign._save``, ``fuzzer.corpus``).  Slices
stream each finding as they minimize it, so the file exists before the slice
ends; a slice's result brings the rest (raw findings a deadline cut short).
With a Redis ``--db``, a signature is claimed there before it is written
(``fuzzer.shared``), so two campaigns sharing that Redis never both save it.

The lifecycle keeps the guarantees of the fork pool this replaced: **one
deadline** (wall clock, handed to every slice), **one voice** (workers never
print; the client prints each FOUND line once, and each warning once),
**stop** (the first Ctrl-C or SIGTERM sets the run's stop event, which every
running slice polls; ``GRACE`` seconds later what is still running is
cancelled), **no orphans** (a local cluster's workers ignore SIGINT, so a
terminal's Ctrl-C stops the run through the client, and die with the client,
``fuzzer.daskworker``), and **a failing worker is named** (``WorkerError``,
exit 2, never a traceback).
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import time
import uuid
from collections.abc import Callable
from typing import Any

import attrs

from fuzzer.campaign import Campaign, Finding, Progress, Result, follow_ons
from fuzzer.errors import PtfuzzError, UsageError
from fuzzer.explore import Learnt
from fuzzer.host import Registry
from fuzzer.shared import Shared
from fuzzer.slices import (
    MIN_SLICE,
    SLICE_EXAMPLES,
    SLICE_SECONDS,
    Entry,
    Slice,
    SliceResult,
    run_slice,
    stop_event,
    topic,
)

#: Seconds a slice may run past the deadline or a stop request before it is cancelled.
GRACE = 2.0
#: Times a local cluster retries a slice whose worker died, on another worker (Dask's ``allowed-failures``).
ALLOWED_FAILURES = 2
#: Seconds to reach a remote scheduler before ``--cluster`` is declared unusable.
CONNECT_TIMEOUT = 10
#: Seconds between the client's looks at its slices.
POLL = 0.05


class WorkerError(PtfuzzError):
    """A worker failed (its plugin raised or exited, it died every time it was retried): exit 2."""


def need_dask(option: str) -> None:
    """``UsageError`` naming the extra to install when Dask is missing."""
    try:
        import distributed  # noqa: F401
    except ImportError:
        raise UsageError(f"{option} needs Dask: pip install 'ptfuzz[cluster]'") from None


class Keeper:
    """The client's corpus for one entry: one file per signature, the plainest sequence, claimed first.

    ``offer`` takes every finding a slice reports, in any order and any
    number of times (a retried slice reports again): a signature is written
    once, and again only with a plainer sequence (same file name).  A
    signature another campaign has claimed in the shared Redis is not written:
    it stays in the result, reported as saved by that owner.
    """

    def __init__(self, registry: Registry, entry: Entry, corpus_dir: str | None, shared: Shared, scope: str,
                 on_found: Callable[[Entry, Finding, str, str | None], None]) -> None:
        self.entry = entry
        self.book = Campaign(
            registry, entry.subsystem, registry.policy(entry.subsystem, entry.policy, entry.without,
                                                       dict(entry.knobs)),
            registry.device(entry.subsystem, entry.device), seed=entry.seed, max_examples=1,
            corpus_dir=corpus_dir, accept_tainted=entry.accept_tainted, ignore_invariants=entry.ignore,
            claim=lambda sig, steps: shared.claim(scope, sig, steps))
        self.shared = shared
        self.scope = scope
        self.on_found = on_found
        self.findings: dict[str, Finding] = {}

    def _rank(self, f: Finding) -> tuple[bool, tuple[int, int]]:
        return not f.minimized, self.book._simplicity(f.steps)

    def offer(self, found: Finding, worker: str, offset: float = 0.0) -> None:
        """Take a slice's finding; ``offset``: seconds from the run's start to the slice's (``found_at``
        counts from the run's start, not the slice's; its ``sequences`` stay the slice's own count)."""
        sig = found.signature
        known = self.findings.get(sig)
        if known is not None and self._rank(found) >= self._rank(known):
            return
        f = attrs.evolve(found, path=None, steps=list(found.steps), found_at=found.found_at + max(offset, 0.0))
        if known is not None:  # a plainer sequence; the first sighting stays the first
            f.found_at, f.sequences, f.search_steps = known.found_at, known.sequences, known.search_steps
        if self.book.corpus_dir is not None:
            # Campaign's rules: claimed elsewhere, not written; a committed file as plain is kept, and adopted
            f.path = self.book._save(f)
        self.findings[sig] = f
        if known is None:
            self.on_found(self.entry, f, worker, self.book.claimed.get(sig))

    def known(self) -> tuple[tuple[str, int], ...]:
        """What slices need not minimize again: the minimized findings, and every claim in the shared Redis.

        A raw finding (a slice's deadline cut its minimizing short) is not
        passed on: a later slice that meets it minimizes it.
        """
        out = self.shared.known(self.scope)
        for sig, f in self.findings.items():
            if f.minimized:
                out[sig] = min(out.get(sig, len(f.steps)), len(f.steps))
        return tuple(sorted(out.items()))

    def result(self, results: list[Result], elapsed: float, interrupted: bool) -> Result:
        """The entry's result: every slice's counts, this keeper's findings, follow-ons over all of them."""
        found = dict(self.findings)
        for sig, root in follow_ons(self.book._checker, found).items():
            found[sig].follows = root
        accepted = tuple(sorted(s for s, f in found.items()
                                if self.entry.accept_tainted and f.violation.severity == "tainted"))
        if not results:
            return Result(found, 0, 0, elapsed, self.entry.seed, 0, 0, interrupted, accepted,
                          search=self.entry.search)
        best = max(results, key=lambda r: (r.abstract_states, r.transitions))  # slices' states are not disjoint
        return Result(
            found, sum(r.sequences for r in results), sum(r.steps for r in results), elapsed, self.entry.seed,
            sum(r.rounds for r in results), sum(r.runs for r in results),
            interrupted or any(r.interrupted for r in results), accepted,
            max(r.behaviours for r in results), self.entry.search,
            best.abstract_states, best.transitions, best.growth, best.last_new_state,
            any(r.coverage_capped for r in results),
        )


@attrs.define
class _Track:
    """One entry on the client: its slices in flight, what came back."""

    entry: Entry
    keeper: Keeper
    flying: dict[Any, Slice] = attrs.Factory(dict)
    results: list[Result] = attrs.Factory(list)
    spent: float = 0.0
    sequences: int = 0
    numbers: int = 0
    started: float | None = None
    finished: bool = False
    #: what the last slice that finished learnt (the next one starts from it)
    learnt: Learnt | None = None

    def ratio(self) -> float:
        return self.spent / self.entry.seconds if self.entry.seconds else 0.0

    def next_slice(self, now: float, deadline: float | None) -> tuple[float | None, int | None] | None:
        """(seconds, sequences) of the next slice, or None when this entry has no more to give now."""
        e = self.entry
        free = e.streams - len(self.flying)
        if free <= 0 or (deadline is not None and deadline - now < MIN_SLICE):
            return None
        seconds = examples = None
        if e.seconds is not None:
            left = e.seconds - self.spent - sum(s.seconds or 0.0 for s in self.flying.values())
            if left < MIN_SLICE:
                return None
            seconds = min(SLICE_SECONDS, left / free)
        if e.max_examples is not None:
            left_n = e.max_examples - self.sequences - sum(s.max_examples or 0 for s in self.flying.values())
            if left_n <= 0:
                return None
            examples = min(SLICE_EXAMPLES, -(-left_n // free))
        if seconds is None and examples is None:
            return None
        return seconds, examples


class Engine:
    """A Dask client: connected to ``address``, or to a local cluster of ``workers`` processes it starts."""

    def __init__(self, address: str | None = None, workers: int = 1) -> None:
        self.address = address
        self.workers = workers
        self.client: Any = None
        self._cluster: Any = None
        self._stop_asked = False
        #: worker address -> name (a local cluster's are 0, 1, ...), to name a worker in an error
        self._names: dict[str, str] = {}
        #: worker threads when the run began: slices in flight at most
        self.capacity = 0
        #: the last run's slices: each submitted (entry, number), and each result that came back (in order)
        self.submitted: list[tuple[int, int]] = []
        self.returned: list[SliceResult] = []
        #: seconds from submitting each slice to its result, and the seconds its campaign ran (overhead = the gap)
        self.round_trips: list[tuple[float, float]] = []

    # ---------------------------------------------------------------- start and stop

    def __enter__(self) -> Engine:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        import dask
        from distributed import Client, LocalCluster

        if self.address is not None:
            try:
                self.client = Client(self.address, timeout=CONNECT_TIMEOUT)
            except Exception as exc:  # refused, timeout, a typo: the user's configuration
                raise UsageError(f"--cluster {self.address}: cannot reach the Dask scheduler: "
                                 f"{type(exc).__name__}: {exc}") from None
        else:
            with dask.config.set({"distributed.scheduler.allowed-failures": ALLOWED_FAILURES}):
                self._cluster = LocalCluster(n_workers=self.workers, threads_per_worker=1, processes=True,
                                             dashboard_address=":0", silence_logs=logging.CRITICAL, memory_limit=0)
                self.client = Client(self._cluster)
            from fuzzer.daskworker import LocalWorker  # imports Dask: only now

            self.client.register_plugin(LocalWorker(os.getpid()), name="ptfuzz-local-worker")
        for name in ("distributed", "distributed.client", "distributed.scheduler", "distributed.worker"):
            logging.getLogger(name).setLevel(logging.CRITICAL)  # one voice: ours
        self.capacity = max(1, sum(self.client.nthreads().values()))
        self._names = {addr: str(w.get("name", addr)) for addr, w in self.client.scheduler_info()["workers"].items()}

    def close(self) -> None:
        with contextlib.suppress(Exception):
            if self.client is not None:
                self.client.close(timeout=GRACE)
        with contextlib.suppress(Exception):
            if self._cluster is not None:
                self._cluster.close(timeout=GRACE)
        self.client = self._cluster = None

    def request_stop(self) -> None:
        """Ask every slice to stop as at the deadline (a signal handler calls this: a flag, nothing more)."""
        self._stop_asked = True

    # ---------------------------------------------------------------- one run

    def run(self, registry: Registry, entries: list[Entry], *, deadline: float | None, db: str | None,
            corpus_dir: str | None, shared: Shared,
            on_found: Callable[[Entry, Finding, str, str | None], None],
            on_progress: Callable[[Progress], None] | None = None,
            on_start: Callable[[Entry], None] | None = None,
            on_done: Callable[[Entry, Result], None] | None = None,
            warn: Callable[[str], None] | None = None) -> tuple[dict[int, Result], bool]:
        """Run ``entries`` to their budgets (``deadline``: ``time.time()``); (result per entry index, interrupted).

        Raises ``WorkerError`` naming the first slice that failed (the others are stopped first).
        """
        from distributed import Event

        from fuzzer.shared import db_warnings_once, scope_key

        run_id = uuid.uuid4().hex
        inbox: queue.Queue[dict[str, Any]] = queue.Queue()
        say = shared.warn = db_warnings_once(warn)  # the client and every slice notice a Redis gone
        self.submitted, self.returned, self.round_trips = [], [], []
        sent_at: dict[Any, float] = {}

        tracks: dict[int, _Track] = {}
        for e in entries:
            scope = scope_key(e.subsystem, registry.policy(e.subsystem, e.policy, e.without,
                                                           dict(e.knobs)).label, e.device)
            tracks[e.index] = _Track(e, Keeper(registry, e, corpus_dir, shared, scope, on_found))
        self.client.subscribe_topic(topic(run_id), lambda event: inbox.put(event[1]))
        futures: dict[Any, _Track] = {}
        error: tuple[str, str, bool] | None = None
        stop_at: float | None = None
        interrupted = False
        started = time.monotonic()
        run_wall = time.time()  # slices say when they started on this clock (the workers' own: NTP)
        last_progress = 0.0
        db_ok = True

        def take(msg: dict[str, Any]) -> None:
            import pickle

            track = tracks.get(msg.get("entry", -1))
            if track is not None:  # pickled by our own run_slice: a cluster's workers are trusted as Dask trusts them
                # "name", not "worker": the scheduler adds "worker" (an address) to every event
                track.keeper.offer(pickle.loads(msg["finding"]), str(msg.get("name", "?")),
                                   float(msg.get("started", run_wall)) - run_wall)

        try:
            while True:
                if self._stop_asked and stop_at is None:
                    stop_at = time.monotonic()
                    with contextlib.suppress(Exception):
                        Event(stop_event(run_id), client=self.client).set()
                while True:
                    try:
                        take(inbox.get_nowait())
                    except queue.Empty:
                        break
                now_wall = time.time()
                while stop_at is None and error is None and len(futures) < self.capacity:
                    open_ = [(t, n) for t in tracks.values() if (n := t.next_slice(now_wall, deadline)) is not None]
                    if not open_:
                        break
                    track, (seconds, examples) = min(open_, key=lambda p: (p[0].ratio(), p[0].entry.index))
                    s = Slice(entry=track.entry, number=track.numbers, seconds=seconds, max_examples=examples,
                              deadline=deadline, known=track.keeper.known(), db=db if db_ok and not shared.failed else None,
                              run_id=run_id, scope=track.keeper.scope, learnt=track.learnt)
                    track.numbers += 1
                    if track.started is None:
                        track.started = time.monotonic()
                        if on_start is not None:
                            on_start(track.entry)
                    fut = self.client.submit(run_slice, s, pure=False,
                                             key=f"ptfuzz-slice-{track.entry.index}-{s.number}-{run_id}")
                    track.flying[fut] = s
                    futures[fut] = track
                    self.submitted.append((track.entry.index, s.number))
                    sent_at[fut] = time.monotonic()
                if not futures:  # nothing running, and nothing more to start
                    break
                for fut in [f for f in futures if f.done()]:
                    track = futures.pop(fut)
                    s = track.flying.pop(fut)
                    got = self._outcome(fut, s)
                    self.returned.append(got)
                    self.round_trips.append((time.monotonic() - sent_at.pop(fut),
                                             got.result.elapsed if got.result is not None else 0.0))
                    for w in got.warnings:  # a slice's --db failed: the next ones run without it
                        say(w)
                        db_ok = False
                    if got.error is not None:
                        if error is None:
                            error = (got.worker, got.error, got.internal)
                            self._stop_asked = True
                        continue
                    if got.result is not None:
                        for f in [*got.result.findings.values(), *got.sightings]:  # what no event announced
                            track.keeper.offer(f, got.worker, got.started - run_wall)
                        track.results.append(got.result)
                        if got.learnt is not None:
                            track.learnt = got.learnt
                        track.spent += got.result.elapsed
                        track.sequences += got.result.sequences
                        shared.count(track.keeper.scope, sequences=got.result.sequences, steps=got.result.steps,
                                     slices=1)
                    if got.result is None or got.result.interrupted or not got.result.sequences:
                        # nothing left to do (the deadline, a search with nothing more to give), or stopped
                        track.spent = track.entry.seconds or track.spent
                        if track.entry.max_examples is not None and got.result is None:
                            track.sequences = track.entry.max_examples
                    self._finish_done(tracks, futures, deadline, stop_at is not None or error is not None,
                                      on_done, started)
                now = time.monotonic()
                over = (stop_at is not None and now > stop_at + GRACE) or (
                    deadline is not None and time.time() > deadline + GRACE)
                if over:  # asked (or out of time) and given GRACE: what still runs is cancelled
                    interrupted = True
                    break
                if on_progress is not None and now - last_progress >= 1.0:
                    last_progress = now
                    on_progress(self._progress(tracks, now - started))
                time.sleep(POLL)
        except KeyboardInterrupt:  # a second Ctrl-C or SIGTERM: now
            interrupted = True
        finally:
            if futures:
                with contextlib.suppress(Exception):
                    Event(stop_event(run_id), client=self.client).set()
                with contextlib.suppress(Exception):
                    self.client.cancel(list(futures))
            with contextlib.suppress(Exception):
                self.client.unsubscribe_topic(topic(run_id))
            while True:  # what streamed in before the end is kept
                try:
                    take(inbox.get_nowait())
                except queue.Empty:
                    break
        if error is not None:
            worker, message, internal = error
            plugins = entries[0].plugin_files
            where = f"worker w{worker}" + (f" (plugins: {', '.join(plugins)})" if plugins else "")
            if internal:
                raise RuntimeError(f"{where}: {message}")
            raise WorkerError(f"{where}: {message}")
        elapsed = time.monotonic() - started
        interrupted = interrupted or stop_at is not None
        out: dict[int, Result] = {}
        for index, track in tracks.items():
            if track.started is None and not track.results:
                continue
            out[index] = track.keeper.result(track.results, elapsed, interrupted)
            if not track.finished and on_done is not None:
                on_done(track.entry, out[index])
        return out, interrupted

    def _finish_done(self, tracks: dict[int, _Track], futures: dict[Any, _Track], deadline: float | None,
                     stopping: bool, on_done: Callable[[Entry, Result], None] | None, started: float) -> None:
        """Tell ``on_done`` about each entry with nothing in flight and nothing more to run."""
        if on_done is None:
            return
        for t in tracks.values():
            if t.finished or t.started is None or t.flying:
                continue
            if stopping or t.next_slice(time.time(), deadline) is None:
                t.finished = True
                on_done(t.entry, t.keeper.result(t.results, time.monotonic() - started, stopping))

    def _outcome(self, fut: Any, s: Slice) -> SliceResult:
        """What a finished future says; a slice whose workers all died, or a lost scheduler, as an error."""
        if fut.status == "finished":
            got = fut.result()
            if isinstance(got, SliceResult):
                return got
        if fut.status == "cancelled":
            return SliceResult(entry=s.entry.index, number=s.number, worker="?", result=None,
                               error=f"slice {s.number} of {s.entry.label} was cancelled (the scheduler or "
                                     f"its workers went away)")
        exc = fut.exception()
        name = type(exc).__name__
        if name == "KilledWorker":
            last = getattr(exc, "last_worker", None)
            address = str(getattr(last, "address", last))
            who = self._names.get(address, address)
            return SliceResult(entry=s.entry.index, number=s.number, worker=str(who), result=None,
                               error=f"died without a result running slice {s.number} of {s.entry.label}, as did "
                                     f"every worker it was retried on (did plugin code call os._exit(), or "
                                     f"crash the interpreter?)")
        return SliceResult(entry=s.entry.index, number=s.number, worker="?", result=None,
                           error=f"slice {s.number} of {s.entry.label} failed: {name}: {exc}", internal=True)

    @staticmethod
    def _progress(tracks: dict[int, _Track], elapsed: float) -> Progress:
        results = [r for t in tracks.values() for r in t.results]
        return Progress(sum(r.sequences for r in results), sum(r.steps for r in results),
                        max((r.behaviours for r in results), default=0),
                        sum(len(t.keeper.findings) for t in tracks.values()), elapsed)
