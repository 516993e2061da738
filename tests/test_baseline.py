"""Baselines (issue 18): findings judged new or known, baseline entries fixed, unseen or not seen."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from badinput import assert_error, ptfuzz

from fuzzer import baseline
from fuzzer.campaign import Campaign, Result
from fuzzer.host import Registry

ROOT = Path(__file__).resolve().parent.parent
VENDOR = "linux-fwctl--vendor--"
LSA = "kernel-owned-integrity:cxl:SET_LSA:lsa"


def hole_file(registry: Registry, tmp_path: Path) -> Path:
    """linux-ioctl without exclusive-cmds: nvdimm_bind, then SET_LSA (the planted hole of test_planted_holes)."""
    policy = registry.policy("cxl", "linux-ioctl", ("exclusive-cmds",))
    c = Campaign(registry, "cxl", policy, registry.device("cxl", "spec"), seed=1, max_examples=600,
                 corpus_dir=tmp_path / "found", targets=frozenset({LSA}))
    r = c.run()
    assert LSA in r.findings and len(r.findings[LSA].steps) == 2
    path = r.findings[LSA].path
    assert path is not None
    return path


def campaign(registry: Registry, policy: str, without: tuple[str, ...] = ()) -> tuple[baseline.Scope, Result]:
    c = Campaign(registry, "cxl", registry.policy("cxl", policy, without), registry.device("cxl", "spec"),
                 seed=1, max_examples=300)
    return baseline.Scope("cxl", policy, without, "spec"), c.run()


def test_a_fixed_policy_turns_a_known_finding_fixed(registry: Registry, tmp_path: Path) -> None:
    """The known finding's file, replayed under the run's policy: passing is "fixed", failing "unseen"."""
    found = hole_file(registry, tmp_path)
    doc = {"format": baseline.FORMAT, "known": [
        {"signature": LSA, "policy": "linux-ioctl", "device": "spec", "file": str(found)},
        {"signature": LSA, "policy": "linux-ioctl~exclusive-cmds", "device": "spec", "file": str(found)},
        {"signature": "kernel-owned-integrity:cxl:SET_TIMESTAMP:timestamp"},
    ]}
    (tmp_path / "b.json").write_text(json.dumps(doc))
    known = baseline.load([str(tmp_path / "b.json")])
    intact = campaign(registry, "linux-ioctl")
    judged = baseline.judge(registry, known, [intact])
    states = [v.state for v in judged.verdicts]
    assert states == [baseline.FIXED, baseline.OUT_OF_SCOPE, baseline.NOT_SEEN]
    # the hole, still open: its finding is known (if met) and never "fixed"
    scope, result = campaign(registry, "linux-ioctl", ("exclusive-cmds",))
    result.findings.pop(LSA, None)  # as if this run had not met it
    judged = baseline.judge(registry, known, [(scope, result)])
    assert [v.state for v in judged.verdicts][1] == baseline.UNSEEN


def test_text_baselines_and_their_errors(tmp_path: Path) -> None:
    (tmp_path / "b.txt").write_text(f"# known\n{LSA}  linux-ioctl@spec\naccess:cxl:SET_FEATURE:caps\n")
    known = baseline.load([str(tmp_path / "b.txt")])
    assert known.match(LSA, "cxl", "linux-ioctl", "spec") is not None
    assert known.match(LSA, "cxl", "linux-raw", "spec") is None  # another policy's bug is another bug
    assert known.match("access:cxl:SET_FEATURE:caps", "cxl", "linux-fwctl", "vendor") is not None
    assert known.match("access:cxl:SET_FEATURE:caps", "rdma", "linux-devx", "spec") is None
    (tmp_path / "bad.txt").write_text("a b c\n")
    with pytest.raises(Exception, match=r"bad\.txt:1"):
        baseline.load([str(tmp_path / "bad.txt")])


def test_run_baseline_exit_codes(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    args = ["run", "cxl", "--policy", "linux-fwctl", "--device", "vendor", "--seed", "1", "--max-examples", "1500",
            "--corpus", tmp_path / "c", "--json", tmp_path / "r.json", "--junit", tmp_path / "r.xml"]
    code, out, _ = ptfuzz(capsys, *args)
    assert code == 1  # without a baseline every finding fails the run
    code, out, _ = ptfuzz(capsys, *args, "--baseline", ROOT / "corpora" / "cxl")
    assert code == 0, out
    assert "baseline: 0 new, 4 known, 0 fixed" in out
    assert {f["status"] for f in json.loads((tmp_path / "r.json").read_text())["findings"]} == {"known"}
    junit = (tmp_path / "r.xml").read_text()
    assert 'failures="0"' in junit and "known (in the baseline)" in junit
    # one of the four forgotten: that one is new again
    (tmp_path / "b.txt").write_text("access:cxl:SET_FEATURE:caps\n")
    code, out, _ = ptfuzz(capsys, *args, "--baseline", tmp_path / "b.txt")
    assert code == 1 and "baseline: 3 new, 1 known" in out
    assert_error(capsys, [*args, "--baseline", tmp_path / "missing"], "baseline", "missing")


def test_knobs_are_part_of_what_a_baseline_entry_knows(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """A finding made under ``--knob reread=false`` is known for runs with that knob, not for the policy's own
    values (there the same signature would be another policy's bug), in ``ptfuzz run --baseline``, the
    ``baseline`` module and the pytest plugin's matching."""
    from fuzzer.pytest_plugin import known_as

    toy = str(Path(__file__).with_name("toy.py"))
    mtu = "kernel-owned-integrity:toy:SET_MTU:link.mtu"
    args = ["--plugin", toy, "run", "toy", "--policy", "toy-linux", "--seed", "1", "--max-examples", "200",
            "--knob", "reread=false"]
    code, _, _ = ptfuzz(capsys, *args, "--corpus", tmp_path / "first")
    assert code == 1
    [found] = (tmp_path / "first" / "toy").glob("*SET_MTU--link.mtu.json")
    known = baseline.load([str(found)])
    assert [k.policy for k in known.known] == ["toy-linux{reread=false}"]
    assert known.match(mtu, "toy", "toy-linux{reread=false}", "toy") is not None
    assert known.match(mtu, "toy", "toy-linux", "toy") is None
    assert baseline.Scope("toy", "toy-linux", (), "toy", (("reread", False),)).label == "toy-linux{reread=false}"
    # the same run again, judged against the first one's file: known, so it passes
    code, out, _ = ptfuzz(capsys, *args, "--corpus", tmp_path / "again", "--baseline", found)
    assert code == 0 and ", 1 known," in out and f"NEW   {mtu}" not in out, out
    # a text baseline naming the policy without the knob does not know it
    (tmp_path / "b.txt").write_text(f"{mtu} toy-linux@toy\n")
    code, out, _ = ptfuzz(capsys, *args, "--corpus", tmp_path / "third", "--baseline", tmp_path / "b.txt")
    assert code == 1 and ", 0 known," in out and f"NEW   {mtu}" in out, out
    from fuzzer import corpus
    entry = corpus.load(found)
    assert known_as(known.known, entry) is not None
    assert known_as(baseline.load([str(tmp_path / "b.txt")]).known, entry) is None
