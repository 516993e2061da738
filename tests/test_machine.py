"""The Hypothesis search: still selectable in campaigns, and usable from a user's own tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import settings
from hypothesis.stateful import run_state_machine_as_test

from fuzzer import campaign as campaign_mod
from fuzzer.campaign import Campaign
from fuzzer.host import Registry
from fuzzer.machine import ViolationFound, state_machine
from fuzzer.minimize import is_one_minimal

SIG = "kernel-owned-integrity:cxl:SET_LSA:lsa"


@pytest.fixture
def no_local_constants(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep a derandomized run independent of which plugins are installed.

    Hypothesis (6.1xx) mixes literals mined from every loaded local module into
    its draws; loading one more plugin (the gpu one did) changes this test's
    draws, and with them how far its shrinker gets within the budget.
    """
    from hypothesis.internal.conjecture import providers

    if hasattr(providers, "_get_local_constants") and hasattr(providers, "Constants"):
        monkeypatch.setattr(providers, "_get_local_constants", lambda: providers.Constants())


@pytest.mark.usefixtures("no_local_constants")
def test_users_own_hypothesis_test_finds_a_planted_hole(registry: Registry) -> None:
    machine = state_machine("cxl", "linux-ioctl", without=("exclusive-cmds",), registry=registry)
    # 1,500: since the model has 7.3.4's sanitize busy gate, a sequence that sanitizes early answers
    # -EBUSY to every later command, and Hypothesis's derandomized draws need more sequences
    with pytest.raises(ViolationFound) as exc:
        run_state_machine_as_test(machine, settings=settings(max_examples=1500, derandomize=True, database=None,
                                                             stateful_step_count=20, report_multiple_bugs=False))
    # the hole lets userspace at both commands the bound nvdimm holds exclusively
    found = exc.value.violation.signature
    assert found in (SIG, "kernel-owned-integrity:cxl:SET_SHUTDOWN_STATE:shutdown_state")
    # Hypothesis shrank it to the known two steps
    assert [s.op for s in exc.value.steps] == ["nvdimm_bind", found.split(":")[2]]


def test_users_own_hypothesis_test_passes_on_the_intact_policy(registry: Registry) -> None:
    machine = state_machine("cxl", "linux-ioctl", registry=registry)
    run_state_machine_as_test(machine, settings=settings(max_examples=60, derandomize=True, database=None))


def test_hypothesis_search_is_selectable_and_minimizes(registry: Registry, tmp_path: Path) -> None:
    c = Campaign(registry, "cxl", registry.policy("cxl", "linux-ioctl", without=("exclusive-cmds",)),
                 registry.device("cxl", "spec"), seed=3, max_examples=1500, corpus_dir=tmp_path,
                 targets=frozenset({SIG}), search="hypothesis")
    result = c.run()
    assert SIG in result.findings
    steps = result.findings[SIG].steps
    assert [s.op for s in steps] == ["nvdimm_bind", "SET_LSA"]
    assert is_one_minimal(c.executor, steps, SIG)
    assert result.behaviours == 0  # only the native search counts behaviours


def test_hypothesis_rounds_are_bounded_for_memory(registry: Registry, monkeypatch: pytest.MonkeyPatch) -> None:
    # A fresh Hypothesis runner every ROUND_EXAMPLES test cases: its caches die with it.
    monkeypatch.setattr(campaign_mod, "ROUND_EXAMPLES", 40)
    result = Campaign(registry, "cxl", registry.policy("cxl", "linux-fwctl"), registry.device("cxl", "spec"),
                      seed=1, max_examples=130, search="hypothesis").run()
    assert result.rounds >= 3
    assert result.sequences >= 130


def test_a_users_hypothesis_test_does_not_steer_a_later_campaign(registry: Registry, tmp_path: Path) -> None:
    """Hypothesis caches the literals it mixes into draws process-wide; a round must not inherit them.

    A user's own (derandomized) Hypothesis test run earlier in the same process used to leave its
    pool of local constants in Hypothesis's cache, and a seeded campaign after it drew differently:
    in the full test suite, tests/test_sizes.py's Hypothesis campaign then missed its finding.
    """
    sig = "out-of-bounds:cxl:cxl_payload_from_user_allowed:payload_in"

    def run(where: Path) -> tuple[int, list[object]]:
        result = Campaign(registry, "cxl", registry.policy("cxl", "linux-raw-unsized-payload"),
                          registry.device("cxl", "spec"), seed=2, max_examples=400, corpus_dir=where,
                          search="hypothesis", targets=frozenset({sig})).run()
        return result.sequences, [s.args for s in result.findings[sig].steps] if sig in result.findings else []

    before = run(tmp_path / "a")
    machine = state_machine("cxl", "linux-ioctl", registry=registry)
    run_state_machine_as_test(machine, settings=settings(max_examples=60, derandomize=True, database=None))
    assert run(tmp_path / "b") == before


def test_a_parameter_named_target_is_an_argument_not_the_rules_bundle(registry: Registry, tmp_path: Path) -> None:
    """gpu's ``AMDGPU_SCHED`` has a ``target`` (the other process's fd): issue 20's exit 3.

    Hypothesis's ``rule(targets=..., target=..., **strategies)`` read the strategy as the rule's
    output bundle and refused the class ("Passing both targets=(Bundle(name=''),) and
    target=..."), so ``ptfuzz run gpu --policy linux-drm --search hypothesis`` died at once.
    A command that produces nothing must not add its result to a bundle named ``''`` either.
    """
    machine = state_machine("gpu", "linux-drm", registry=registry)
    rules = {name: fn.hypothesis_stateful_rule for name, fn in vars(machine).items()
             if hasattr(fn, "hypothesis_stateful_rule")}
    sched = rules["gpu_render__SCHED"]
    assert sched.targets == () and set(sched.arguments) == {"caller", "file", "target_", "priority"}
    assert rules["gpu_render__GEM_CREATE"].targets == ("bos",)  # Hypothesis keeps the bundles' names
    assert all(name for r in rules.values() for name in r.targets)
    result = Campaign(registry, "gpu", registry.policy("gpu", "linux-drm"), registry.device("gpu", "spec"),
                      seed=1, max_examples=60, corpus_dir=tmp_path, search="hypothesis").run()
    assert result.sequences >= 60 and not result.findings
