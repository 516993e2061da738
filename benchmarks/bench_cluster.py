"""Sequences per second against the number of Dask workers, and what a task costs (issue 21).

Three ways to run the same search (the native search on cxl linux-fwctl/spec,
which finds nothing there, so no time goes to minimizing), each for
``--seconds``:

* **in-process**: ``Campaign.run`` in this process (``ptfuzz run`` without
  ``--workers``);
* **dask 1 / dask 2**: ``fuzzer.cluster.Engine`` on a ``LocalCluster`` of 1 and
  2 worker processes (one thread each), slices of ``--slice`` seconds, the
  entry's time ``seconds × workers`` (what ``run --workers N --time S`` does).

Sequences per second are counted over the run's wall time from the first
submitted slice (cluster start-up excluded, reported apart).  The per-task
overhead, which is what limits more workers on one machine and sets the
shortest useful slice:

* **empty task**: the round trip of a task that does nothing (median of 50);
* **slice start-up**: a one-sequence slice's round trip (registry cached in the
  worker, a Campaign built, one sequence, the result shipped back);
* **per slice**: each timed slice's round trip minus the seconds its campaign ran.

    python benchmarks/bench_cluster.py [--seconds 10] [--slice 5] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import time
from typing import Any

from fuzzer import host
from fuzzer.campaign import Campaign
from fuzzer.cluster import Engine
from fuzzer.shared import Shared
from fuzzer.slices import Entry, Slice, run_slice

SUBSYSTEM, POLICY, DEVICE = "cxl", "linux-fwctl", "spec"


def entry(seconds: float | None, streams: int, max_examples: int | None = None) -> Entry:
    return Entry(index=0, label=f"{SUBSYSTEM} {POLICY} {DEVICE}", plugin_files=(), subsystem=SUBSYSTEM,
                 policy=POLICY, without=(), knobs=(), device=DEVICE, seed=1, step_count=None,
                 accept_tainted=False, search="native", seconds=seconds, max_examples=max_examples,
                 streams=streams)


def in_process(registry: Any, seconds: float) -> dict[str, Any]:
    c = Campaign(registry, SUBSYSTEM, registry.policy(SUBSYSTEM, POLICY), registry.device(SUBSYSTEM, DEVICE),
                 seed=1, time_budget=seconds)
    r = c.run()
    return {"workers": 0, "sequences": r.sequences, "steps": r.steps, "wall": r.elapsed,
            "sequences_per_s": r.sequences / r.elapsed, "findings": len(r.findings)}


def noop() -> int:
    return os.getpid()


def on_dask(registry: Any, workers: int, seconds: float) -> dict[str, Any]:
    t0 = time.monotonic()
    engine = Engine(None, workers)
    engine.start()
    startup = time.monotonic() - t0
    try:
        client = engine.client
        client.submit(noop, pure=False).result()  # warm
        trips = []
        for _ in range(50):
            t = time.monotonic()
            client.submit(noop, pure=False).result()
            trips.append(time.monotonic() - t)
        first = Slice(entry=entry(None, 1, 1), number=0, seconds=None, max_examples=1, deadline=None, known=(),
                      db=None, run_id="bench", scope="bench")
        client.submit(run_slice, first, pure=False).result()  # loads the plugins in that worker
        starts = []
        for n in range(10):
            t = time.monotonic()
            client.submit(run_slice, attrs_evolve(first, number=n + 1), pure=False).result()
            starts.append(time.monotonic() - t)
        t = time.monotonic()
        got, _ = engine.run(registry, [entry(seconds * workers, workers)], deadline=time.time() + seconds,
                            db=None, corpus_dir=None, shared=Shared(None), on_found=lambda *a: None)
        wall = time.monotonic() - t
        r = got[0]
        gaps = [rt - ran for rt, ran in engine.round_trips]
    finally:
        engine.close()
    return {"workers": workers, "sequences": r.sequences, "steps": r.steps, "wall": wall,
            "sequences_per_s": r.sequences / wall, "findings": len(r.findings), "cluster_startup": startup,
            "slices": len(engine.round_trips), "empty_task_ms": 1000 * statistics.median(trips),
            "slice_startup_ms": 1000 * statistics.median(starts),
            "per_slice_overhead_ms": 1000 * statistics.median(gaps) if gaps else None}


def attrs_evolve(s: Slice, **changes: Any) -> Slice:
    import attrs

    return attrs.evolve(s, **changes)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--slice", type=float, default=None, help="seconds per slice (default: fuzzer.slices')")
    ap.add_argument("--json", help="write the figures here")
    a = ap.parse_args()
    if a.slice is not None:
        import fuzzer.cluster

        fuzzer.cluster.SLICE_SECONDS = a.slice  # read by the client when it cuts slices
    logging.getLogger("distributed").setLevel(logging.CRITICAL)
    registry = host.load()
    rows = [in_process(registry, a.seconds), on_dask(registry, 1, a.seconds), on_dask(registry, 2, a.seconds)]
    base = rows[0]["sequences_per_s"]
    print(f"cxl {POLICY}/{DEVICE}, native search, {a.seconds:g} s each, load before "
          f"{os.getloadavg()[0]:.2f}, {os.cpu_count()} CPUs")
    print(f"{'engine':<12}{'sequences':>11}{'seq/s':>9}{'x in-proc':>11}{'slices':>8}{'start-up':>10}"
          f"{'empty task':>12}{'slice start':>13}{'per slice':>11}")
    for r in rows:
        name = "in-process" if r["workers"] == 0 else f"dask {r['workers']}"
        extra = ("" if r["workers"] == 0 else
                 f"{r['slices']:>8}{r['cluster_startup']:>9.2f}s{r['empty_task_ms']:>10.1f}ms"
                 f"{r['slice_startup_ms']:>11.1f}ms{r['per_slice_overhead_ms']:>9.1f}ms")
        print(f"{name:<12}{r['sequences']:>11,}{r['sequences_per_s']:>9,.0f}{r['sequences_per_s'] / base:>10.2f}x"
              + extra)
    if a.json:
        with open(a.json, "w", encoding="utf-8") as fh:
            json.dump({"seconds": a.seconds, "rows": rows}, fh, indent=2)


if __name__ == "__main__":
    main()
