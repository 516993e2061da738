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


def test_issue_20_targets_are_judged_on_sequences_by_depth() -> None:
    """The depth lines: deep holes on every seed within 10 s, and the geometric mean of sequence ratios."""
    deep = next(h for h in HOLES if len(h.ops) == 4)
    mid = next(h for h in HOLES if len(h.ops) == 3)
    shallow = next(h for h in HOLES if len(h.ops) == 1)

    def run(hole: object, mode: str, seed: int, seqs: int, found: bool = True, t: float = 1.0) -> hard_bugs.Run:
        return hard_bugs.Run(hard_bugs.label(hole), mode, seed, found, t if found else 10.0, seqs,  # type: ignore[arg-type]
                             4 if found else None, (), 0, 1.0)

    def lines(native_deep: int, native_mid: int, miss: bool = False) -> str:
        runs = []
        for seed in (1, 2):
            runs += [run(deep, "native", seed, native_deep, found=not (miss and seed == 2)),
                     run(deep, hard_bugs.WALK, seed, 1000, found=False),
                     run(mid, "native", seed, native_mid), run(mid, hard_bugs.WALK, seed, 10),
                     run(shallow, "native", seed, 500), run(shallow, hard_bugs.WALK, seed, 1)]
        return "\n".join(hard_bugs.depth_targets(runs, [deep, mid, shallow], ["native", hard_bugs.WALK], 2))

    good = lines(native_deep=10, native_mid=5)  # ratios 0.01 and 0.5: geometric mean 0.071; the 1-step hole ignored
    assert "[met] native: every hole of depth ≥ 4 found on 2/2 seeds" in good
    assert "[met] native: median sequences to bug over the walk's, geometric mean over the 2 holes" in good
    assert "0.071×" in good and "[met] native: no hole of depth ≥ 3 worse than 1.5× the walk: worst 0.50×" in good
    bad = lines(native_deep=10, native_mid=20, miss=True)  # 2x worse than the walk on the 3-step hole
    assert "[NOT MET] native: every hole of depth ≥ 4 found on 2/2 seeds" in bad and "1/2" in bad
    assert "[NOT MET] native: no hole of depth ≥ 3 worse than 1.5× the walk: worst 2.00×" in bad


@pytest.mark.parametrize("subsystem", ["cxl", "rdma", "netdev", "gpu"])
def test_the_executor_benchmarks_sequence_runs_on_every_subsystem(registry: object, subsystem: str) -> None:
    """``nox -s bench``'s replay benchmark builds its sequence from the declarations; a parameter kind it does
    not know (sizes, once) broke the whole session.  Its sequence must build and replay on each subsystem."""
    import bench_executor

    from fuzzer.host import Registry

    assert isinstance(registry, Registry)
    ex = registry.executor(subsystem, registry.policy(subsystem, "permissive"), registry.device(subsystem, None))
    steps = bench_executor.make_steps(ex, 200, 0)
    assert len(steps) == 200 and any(s.actor == "user" for s in steps)
    ex.reset()
    ran = [ex.apply(s) for s in steps]
    assert sum(1 for r in ran if r.decision is not None and r.decision.allowed) > 20  # not all refused
