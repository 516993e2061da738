"""Campaign behaviour: every distinct bug, determinism, budgets, Ctrl-C, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import run_cli

from fuzzer import corpus
from fuzzer.campaign import Campaign
from fuzzer.host import Registry
from fuzzer.minimize import is_one_minimal, simplify
from fuzzer.replay import replay


def campaign(registry: Registry, tmp: Path | None, policy: str = "permissive", device: str = "spec",
             **kw: object) -> Campaign:
    kw.setdefault("seed", 5)
    return Campaign(registry, "cxl", registry.policy("cxl", policy), registry.device("cxl", device),
                    corpus_dir=tmp, **kw)  # type: ignore[arg-type]


def test_reports_every_distinct_violation_not_only_the_first(registry: Registry, tmp_path: Path) -> None:
    # One vendor lie breaks four promises: all four must be reported.
    c = campaign(registry, tmp_path, "linux-fwctl", "vendor", max_examples=1000)
    result = c.run()
    assert set(result.findings) == {
        "access:cxl:SET_FEATURE:caps",
        "access:cxl:SET_FEATURE:scope",
        "declared-effects:cxl:SET_FEATURE:scrub.cycle_hours",
        "kernel-owned-integrity:cxl:SET_FEATURE:scrub.cycle_hours:tainted",
    }
    files = sorted((tmp_path / "cxl").glob("*.json"))
    assert len(files) == len(result.findings)
    for f in files:
        entry = corpus.load(f)
        assert is_one_minimal(c.executor, entry.steps, entry.signature), f.name


def test_same_seed_same_findings_same_files(registry: Registry, tmp_path: Path) -> None:
    # seed 5 meets the vendor's lie after 692 sequences (a median seed after about 120)
    a = campaign(registry, tmp_path / "a", "linux-fwctl", "vendor", max_examples=1500).run()
    b = campaign(registry, tmp_path / "b", "linux-fwctl", "vendor", max_examples=1500).run()
    assert a.findings
    assert {s: [st.op for st in f.steps] for s, f in a.findings.items()} == \
           {s: [st.op for st in f.steps] for s, f in b.findings.items()}
    for fa in sorted((tmp_path / "a" / "cxl").glob("*.json")):
        assert fa.read_bytes() == (tmp_path / "b" / "cxl" / fa.name).read_bytes()


def test_ctrl_c_keeps_what_was_found(registry: Registry, tmp_path: Path) -> None:
    def interrupt(finding: object, first: bool) -> None:
        raise KeyboardInterrupt

    result = campaign(registry, tmp_path, max_examples=400, on_finding=interrupt).run()
    assert result.interrupted
    files = list((tmp_path / "cxl").glob("*.json"))
    # every violation seen is on disk (minimized or still raw) and reported
    assert files and len(files) == len(result.findings)
    for f in files:
        entry = corpus.load(f)
        assert entry.signature in result.findings
        assert replay(registry, entry).still_fails
    assert not list((tmp_path / "cxl").glob(".tmp-*"))


def test_time_budget_ends_the_campaign(registry: Registry) -> None:
    result = campaign(registry, None, "linux-fwctl", time_budget=1.0).run()
    assert result.sequences > 10
    assert result.elapsed < 15  # the budget ends it, whatever the machine's speed


def test_accept_tainted_reports_but_does_not_fail(registry: Registry, tmp_path: Path) -> None:
    result = campaign(registry, tmp_path, "linux-raw", max_examples=300, accept_tainted=True).run()
    tainted = {s for s, f in result.findings.items() if f.violation.severity == "tainted"}
    assert tainted and set(result.accepted) == tainted
    assert all(f.violation.severity == "hole" for f in result.failing())
    assert all(result.findings[s].path is not None for s in tainted)  # still saved
    out = tmp_path / "j.xml"
    code = run_cli(["run", "cxl", "--policy", "linux-raw", "--seed", "5", "--max-examples", "300",
                    "--corpus", str(tmp_path), "--accept-tainted", "--junit", str(out)])
    assert code == (1 if result.failing() else 0)
    xml = out.read_text()
    assert "<skipped" in xml and 'skipped="0"' not in xml


def test_cli_exit_codes_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "summary.json"
    code = run_cli(["run", "cxl", "--policy", "linux-fwctl", "--seed", "1", "--max-examples", "100",
                    "--corpus", str(tmp_path), "--json", str(out)])
    assert code == 0
    assert json.loads(out.read_text())["findings"] == []
    code = run_cli(["run", "cxl", "--policy", "linux-ioctl", "--without", "immediate-flag", "--seed", "1",
                    "--max-examples", "300", "--corpus", str(tmp_path), "--json", str(out)])
    assert code == 1
    summary = json.loads(out.read_text())
    assert summary["findings"] and all(Path(f["file"]).exists() for f in summary["findings"])
    text = capsys.readouterr().out
    assert "FOUND [hole]" in text


def test_pytest_export_fails_while_the_hole_is_open(tmp_path: Path) -> None:
    run_cli(["run", "cxl", "--policy", "linux-ioctl", "--without", "immediate-flag", "--seed", "1",
             "--max-examples", "300", "--corpus", str(tmp_path)])
    f = sorted((tmp_path / "cxl").glob("*.json"))[0]
    out = tmp_path / "test_exported.py"
    assert run_cli(["export", str(f), "--format", "pytest", "-o", str(out)]) == 0
    namespace: dict[str, object] = {}
    exec(compile(out.read_text(), str(out), "exec"), namespace)
    test = next(v for k, v in namespace.items() if k.startswith("test_"))
    with pytest.raises(AssertionError, match="kernel believes"):
        test()  # type: ignore[operator]


def test_cli_replay_and_export(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_cli(["run", "cxl", "--policy", "linux-ioctl", "--without", "immediate-flag", "--seed", "1",
             "--max-examples", "300", "--corpus", str(tmp_path)])
    f = sorted((tmp_path / "cxl").glob("*.json"))[0]
    capsys.readouterr()
    assert run_cli(["replay", str(f)]) == 1
    first = capsys.readouterr().out
    assert run_cli(["replay", str(f)]) == 1
    assert capsys.readouterr().out == first
    assert "still fails" in first and "VIOLATION (recorded)" in first
    # the intact policy closes the hole: replaying under it passes
    assert run_cli(["replay", str(f), "--policy", "linux-ioctl"]) == 0
    assert run_cli(["export", str(f), "--format", "text"]) == 0
    assert "# reproduce: ptfuzz replay" in capsys.readouterr().out


def test_model_bug_is_exit_2_naming_the_step(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plugin = tmp_path / "buggy.py"
    plugin.write_text(
        "from fuzzer import hookimpl, Command, CommandSet, Effect\n"
        "def crash(dev, args):\n"
        "    raise ZeroDivisionError('vendor handler bug')\n"
        "@hookimpl\n"
        "def ptfuzz_commands():\n"
        "    return [CommandSet('cxl', (Command('ACME_CRASH', 0xC0FF, ('cxl.raw',), crash),))]\n"
    )
    code = run_cli(["--plugin", str(plugin), "run", "cxl", "--policy", "permissive", "--seed", "1",
                    "--max-examples", "200", "--corpus", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2
    assert "ACME_CRASH" in err and "ZeroDivisionError" in err and "Traceback" not in err


def test_refinding_a_known_bug_keeps_the_corpus_file(registry: Registry, tmp_path: Path) -> None:
    first = campaign(registry, tmp_path, "linux-fwctl", "vendor", max_examples=1500, seed=1).run()
    files = {f.name: f.read_bytes() for f in (tmp_path / "cxl").glob("*.json")}
    assert files
    again = campaign(registry, tmp_path, "linux-fwctl", "vendor", max_examples=1500, seed=2).run()
    assert set(again.findings) == set(first.findings)
    assert {f.name: f.read_bytes() for f in (tmp_path / "cxl").glob("*.json")} == files
    # a broken file is replaced, not trusted
    victim = tmp_path / "cxl" / sorted(files)[0]
    victim.write_text("{ truncated")
    campaign(registry, tmp_path, "linux-fwctl", "vendor", max_examples=1500, seed=1).run()
    assert corpus.load(victim).signature in first.findings


def test_workers_share_the_corpus_and_merge(tmp_path: Path) -> None:
    out = tmp_path / "s.json"
    code = run_cli(["run", "cxl", "--policy", "linux-ioctl", "--without", "immediate-flag", "--seed", "1",
                    "--max-examples", "400", "--workers", "2", "--corpus", str(tmp_path), "--json", str(out)])
    assert code == 1
    summary = json.loads(out.read_text())
    sigs = [f["signature"] for f in summary["findings"]]
    assert "kernel-owned-integrity:cxl:SET_PARTITION_INFO:partition.active_volatile" in sigs
    assert len(sigs) == len(set(sigs)) == len(list((tmp_path / "cxl").glob("*.json")))
    assert summary["sequences"] >= 400



def test_a_run_does_not_adopt_the_raw_file_it_wrote_itself(registry: Registry, tmp_path: Path) -> None:
    """A 1-step raw finding with a needlessly privileged caller: minimizing keeps the step, and
    the file on disk is this run's own raw save, which must not count as an equally simple
    known finding (it would skip the final simplification)."""
    from fuzzer.spec import Caller
    from fuzzer.world import Step

    c = Campaign(registry, "cxl", registry.policy("cxl", "permissive"), registry.device("cxl", "spec"), seed=1,
                 max_examples=1, corpus_dir=tmp_path)
    loud = Caller(frozenset({"CAP_SYS_ADMIN", "CAP_SYS_RAWIO"}), None, "integrity", frozenset({"raw_allow_all"}))
    steps = [Step("user", "SET_TIMESTAMP", {"timestamp": 77}, "cxl.raw", loud)]
    c.executor.reset()
    violations = list(c.executor.apply(steps[0]).violations)
    c.found(steps, violations)
    c._drain(budget=1.0)  # mid-run: 1-minimal only
    c.polish()  # end of run: plainer callers and arguments
    (f,) = sorted((tmp_path / "cxl").glob("*SET_TIMESTAMP--timestamp.json"))
    (step,) = corpus.load(f).steps
    assert step.caller == Caller() and step.args["timestamp"] == 0


@pytest.mark.parametrize(("subsystem", "policy", "device"), [
    ("cxl", "permissive", "spec"), ("netdev", "linux-fwctl-bnxt", "bnxt")])
def test_every_file_a_run_writes_is_fully_simplified(registry: Registry, tmp_path: Path, subsystem: str,
                                                    policy: str, device: str) -> None:
    """A run must not adopt the raw file it wrote itself as an equally simple known finding."""
    pol = registry.policy(subsystem, policy)
    c = Campaign(registry, subsystem, pol, registry.device(subsystem, device), seed=1, max_examples=800,
                 corpus_dir=tmp_path)
    result = c.run()
    assert result.findings
    for f in sorted((tmp_path / subsystem).glob("*.json")):
        entry = corpus.load(f)
        steps = list(entry.steps)
        assert simplify(c.executor, steps, entry.signature) == steps, f.name
        assert is_one_minimal(c.executor, steps, entry.signature), f.name


def test_the_first_hit_keeps_its_time_and_sequence_when_a_shorter_prefix_comes_later(
        registry: Registry, tmp_path: Path) -> None:
    """Issue 20: DEVX seed 1 was first hit at sequence 47 and reported at 173, because a shorter
    prefix of the same signature, met before minimizing, replaced the raw finding's time too."""
    from fuzzer.spec import Caller
    from fuzzer.world import Step

    c = Campaign(registry, "cxl", registry.policy("cxl", "permissive"), registry.device("cxl", "spec"), seed=1,
                 max_examples=1, corpus_dir=tmp_path)
    c.started = 0.0  # found() measures from here: monotonic seconds since boot stand for "late"
    noise = Step("user", "GET_TIMESTAMP", {}, "cxl.raw", Caller())
    bad = Step("user", "SET_TIMESTAMP", {"timestamp": 77}, "cxl.raw", Caller())
    c.executor.reset()
    c.executor.apply(noise)
    long_hit = list(c.executor.apply(bad).violations)
    c.sequences, c.executor.total_steps = 47, 900
    c.found([noise, bad], long_hit)
    first = {sig: (f.found_at, f.sequences, f.search_steps) for sig, f in c._raw.items()}
    assert first
    c.executor.reset()
    short_hit = list(c.executor.apply(bad).violations)
    c.sequences, c.executor.total_steps = 173, 3000
    c.found([bad], short_hit)
    for sig, when in first.items():
        later = c._raw[sig]
        assert len(later.steps) == 1  # the shorter prefix won ...
        assert (later.found_at, later.sequences, later.search_steps) == when == (when[0], 47, 900)  # ... not the time
    c._drain(budget=5.0)
    for sig in first:
        assert c.findings[sig].sequences == 47
