"""The fuzzer must find each planted hole and shrink it to the known shortest sequence.

Each case removes exactly one check from a Linux policy, runs a seeded
campaign, and asserts the signature the hole opens, the length and ops of the
saved sequence, that it is 1-minimal, and that the intact policy closes it.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from planted import HOLES

from fuzzer import corpus
from fuzzer.campaign import Campaign
from fuzzer.host import Registry
from fuzzer.minimize import is_one_minimal, simplify
from fuzzer.replay import replay

CASES = [pytest.param(*h[:6], h.deep, h.budget, id=h.test_id) for h in HOLES]


@pytest.mark.parametrize(("subsystem", "policy", "device", "rule", "signature", "ops", "deep", "budget"), CASES)
def test_planted_hole_is_found_and_shrunk(
    registry: Registry, tmp_path: Path, subsystem: str, policy: str, device: str, rule: str, signature: str,
    ops: list[str], deep: bool, budget: int,
) -> None:
    holed = registry.policy(subsystem, policy, without=(rule,))
    # a deep (4-step) hole takes the native search 10^3-10^5 sequences (benchmarks/hard_bugs.py)
    campaign = Campaign(registry, subsystem, holed, registry.device(subsystem, device), seed=20261121,
                        max_examples=150_000 if deep else (budget or 1500), corpus_dir=tmp_path,
                        targets=frozenset({signature}))
    result = campaign.run()
    assert signature in result.findings, sorted(result.findings)
    finding = result.findings[signature]
    (hole,) = [h for h in HOLES if (h.subsystem, h.policy, h.device, h.rule, h.signature, h.ops)
               == (subsystem, policy, device, rule, signature, ops)]
    assert hole.matches([s.op for s in finding.steps]), [s.op for s in finding.steps]
    assert is_one_minimal(campaign.executor, finding.steps, signature)
    # and as plain as it gets: no caller or argument can be simplified further
    assert simplify(campaign.executor, finding.steps, signature) == finding.steps

    # The saved file round-trips and replays to the same verdict...
    assert finding.path is not None
    entry = corpus.load(finding.path)
    assert entry.without == (rule,)
    assert replay(registry, entry).still_fails
    # ...and the intact policy closes it: the removed check is what made the hole.
    assert not replay(registry, entry, policy=policy, without=()).still_fails

