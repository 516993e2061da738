"""``benchmarks/hard_bugs.py`` runs end to end on one short hole, so it cannot silently rot.

Two seeds, a 2 s budget: the random walk must find a one-step hole (it takes
milliseconds), every campaign mode ``Campaign`` offers runs, the table has
the hole's rows and the JSON holds every run.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from planted import HOLES

from fuzzer.campaign import Campaign
from fuzzer.executor import StepResult
from fuzzer.world import Step

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import hard_bugs  # benchmarks/ is not a package: found through sys.path


def test_hard_bugs_benchmark_on_a_one_step_hole(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    hole = next(h for h in HOLES if h.subsystem == "cxl" and h.device == "spec" and len(h.ops) == 1)
    name = hard_bugs.label(hole)
    out = tmp_path / "runs.json"
    hard_bugs.main(["--holes", name, "--seeds", "1-2", "--budget", "2", "--json", str(out)])
    text = capsys.readouterr().out

    doc = json.loads(out.read_text())
    modes = [*hard_bugs.campaign_modes(), hard_bugs.WALK]
    assert doc["modes"] == modes
    assert {(r["hole"], r["mode"], r["seed"]) for r in doc["runs"]} == {
        (name, m, s) for m in modes for s in (1, 2)}
    walk = [r for r in doc["runs"] if r["mode"] == hard_bugs.WALK]
    assert all(r["found"] and r["time_s"] < 2 and r["ops"] == hole.ops for r in walk), walk
    # the hole's row, first mode on it, then one row per other mode
    row = next(line for line in text.splitlines() if name in line)
    assert f"({len(hole.ops)} ops)" in row and modes[0] in row
    assert "targets (issue 7):" in text


def test_random_walk_draws_only_runnable_steps() -> None:
    """Handles come from earlier replies and channels are the policy's: every step validates."""
    reg = hard_bugs.load_registry()
    ex = reg.executor("rdma", reg.policy("rdma", "linux-devx"), reg.device("rdma", "lax"))
    seen: list[Step] = []
    apply = ex.apply

    def record(step: Step) -> StepResult:
        seen.append(step)
        return apply(step)

    ex.apply = record  # type: ignore[method-assign]
    run = hard_bugs.random_walk(ex, "no-such-signature", seed=3, budget=0.3)
    assert not run.found and run.time_s == 0.3 and run.sequences > 1
    assert all(ex.validate(s) is None for s in seen)
    # handle-taking methods ran, so handles flowed from ALLOC_UCONTEXT and the creates
    assert {"ALLOC_UCONTEXT", "CLOSE", "OBJ_DESTROY", "OBJ_MODIFY$general"} <= {s.op for s in seen}
    assert {s.channel for s in seen} == {"", "rdma.devx"}  # linux-devx opens DEVX only


def test_search_mode_is_passed_only_to_a_campaign_that_takes_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """Today's Campaign runs only its Hypothesis search; one with ``search=`` gets every mode."""
    import inspect

    if "search" not in inspect.signature(Campaign).parameters:
        assert hard_bugs.campaign_modes() == ["hypothesis"]
        assert hard_bugs.search_kwargs("hypothesis") == {}
        with pytest.raises(SystemExit, match="no search="):
            hard_bugs.search_kwargs("native")

    class WithSearch(Campaign):
        def __init__(self, *args: object, search: str = "native", **kw: object) -> None:
            raise AssertionError("not constructed here")

    monkeypatch.setattr(hard_bugs, "Campaign", WithSearch)
    assert hard_bugs.campaign_modes() == ["native", "hypothesis"]
    assert hard_bugs.search_kwargs("hypothesis") == {"search": "hypothesis"}
