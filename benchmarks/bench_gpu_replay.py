"""GPU replay cost against sequence length: CPU seconds of ``ptfuzz replay`` on one N-step corpus file.

A replay must be linear in its steps: a step's work may depend on what the
device holds, so the model bounds what it holds (``ptfuzz_gpu.kernel``'s
``MAX_*`` limits) and the executor diffs only what a step can have changed.
Before the limits, 5k / 10k / 20k steps took 0.51 / 1.34 / 4.90 s here (x9.6
for x4 steps), after them 0.30 / 0.61 / 1.31 s (x4.4).  The file is
written as ``ptfuzz run`` would write a finding (``fuzzer.corpus.write``),
from a seeded sequence of every command and kernel action
(``bench_executor.make_steps``), then loaded and replayed as
``ptfuzz replay`` does.

    python benchmarks/bench_gpu_replay.py [--steps 5000,10000,20000] [--policy permissive]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import hide_from_hypothesis
from bench_executor import make_steps

from fuzzer import corpus, host
from fuzzer.replay import replay

SUBSYSTEM = "gpu"
SIZES = (5_000, 10_000, 20_000)


def write_file(reg: host.Registry, directory: Path, n: int, policy: str, device: str, seed: int = 0) -> Path:
    """A corpus file of ``n`` gpu steps (the violation is a placeholder: only the replay's cost is measured)."""
    ex = reg.executor(SUBSYSTEM, reg.policy(SUBSYSTEM, policy), reg.device(SUBSYSTEM, device))
    steps = make_steps(ex, n, seed)
    sig = f"bench:{SUBSYSTEM}:none:none"
    entry = corpus.Entry(SUBSYSTEM, device, policy, tuple(steps),
                         {"invariant": "bench", "step": n, "field": "none", "severity": "hole",
                          "message": "benchmark sequence", "signature": sig},
                         plugins=reg.plugin_versions(SUBSYSTEM))
    path = directory / f"gpu-{n}.json"
    corpus.write(path, entry, ex.payload_of)
    return path


def run(sizes: tuple[int, ...] = SIZES, policy: str = "permissive", device: str = "spec") -> dict[str, Any]:
    """CPU seconds to load and replay one file of each size (``time.process_time``: other load does not count)."""
    hide_from_hypothesis()
    reg = host.load()
    seconds: dict[int, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            path = write_file(reg, Path(tmp), n, policy, device)
            t = time.process_time()
            replay(reg, corpus.load(path))
            seconds[n] = time.process_time() - t
    return {"policy": policy, "device": device, "seconds": seconds}


def report(r: dict[str, Any]) -> str:
    s = r["seconds"]
    sizes = sorted(s)
    per = ", ".join(f"{n:,}: {s[n]:.2f} s ({s[n] / n * 1e6:.0f} us/step)" for n in sizes)
    growth = s[sizes[-1]] / s[sizes[0]] if s[sizes[0]] else float("nan")
    return (f"gpu replay CPU time ({r['policy']}/{r['device']}): {per}; "
            f"x{growth:.1f} for x{sizes[-1] / sizes[0]:g} steps (linear: x{sizes[-1] / sizes[0]:g})")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--steps", default=",".join(str(n) for n in SIZES), help="comma-separated sequence lengths")
    ap.add_argument("--policy", default="permissive")
    ap.add_argument("--device", default="spec")
    a = ap.parse_args(argv)
    r = run(tuple(int(n) for n in a.steps.split(",")), a.policy, a.device)
    print(report(r))
    return r


if __name__ == "__main__":
    main()
