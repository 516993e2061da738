"""Run every ptfuzz benchmark with budgets that fit in about two minutes on two cores.

    python benchmarks/run_all.py [--quick]
"""

from __future__ import annotations

import argparse
import platform
import time

import bench_executor
import bench_gpu_replay
import bench_overhead
import bench_time_to_finding
import hypothesis

import fuzzer


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--quick", action="store_true", help="smaller budgets (smoke test, ~30 s)")
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args(argv)
    examples, reps, ttf_budget = (150, 1, 3.0) if a.quick else (400, 3, 12.0)
    ttf_examples = 2000

    print(f"ptfuzz {fuzzer.__version__}, hypothesis {hypothesis.__version__}, "
          f"python {platform.python_version()}, {platform.machine()}\n")
    t0 = time.perf_counter()
    ex = bench_executor.run(n_steps=2000, reps=7 if not a.quick else 3)
    print(bench_executor.report(ex), "\n", flush=True)
    rdma = bench_executor.run(policy="permissive", device="lax", n_steps=2000, reps=7 if not a.quick else 3,
                              subsystem="rdma")
    print(bench_executor.report(rdma), "\n", flush=True)
    gpu = bench_gpu_replay.run((2_000, 5_000) if a.quick else bench_gpu_replay.SIZES)
    print(bench_gpu_replay.report(gpu), "\n", flush=True)
    ov = bench_overhead.run(max_examples=examples, reps=reps, seed=a.seed)
    print(bench_overhead.report(ov), "\n", flush=True)
    ttf = bench_time_to_finding.run(max_examples=ttf_examples, seed=a.seed, budget=ttf_budget)
    print(bench_time_to_finding.report(ttf, ttf_examples, a.seed, ttf_budget), "\n")

    rows = [
        ("executor replay, 20-step seqs", f"{ex['steps_per_s']:,.0f} steps/s"),
        ("executor replay, one long seq", f"{ex['long_steps_per_s']:,.0f} steps/s"),
        ("executor replay, rdma permissive/lax, 20-step seqs", f"{rdma['steps_per_s']:,.0f} steps/s"),
        ("gpu replay CPU s by steps", ", ".join(f"{n // 1000}k: {t:.2f}" for n, t in sorted(gpu["seconds"].items()))),
        ("ptfuzz native search (linux-fwctl/spec)", f"{ov['rates']['native']:,.0f} steps/s  "
                                                    f"(x{ov['ratio_native']:.1f} of the Hypothesis search)"),
        ("ptfuzz Hypothesis search (linux-fwctl/spec)", f"{ov['rates']['ptfuzz']:,.0f} steps/s"),
        ("bare Hypothesis machine", f"{ov['rates']['bare']:,.0f} steps/s  (x{ov['ratio']:.2f} of ptfuzz)"),
    ]
    for r in ttf:
        hole = "missed" if r.hole_s is None else f"{r.hole_s:.2f} s, len {r.hole_len}"
        rows.append((f"{r.policy}/{r.device} ~ {r.rule}",
                     f"first {bench_time_to_finding._f(r.first_s, '.2f')} s, hole {hole}, min len "
                     f"{bench_time_to_finding._f(r.shortest, 'd')}"))
    width = max(len(k) for k, _ in rows)
    print("summary")
    for k, v in rows:
        print(f"  {k:<{width}}  {v}")
    print(f"\ntotal {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
