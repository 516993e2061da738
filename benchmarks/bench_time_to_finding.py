"""Time to first finding and minimized length on planted holes (a policy with one rule removed).

For each hole a ``Campaign`` runs with a fixed seed and ``max_examples``; the
``on_finding`` callback records when the first finding arrived (its
``found_at``, seconds since the campaign started) and every finding's
length.  Some policies have findings even when intact (linux-raw taints and
lets RAW_ALLOW_ALL callers through), so the first finding the intact policy
does *not* reproduce on the finding's minimized steps is reported too: that is
the time to find the planted hole itself.  Also reported: the number of
distinct signatures and the shortest minimized sequence over all findings.

    python benchmarks/bench_time_to_finding.py [--examples 2000] [--seed 1] [--budget 30]
"""

from __future__ import annotations

import argparse
import time

import attrs
from _common import hide_from_hypothesis

from fuzzer import host
from fuzzer.campaign import Campaign, Finding

SUBSYSTEM = "cxl"

HOLES: tuple[tuple[str, str, str], ...] = (
    ("linux-ioctl", "spec", "immediate-flag"),
    ("linux-ioctl", "spec", "exclusive-cmds"),
    ("linux-ioctl", "spec", "sanitize-decoders"),
    ("linux-fwctl", "spec", "exclusive-features"),
    ("linux-fwctl", "vendor", "set-feature-immediate-scope"),
    ("linux-raw", "spec", "raw-lockdown"),
    ("linux-raw", "spec", "disabled-raw-commands"),
)


@attrs.define
class HoleResult:
    policy: str
    device: str
    rule: str
    first_s: float | None = None
    first_seqs: int | None = None
    first_len: int | None = None
    first_sig: str = ""
    hole_s: float | None = None
    hole_seqs: int | None = None
    hole_len: int | None = None
    hole_sig: str = ""
    shortest: int | None = None
    signatures: int = 0
    elapsed: float = 0.0
    sequences: int = 0
    steps: int = 0
    interrupted: bool = False


def run_hole(reg: host.Registry, policy: str, device: str, rule: str, *, seed: int, max_examples: int,
             budget: float | None) -> HoleResult:
    out = HoleResult(policy, device, rule)
    dev = reg.device(SUBSYSTEM, device)
    intact = reg.executor(SUBSYSTEM, reg.policy(SUBSYSTEM, policy), dev)

    def attributable(finding: Finding) -> bool:
        """The intact policy does not reproduce the finding on its minimized steps."""
        return not any(v.signature == finding.signature
                       for res in intact.run(finding.steps) for v in res.violations)

    def on_finding(finding: Finding, first: bool) -> None:
        if out.first_s is None:
            out.first_s, out.first_seqs = finding.found_at, finding.sequences
            out.first_len, out.first_sig = len(finding.steps), finding.signature
        if out.hole_s is None and attributable(finding):
            # A shrunk replacement keeps its first sighting's found_at; time it from now.
            now, seqs = (finding.found_at, finding.sequences) if first else (
                time.monotonic() - c.started, c.sequences)
            out.hole_s, out.hole_seqs = now, seqs
            out.hole_len, out.hole_sig = len(finding.steps), finding.signature
        n = len(finding.steps)
        out.shortest = n if out.shortest is None else min(out.shortest, n)

    c = Campaign(reg, SUBSYSTEM, reg.policy(SUBSYSTEM, policy, without=(rule,)), dev,
                 seed=seed, max_examples=max_examples, time_budget=budget, corpus_dir=None,
                 on_finding=on_finding)
    r = c.run()
    out.signatures = len(r.findings)
    out.elapsed, out.sequences, out.steps = r.elapsed, r.sequences, r.steps
    out.interrupted = r.interrupted or r.sequences < max_examples
    return out


def run(max_examples: int = 2000, seed: int = 1, budget: float | None = None) -> list[HoleResult]:
    hide_from_hypothesis()
    reg = host.load()
    return [run_hole(reg, p, d, rule, seed=seed, max_examples=max_examples, budget=budget) for p, d, rule in HOLES]


def _f(x: float | int | None, fmt: str) -> str:
    return "-" if x is None else format(x, fmt)


def report(results: list[HoleResult], max_examples: int, seed: int, budget: float | None) -> str:
    cap = f", budget {budget:g} s/hole" if budget else ""
    lines = [
        f"time to first finding (seed {seed}, max_examples={max_examples}{cap}):",
        f"  {'policy/device ~ removed rule':<48} {'first s':>7} {'seqs':>4} {'len':>3} {'hole s':>7} "
        f"{'seqs':>4} {'len':>3} {'min len':>7} {'sigs':>4} {'total s':>7}  first hole signature",
    ]
    for r in results:
        name = f"{r.policy}/{r.device} ~ {r.rule}"
        lines.append(
            f"  {name:<48} {_f(r.first_s, '.3f'):>7} {_f(r.first_seqs, 'd'):>4} {_f(r.first_len, 'd'):>3} "
            f"{_f(r.hole_s, '.3f'):>7} {_f(r.hole_seqs, 'd'):>4} {_f(r.hole_len, 'd'):>3} "
            f"{_f(r.shortest, 'd'):>7} {r.signatures:>4} {r.elapsed:>7.2f}{'*' if r.interrupted else ' '} {r.hole_sig or 'MISSED'}"
        )
    lines.append("  first: first finding of any kind; hole: first finding (or shrunk replacement) that the intact"
                 " policy does not reproduce on its minimized steps;")
    lines.append("  min len: shortest minimized finding; sigs: distinct signatures; * = stopped by the time budget")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[HoleResult]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--examples", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--budget", type=float, default=None, help="time budget per hole, seconds")
    a = ap.parse_args(argv)
    results = run(a.examples, a.seed, a.budget)
    print(report(results, a.examples, a.seed, a.budget))
    return results


if __name__ == "__main__":
    main()
