"""Engine behaviour on the toy subsystem: a CXL or RDMA fidelity fix cannot break these."""

from __future__ import annotations

from pathlib import Path

import pytest
import toy

from fuzzer import corpus, host
from fuzzer.campaign import Campaign
from fuzzer.minimize import is_one_minimal
from fuzzer.replay import replay

MTU = "kernel-owned-integrity:toy:SET_MTU:link.mtu"
FLAP = "kernel-owned-integrity:toy:FLAP_PORT:port"


@pytest.fixture(scope="module")
def reg() -> host.Registry:
    return host.load(extra=[toy])


def holed(reg: host.Registry, tmp: Path | None, **kw: object) -> Campaign:
    kw.setdefault("seed", 3)
    kw.setdefault("max_examples", 400)
    return Campaign(reg, "toy", reg.policy("toy", "toy-linux", ("remtu", "flap-root")), reg.device("toy", None),
                    corpus_dir=tmp, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("search", ["native", "hypothesis"])
def test_every_distinct_violation_is_found_minimal_and_saved(reg: host.Registry, tmp_path: Path,
                                                            search: str) -> None:
    c = holed(reg, tmp_path, search=search)
    result = c.run()
    assert set(result.findings) == {MTU, FLAP, FLAP + ":trusted"}
    assert [s.op for s in result.findings[MTU].steps] == ["SET_MTU"]
    assert [s.op for s in result.findings[FLAP].steps] == ["scan", "FLAP_PORT"]  # the scan publishes the port
    assert [f.signature for f in result.failing()] == [FLAP, MTU]  # trusted does not fail
    files = sorted((tmp_path / "toy").glob("*.json"))
    assert len(files) == 3
    for f in files:
        entry = corpus.load(f)
        assert is_one_minimal(c.executor, entry.steps, entry.signature)
        assert replay(reg, entry).still_fails


def test_same_seed_same_files(reg: host.Registry, tmp_path: Path) -> None:
    holed(reg, tmp_path / "a").run()
    holed(reg, tmp_path / "b").run()
    a = sorted((tmp_path / "a" / "toy").glob("*.json"))
    assert a
    for f in a:
        assert f.read_bytes() == (tmp_path / "b" / "toy" / f.name).read_bytes()


def test_ctrl_c_keeps_every_violation_seen(reg: host.Registry, tmp_path: Path) -> None:
    def interrupt(finding: object, first: bool) -> None:
        raise KeyboardInterrupt

    result = holed(reg, tmp_path, on_finding=interrupt).run()
    assert result.interrupted
    files = sorted((tmp_path / "toy").glob("*.json"))
    assert files and {corpus.load(f).signature for f in files} == set(result.findings)


def test_time_budget_and_targets_end_the_campaign(reg: host.Registry) -> None:
    r = Campaign(reg, "toy", reg.policy("toy", "toy-linux"), reg.device("toy", None), seed=1,
                 time_budget=0.5).run()
    assert r.sequences > 10 and r.elapsed < 10
    r = holed(reg, None, max_examples=10**6, targets=frozenset({MTU})).run()
    assert MTU in r.findings and r.sequences < 10**6


def test_a_command_that_produces_nothing_publishes_to_no_bundle() -> None:
    """``produces=""`` is no bundle for the native search, as for the Hypothesis machine (issue 20's crash)."""
    from fuzzer.explore import _targets
    assert _targets("") == () and _targets(("", "files")) == ("files",) and _targets("bos") == ("bos",)
