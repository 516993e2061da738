"""Parallel campaigns: one process per worker, sharing the corpus, results merged.

Workers share the corpus directory: files are written atomically and named by
signature, so two workers finding the same bug write one file.

The lifecycle, which is this module's job (scheduling stays this simple):

* **one deadline**: every worker gets the parent's absolute deadline (the
  monotonic clock is system-wide on Linux), not a budget of its own counted
  from whenever it started;
* **one voice**: workers never print; they send their findings, progress,
  result or error to the parent, which prints each signature's FOUND line
  once, whole;
* **stop**: ``Pool.request_stop`` (the parent's first Ctrl-C or SIGTERM)
  sends SIGINT to each worker, which ends its campaign as the deadline
  would; a worker still running ``GRACE`` seconds after that (or after the
  deadline) is killed;
* **die with the parent**: each worker asks the kernel for SIGKILL when its
  parent dies (``prctl(PR_SET_PDEATHSIG)``), and a watchdog thread polls the
  parent pid as a fallback, so a killed parent leaves no worker writing
  findings behind it;
* **a failing worker is named**: a plugin that raises or exits, a Redis
  database that goes away, a worker that dies: the run ends with one line
  naming the worker (``WorkerError``, exit 2), never a traceback.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import attrs

from fuzzer import corpus
from fuzzer.campaign import Campaign, Finding, Progress, Result, derive_seed
from fuzzer.errors import PtfuzzError, UsageError
from fuzzer.hypothesis_search import open_database
from fuzzer.minimize import simplicity

#: Seconds a worker may run past the deadline or a stop request before it is killed.
GRACE = 2.0
#: Memory a worker may grow to, for ``max_workers``: one starts at about 35 MiB (64 of
#: them took 2.1 GiB); explored behaviours, Hypothesis's caches and long findings grow it.
WORKER_MEMORY = 256 * 2**20
#: Seconds between a worker's looks at its parent's pid (the fallback to PR_SET_PDEATHSIG).
WATCH_EVERY = 0.25
PR_SET_PDEATHSIG = 1


class WorkerError(PtfuzzError):
    """A worker failed (its plugin raised or exited, its database went away, it died): exit 2."""


@attrs.frozen
class WorkerSpec:
    """Everything a worker process needs to rebuild its campaign (all picklable)."""

    plugin_files: tuple[str, ...]
    subsystem: str
    policy: str
    without: tuple[str, ...]
    device: str
    seed: int
    index: int
    max_examples: int | None
    time_budget: float | None
    step_count: int
    corpus_dir: str | None
    accept_tainted: bool
    db: str | None
    search: str = "native"
    #: the parent's deadline on the monotonic clock; overrides ``time_budget``
    deadline: float | None = None
    #: ``--ignore``: invariants not checked
    ignore: frozenset[str] = frozenset()
    #: knobs set over the policy's own (``Policy.tuned``), as (name, value) pairs
    knobs: tuple[tuple[str, Any], ...] = ()


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity, where the platform tells), at least 1."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def available_memory() -> int | None:
    """Bytes of memory available without swapping (Linux ``MemAvailable``), or None if unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def max_workers() -> tuple[int, str]:
    """The most workers this machine runs usefully, and why: one per CPU (at least 2), as memory allows.

    More processes than CPUs only take turns (64 workers on 2 CPUs: load 55,
    2.1 GiB, and the deadline missed by minutes).
    """
    cpus = usable_cpus()
    limit, why = max(2, cpus), f"{cpus} usable CPU(s)"
    memory = available_memory()
    if memory is not None and memory // WORKER_MEMORY < limit:
        limit = max(1, memory // WORKER_MEMORY)
        why += f", {memory / 2**30:.1f} GiB available at {WORKER_MEMORY // 2**20} MiB a worker"
    return limit, why


def check_workers(workers: int) -> None:
    limit, why = max_workers()
    if workers > limit:
        raise UsageError(f"--workers {workers}: at most {limit} on this machine ({why})")


# ----------------------------------------------------------------------------- in the worker


def _die_with_parent(parent: int) -> None:
    """SIGKILL this process when ``parent`` dies, however it dies.

    ``prctl(PR_SET_PDEATHSIG)`` is Linux's way; a daemon thread that polls
    the parent pid covers other systems (and a failed prctl).  SIGKILL, not
    SIGTERM: an orphan must stop writing at once; a save cut short leaves at
    most a ``.ptfuzz-tmp-*`` file, removed by a later save
    (``files.clean_stale``), never a half-written corpus file.
    """
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # it died before the prctl took effect
        os._exit(1)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(WATCH_EVERY)
        os._exit(1)

    threading.Thread(target=watch, name="ptfuzz-parent-watch", daemon=True).start()


def _worker(spec: WorkerSpec, send: Callable[[tuple[Any, ...]], None], stop: dict[str, Any]) -> Result | None:
    """One campaign in a worker process; sends its findings and progress to the parent as it goes."""
    from fuzzer import host

    registry = host.load(spec.plugin_files)

    def report(f: Finding, first: bool) -> None:
        if first:
            send(("found", spec.index, f.signature, f.describe_parts()))

    def progress(c: Campaign) -> None:
        send(("progress", spec.index, c.progress()))

    budget = spec.time_budget
    if spec.deadline is not None:
        budget = max(spec.deadline - time.monotonic(), 0.001)
    campaign = Campaign(
        registry, spec.subsystem, registry.policy(spec.subsystem, spec.policy, spec.without, dict(spec.knobs)),
        registry.device(spec.subsystem, spec.device), seed=derive_seed(spec.seed, 1000 + spec.index),
        max_examples=spec.max_examples, time_budget=budget, step_count=spec.step_count,
        corpus_dir=spec.corpus_dir, accept_tainted=spec.accept_tainted,
        database=open_database(spec.db), on_finding=report, on_progress=progress, search=spec.search,
        ignore_invariants=spec.ignore,
    )
    stop["campaign"] = campaign
    if stop["requested"]:
        return None
    return campaign.run()


def _failure(exc: BaseException) -> tuple[str, bool]:
    """(one-line reason, whether it is a bug in ptfuzz) for what ended a worker."""
    if isinstance(exc, PtfuzzError):  # a plugin that raised or exited (ModelError), a bad file
        return str(exc), False
    if type(exc).__module__.partition(".")[0] == "redis":
        return f"--db: the Redis example database failed: {type(exc).__name__}: {exc}", False
    from fuzzer.host import blame

    who = blame(exc)
    if isinstance(exc, SystemExit):
        return f"{f'plugin {who!r}' if who else 'something'} called sys.exit({exc.code!r})", False
    if who is not None:  # a BaseException of its own, past the executor's wrapping
        from fuzzer.errors import raised

        return f"plugin {who!r} raised {raised(exc)}", False
    if isinstance(exc, MemoryError):
        return "out of memory", False
    from fuzzer.errors import raised

    return raised(exc), True


def _worker_main(spec: WorkerSpec, inbox: Any, parent: int) -> None:
    """Process entry point: die with the parent, run, and hand back the result or the reason it failed.

    SIGINT and SIGTERM only set a flag that the campaign honours as it
    honours its deadline: a KeyboardInterrupt raised at an arbitrary point
    can land in a callback that swallows it (Hypothesis's gc hook) or in the
    middle of reporting.  They arrive blocked (``Pool.run`` blocks them
    around the fork) and are unblocked once the handler is in place.
    """
    stop: dict[str, Any] = {"requested": False, "campaign": None}

    def on_signal(signum: int, frame: Any) -> None:
        stop["requested"] = True
        if stop["campaign"] is not None:
            stop["campaign"].stop_requested = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
    _die_with_parent(parent)
    try:
        result = _worker(spec, inbox.put, stop)
        if result is not None and result.interrupted and not stop["requested"]:
            # the campaign stops on KeyboardInterrupt and keeps no traceback: without a signal, a plugin raised it
            raise WorkerError(f"the campaign stopped on a KeyboardInterrupt that no signal sent: code of a plugin "
                              f"of {spec.subsystem} raised it; only Ctrl-C may raise KeyboardInterrupt")
        inbox.put(("done", spec.index, result))
    except BaseException as exc:  # every way a worker fails is reported, as one line, by the parent
        message, internal = _failure(exc)
        inbox.put(("error", spec.index, message, internal))
    finally:
        inbox.close()
        inbox.join_thread()  # the message is in the pipe before the process ends


# ----------------------------------------------------------------------------- in the parent


def _exit_reason(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    if code == 0:  # nothing of ptfuzz's exits 0 without sending its result: plugin code ended the process
        return "exited with code 0 without a result (did plugin code call os._exit()?)"
    return f"exited with code {code} without a result"


class Pool:
    """The parent's side: start the workers, relay what they say, stop them, merge their results."""

    def __init__(self, specs: list[WorkerSpec], *, on_found: Callable[[tuple[str, ...]], None] | None = None,
                 on_progress: Callable[[Progress], None] | None = None) -> None:
        import multiprocessing

        self.specs = specs
        self.on_found = on_found
        self.on_progress = on_progress
        self._mp = multiprocessing.get_context("fork")
        self._inbox: Any = self._mp.Queue()
        self._procs: list[Any] = []
        self._stop_at: float | None = None
        self.started = 0.0

    def request_stop(self) -> None:
        """Ask every worker to stop as at its deadline (a signal handler calls this: no locks, no I/O)."""
        if self._stop_at is None:
            self._stop_at = time.monotonic()
        self._signal_all(signal.SIGINT)

    def _signal_all(self, sig: int) -> None:
        for p in self._procs:
            if p.pid is not None and p.exitcode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(p.pid, sig)

    def run(self) -> Result:
        """Run the workers to the end; raises ``WorkerError`` naming the first that failed."""
        import queue

        blocked = {signal.SIGINT, signal.SIGTERM}
        parent = os.getpid()
        old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, blocked)
        try:  # forked with the signals blocked: no parent handler ever runs in a worker
            self._procs = [self._mp.Process(target=_worker_main, args=(s, self._inbox, parent), daemon=True,
                                            name=f"ptfuzz-w{s.index}") for s in self.specs]
            self.started = time.monotonic()
            for p in self._procs:
                p.start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
        got: dict[int, Result | None] = {}
        errors: dict[int, tuple[str, bool]] = {}
        announced: set[str] = set()
        progress: dict[int, Progress] = {}
        interrupted = False
        deadline = self.specs[0].deadline
        quiet_polls = 0
        try:
            while len(got) + len(errors) < len(self._procs):
                try:
                    msg = self._inbox.get(timeout=0.1)
                except queue.Empty:
                    msg = None
                if msg is None:
                    now = time.monotonic()
                    late = [t + GRACE for t in (self._stop_at, deadline) if t is not None]
                    if late and now > min(late):
                        if now > min(late) + GRACE:  # asked and given time: killed
                            self._signal_all(signal.SIGKILL)
                            interrupted = True
                        else:
                            self.request_stop()
                    dead = [i for i, p in enumerate(self._procs)
                            if p.exitcode is not None and i not in got and i not in errors]
                    quiet_polls = quiet_polls + 1 if dead else 0
                    if quiet_polls >= 3:  # dead, and nothing left in the pipe from them
                        for i in dead:
                            errors[i] = (_exit_reason(self._procs[i].exitcode), False)
                    continue
                kind, index = msg[0], msg[1]
                if kind == "found":
                    if msg[2] not in announced and self.on_found is not None:
                        self.on_found((f"[w{index}] {msg[3][0]}", *msg[3][1:]))
                    announced.add(msg[2])
                elif kind == "progress":
                    progress[index] = msg[2]
                    if self.on_progress is not None:
                        total = Progress.total(list(progress.values()), time.monotonic() - self.started)
                        self.on_progress(attrs.evolve(total, findings=max(total.findings, len(announced))))
                elif kind == "done":
                    got[index] = msg[2]
                elif kind == "error":
                    errors[index] = (msg[2], msg[3])
                    self.request_stop()  # one failed worker fails the run: the others stop now
        except KeyboardInterrupt:  # a second Ctrl-C or SIGTERM: now
            self._signal_all(signal.SIGKILL)
            interrupted = True
        finally:
            for p in self._procs:
                p.join(timeout=GRACE)
            self._signal_all(signal.SIGKILL)
        if errors:
            index = min(errors)
            message, internal = errors[index]
            where = f"worker w{index}" + (f" (plugins: {', '.join(self.specs[index].plugin_files)})"
                                          if self.specs[index].plugin_files else "")
            if internal:
                raise RuntimeError(f"{where}: {message}")
            raise WorkerError(f"{where}: {message}")
        results = [r for r in got.values() if r is not None]
        if not results:
            raise KeyboardInterrupt
        return merge(results, self.specs[0].seed, time.monotonic() - self.started,
                     interrupted or self._stop_at is not None)


def merge(results: list[Result], seed: int, elapsed: float, interrupted: bool) -> Result:
    """One result from the workers': each signature's simplest finding (minimized first), counts summed."""
    merged: dict[str, Finding] = {}
    for r in results:
        for sig, f in r.findings.items():
            if sig not in merged or (not f.minimized, simplicity(f.steps)) < (
                    not merged[sig].minimized, simplicity(merged[sig].steps)):
                merged[sig] = f
    for f in merged.values():
        _settle_with_file(f)
    accepted = tuple(sorted({s for r in results for s in r.accepted}))
    return Result(
        merged, sum(r.sequences for r in results), sum(r.steps for r in results), elapsed, seed,
        sum(r.rounds for r in results), sum(r.runs for r in results),
        interrupted or any(r.interrupted for r in results), accepted,
        max(r.behaviours for r in results), results[0].search,
        *_widest_coverage(results),
    )


def _widest_coverage(results: list[Result]) -> tuple[int, int, tuple[tuple[float, int], ...], float]:
    """The coverage of the worker that saw the most abstract states (workers' states are not disjoint)."""
    best = max(results, key=lambda r: (r.abstract_states, r.transitions))
    return best.abstract_states, best.transitions, best.growth, best.last_new_state


def _settle_with_file(f: Finding) -> None:
    """Report what the corpus file holds: two workers may write one signature's file in turn.

    Each worker keeps the file when it is at least as plain as its own finding, but
    two that find a signature at once both write, and the last one wins; the summary
    must then describe that file (its steps, whether it was minimized), not the
    other worker's finding.  Issue 21's engine has the parent alone write.
    """
    if f.path is None:
        return
    try:
        on_disk = corpus.load(f.path)
    except PtfuzzError:  # gone or unreadable: the finding as the worker reported it
        return
    if on_disk.signature == f.signature:
        f.steps = list(on_disk.steps)
        f.minimized = on_disk.minimized


def run_workers(specs: list[WorkerSpec]) -> Result:
    """Run campaigns in parallel processes and merge their results (``Pool`` without callbacks)."""
    return Pool(specs).run()
