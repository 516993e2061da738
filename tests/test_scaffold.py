"""`ptfuzz new-plugin` shows the whole current API, and every part of it works as generated."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from badinput import ptfuzz

from fuzzer import host
from fuzzer.spec import Caller
from fuzzer.world import Step

HOLE = "kernel-owned-integrity:widget:SET_MTU:link.mtu"
FOLLOW = "mtu-fixed-while-up:widget:SET_MTU:link.mtu"


@pytest.fixture
def widget(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    out = tmp_path / "widget.py"
    assert ptfuzz(capsys, "new-plugin", "widget", "-o", out)[0] == 0
    return out


def test_scaffold_shows_every_part_marked_replace(widget: Path) -> None:
    text = widget.read_text()
    for record in ("Field(", "Param(", "KernelAction(", "def probe", "Rule(", "Reaction(", "Trust(", "knobs=",
                   "Invariant(", "Exporter(", "Promise("):
        assert record in text, record
    assert text.count("(replace") + text.count("replace:") >= 10
    assert "Reply.out" in text and "Reply.data" in text


def test_scaffold_planted_hole_is_found_shrunk_and_exported(widget: Path, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    corpus = tmp_path / "corpus"
    code, out, _ = ptfuzz(capsys, "--plugin", widget, "run", "widget", "--policy", "guarded", "--seed", "1",
                          "--max-examples", "1000", "--corpus", corpus)
    assert code == 0, out  # the trusted caller's finding does not fail the run
    assert "1 by design" in out and "[hole]" not in out
    report = tmp_path / "run.json"
    code, out, _ = ptfuzz(capsys, "--plugin", widget, "run", "widget", "--policy", "guarded", "--without",
                          "no-config-writes", "--seed", "1", "--max-examples", "300", "--corpus", corpus,
                          "--json", report)
    assert code == 1, out
    found = {f["signature"]: f for f in json.loads(report.read_text())["findings"]}
    assert found[HOLE]["steps"] == 1 and found[HOLE]["follows"] is None
    assert found[FOLLOW]["steps"] == 2 and found[FOLLOW]["follows"] == HOLE  # the template's own invariant
    code, out, _ = ptfuzz(capsys, "--plugin", widget, "export", found[FOLLOW]["file"], "--format", "widget-report")
    assert code == 0
    assert out.splitlines()[0] == f'# "{FOLLOW}"'
    assert out.splitlines()[2] == '1. "link_up" {} as kernel'
    assert out.splitlines()[3].startswith('2. "SET_MTU" {"mtu": ')


def test_scaffold_reaction_knob_and_trust_act(widget: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = ptfuzz(capsys, "--plugin", widget, "list", "widget")
    assert code == 0
    assert "reaction reread-log-level: after immediate-log" in out
    assert "trust CAP_SYS_ADMIN for SET_LOG_LEVEL" in out and "knobs: log_writes=True" in out
    reg = host.load([str(widget)], entry_points=False)
    admin = Caller(frozenset({"CAP_NET_ADMIN"}))
    step = Step("user", "SET_LOG_LEVEL", {"level": 5}, "widget.rpc", admin)
    ex = reg.executor("widget", reg.policy("widget", "guarded"), reg.device("widget", None))
    ex.reset()
    ex.apply(step)
    assert ex.world.kernel["log_level"] == 5  # the reaction re-read it
    ex = reg.executor("widget", reg.policy("widget", "guarded", without=("reread-log-level",)),
                      reg.device("widget", None))
    ex.reset()
    ex.apply(step)
    assert ex.world.kernel["log_level"] == 0
    import attrs

    off = attrs.evolve(reg.policy("widget", "guarded"), knobs={"log_writes": False})
    ex = reg.executor("widget", off, reg.device("widget", None))
    ex.reset()
    result = ex.apply(step)
    assert result.decision is not None and not result.decision.allowed and result.decision.rule == "log-writes"
