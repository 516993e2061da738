"""Parallel campaigns: one process per worker, sharing the corpus, results merged.

Workers share the corpus directory: files are written atomically and named by
signature, so two workers finding the same bug write one file.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from typing import Any

import attrs

from fuzzer.campaign import Campaign, Finding, Result, derive_seed, simplicity
from fuzzer.hypothesis_search import open_database


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


def _worker(spec: WorkerSpec) -> Result | None:
    """One campaign in a worker process; prints its findings as it goes.

    SIGINT only sets a flag that the campaign honours between sequences: a
    KeyboardInterrupt raised at an arbitrary point can land in a callback
    that swallows it (Hypothesis's gc hook) or in the middle of reporting.
    """
    from fuzzer import host

    stop: dict[str, Any] = {"requested": False, "campaign": None}

    def on_sigint(signum: int, frame: Any) -> None:
        stop["requested"] = True
        if stop["campaign"] is not None:
            stop["campaign"].stop_requested = True

    signal.signal(signal.SIGINT, on_sigint)
    registry = host.load(spec.plugin_files)
    tag = f"[w{spec.index}]"

    def report(f: Finding, first: bool) -> None:
        if first:
            print(f"{tag} {f.describe()}", flush=True)

    campaign = Campaign(
        registry, spec.subsystem, registry.policy(spec.subsystem, spec.policy, spec.without),
        registry.device(spec.subsystem, spec.device), seed=derive_seed(spec.seed, 1000 + spec.index),
        max_examples=spec.max_examples, time_budget=spec.time_budget, step_count=spec.step_count,
        corpus_dir=spec.corpus_dir, accept_tainted=spec.accept_tainted,
        database=open_database(spec.db), on_finding=report, search=spec.search,
    )
    stop["campaign"] = campaign
    if stop["requested"]:
        return None
    campaign.stop_requested = bool(stop["requested"])
    return campaign.run()


def _worker_main(spec: WorkerSpec, results: Any) -> None:
    """Process entry point: run, then hand the result back (None if stopped before starting)."""
    results.put((spec.index, _worker(spec)))


def run_workers(specs: list[WorkerSpec]) -> Result:
    """Run campaigns in parallel processes and merge their results.

    Workers share the corpus directory: files are written atomically and named
    by signature, so two workers finding the same bug write one file.  A
    terminal's Ctrl-C reaches every worker; a SIGINT sent to this process
    alone (``timeout -s INT``, a CI cancel) is forwarded to them.  Either way
    each worker saves, polishes and reports what it found.
    """
    import multiprocessing
    import queue

    mp = multiprocessing.get_context("fork")
    inbox: Any = mp.Queue()
    procs = [mp.Process(target=_worker_main, args=(s, inbox), daemon=True) for s in specs]
    started = time.monotonic()
    for p in procs:
        p.start()
    got: dict[int, Result | None] = {}
    interrupted = False
    while len(got) < len(procs):
        try:
            index, result = inbox.get(timeout=0.2)
            got[index] = result
        except queue.Empty:
            if not any(p.is_alive() for p in procs) and inbox.empty():
                break  # a worker died without reporting; its findings are on disk
        except KeyboardInterrupt:
            if not interrupted:
                for p in procs:
                    if p.is_alive() and p.pid is not None:
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(p.pid, signal.SIGINT)
            interrupted = True
    for p in procs:
        p.join(timeout=5)
    results = [r for r in got.values() if r is not None]
    if not results:
        raise KeyboardInterrupt
    merged: dict[str, Finding] = {}
    for r in results:
        for sig, f in r.findings.items():
            if sig not in merged or simplicity(f.steps) < simplicity(merged[sig].steps):
                merged[sig] = f
    accepted = tuple(sorted({s for r in results for s in r.accepted}))
    return Result(
        merged, sum(r.sequences for r in results), sum(r.steps for r in results),
        time.monotonic() - started, specs[0].seed, sum(r.rounds for r in results),
        sum(r.runs for r in results), interrupted or any(r.interrupted for r in results), accepted,
        max(r.behaviours for r in results), results[0].search,
    )
