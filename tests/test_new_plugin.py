"""`ptfuzz new-plugin` writes a plugin that loads, fuzzes, and has a hole to remove."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import run_cli

from fuzzer import host
from fuzzer.campaign import Campaign


def test_scaffold_is_a_working_subsystem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "widget.py"
    assert run_cli(["new-plugin", "widget", "-o", str(out)]) == 0
    reg = host.load([str(out)])
    assert set(reg.policies["widget"]) == {"guarded", "permissive"}
    sig = "kernel-owned-integrity:widget:SET_MTU:link.mtu"
    holed = reg.policy("widget", "guarded", without=("no-config-writes",))
    found = Campaign(reg, "widget", holed, reg.device("widget", None), seed=1, max_examples=300,
                     targets=frozenset({sig})).run().findings
    assert [s.op for s in found[sig].steps] == ["SET_MTU"]
    clean = Campaign(reg, "widget", reg.policy("widget", "guarded"), reg.device("widget", None),
                     seed=1, max_examples=300).run()
    assert clean.failing() == []  # only the trusted caller's finding, by design
    assert {f.violation.severity for f in clean.findings.values()} <= {"trusted"}


def test_scaffold_refuses_bad_names_and_overwrites(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "w.py"
    assert run_cli(["new-plugin", "Bad-Name", "-o", str(out)]) == 2
    assert run_cli(["new-plugin", "w", "-o", str(out)]) == 0
    assert run_cli(["new-plugin", "w", "-o", str(out)]) == 2
    assert "exists" in capsys.readouterr().err
