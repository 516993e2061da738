"""The bounded proof's cost (issue 20): intact CXL policies to depth 3, and the planted holes at their minimum.

Two parts, each a table:

* **proofs**: ``prove`` on each intact policy (default ``linux-ioctl``,
  ``linux-fwctl``, ``linux-raw`` on the ``spec`` device) to ``--depth``:
  outcome, states, transitions, steps the executor ran (``applied``; the rest
  were judged by their step class, ``fuzzer.watched``), wall and CPU seconds.
  ``--reference`` runs each also with ``callers="each"`` (every step run), in
  the same process, and prints the CPU ratio.  ``--jobs N`` splits each
  level over N forked processes (default: the CPUs available; the answer is
  the same for any N, the CPU seconds include the workers'); the load average
  is printed with each row, as wall seconds on a shared machine depend on it;
* **holes**: every planted hole (``tests/planted.py``) of at most
  ``--hole-depth`` steps on a device the registry has, proved at its known
  length with only its signature counted (``targets``): found at that length
  is "at minimum"; anything else is printed as it is.

The target (issue 20): each proof under a minute, every hole at its minimum.
A proof that hits ``--time`` is reported as incomplete with the depth it
covered, not left out.

    python benchmarks/bench_prove.py [--policies linux-ioctl,linux-fwctl,linux-raw] [--depth 3]
        [--time 900] [--jobs N] [--reference] [--hole-depth 4] [--no-holes] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from _common import HERE, hide_from_hypothesis

sys.path.insert(0, str(HERE.parent / "tests"))
from hard_bugs import has_device, holed_policy, load_registry
from planted import HOLES

from fuzzer.bounded import Proof, cpus, prove


def _row(proof: Proof) -> dict[str, Any]:
    return {"outcome": proof.outcome, "states": proof.states, "transitions": proof.transitions,
            "applied": proof.applied, "wall": round(proof.seconds, 1), "cpu": round(proof.cpu, 1),
            "levels": list(proof.levels), "complete_depth": proof.complete_depth, "reason": proof.reason,
            "load": round(os.getloadavg()[0], 1)}


def proofs(reg: Any, policies: list[str], device: str, depth: int, limit: float, reference: bool, jobs: int,
           ) -> list[dict[str, Any]]:
    """Each intact policy proved to ``depth`` (and, with ``reference``, the same running every step)."""
    rows = []
    print(f"{'policy':14} {'mode':8} {'outcome':11} {'states':>7} {'transitions':>12} {'applied':>10} "
          f"{'wall s':>7} {'CPU s':>7} {'jobs':>4} {'load':>5}")
    for name in policies:
        ex = reg.executor("cxl", reg.policy("cxl", name), reg.device("cxl", device))
        for mode in ("grouped", "each") if reference else ("grouped",):
            p = prove(ex, depth, time_limit=limit, callers=mode, jobs=jobs)
            row = {"policy": name, "device": device, "depth": depth, "mode": mode, "jobs": jobs, **_row(p)}
            rows.append(row)
            print(f"{name:14} {mode:8} {p.outcome:11} {p.states:7} {p.transitions:12} {p.applied:10} "
                  f"{p.seconds:7.1f} {p.cpu:7.1f} {jobs:4} {row['load']:5.1f}"
                  + (f"  ({p.reason}; complete to {p.complete_depth})" if p.outcome == "incomplete" else ""),
                  flush=True)
        if reference and rows[-1]["outcome"] == rows[-2]["outcome"] == "proved":
            print(f"{'':14} CPU each/grouped: {rows[-1]['cpu'] / max(rows[-2]['cpu'], 1e-9):.1f}x")
    return rows


def holes(reg: Any, max_depth: int, limit: float, jobs: int) -> list[dict[str, Any]]:
    """Every planted hole of at most ``max_depth`` steps, proved at its known length for its signature only."""
    rows = []
    for hole in HOLES:
        if len(hole.ops) > max_depth or not has_device(reg, hole):
            continue
        ex = reg.executor(hole.subsystem, holed_policy(reg, hole), reg.device(hole.subsystem, hole.device))
        started = time.monotonic()
        p = prove(ex, len(hole.ops), time_limit=limit, targets=frozenset({hole.signature}), jobs=jobs)
        at_minimum = p.outcome == "found" and len(p.steps) == len(hole.ops)
        rows.append({"hole": hole.name, "signature": hole.signature, "known": len(hole.ops),
                     "found": len(p.steps) if p.outcome == "found" else None, "at_minimum": at_minimum,
                     "ops": [s.op for s in p.steps], **_row(p)})
        verdict = "at minimum" if at_minimum else p.outcome
        print(f"{hole.name:58} {len(hole.ops)} steps: {verdict:10} {p.states:7} states {p.transitions:10} "
              f"transitions {time.monotonic() - started:6.1f}s ({p.cpu:.1f}s CPU, load {rows[-1]['load']})",
              flush=True)
    found = sum(r["at_minimum"] for r in rows)
    print(f"{found}/{len(rows)} planted holes of at most {max_depth} steps found at their known minimum")
    return rows


def main() -> None:
    hide_from_hypothesis()
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--policies", default="linux-ioctl,linux-fwctl,linux-raw")
    ap.add_argument("--device", default="spec")
    ap.add_argument("--depth", type=int, default=3)
    ap.add_argument("--time", type=float, default=900.0, help="time limit per proof (incomplete after it)")
    ap.add_argument("--reference", action="store_true", help="also run every step (callers='each'): the ratio")
    ap.add_argument("--jobs", type=int, default=cpus(), help="processes per proof (default: the CPUs available)")
    ap.add_argument("--hole-depth", type=int, default=4)
    ap.add_argument("--hole-time", type=float, default=300.0, help="time limit per planted hole")
    ap.add_argument("--no-holes", action="store_true")
    ap.add_argument("--no-proofs", action="store_true")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    reg = load_registry()
    doc: dict[str, Any] = {}
    if not args.no_proofs:
        doc["proofs"] = proofs(reg, [p for p in args.policies.split(",") if p], args.device, args.depth,
                               args.time, args.reference, args.jobs)
    if not args.no_holes:
        doc["holes"] = holes(reg, args.hole_depth, args.hole_time, args.jobs)
    if args.json:
        args.json.write_text(json.dumps(doc, indent=2) + "\n")


if __name__ == "__main__":
    main()
