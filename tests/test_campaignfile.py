"""The campaign file (issue 18): strict validation, the matrix, the one budget, exit codes."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from badinput import assert_error, ptfuzz

from fuzzer import campaignfile
from fuzzer.host import Registry

ROOT = Path(__file__).resolve().parent.parent
CORPORA = ROOT / "corpora"


def write(tmp_path: Path, text: str, name: str = "campaign.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


GOOD = """
budget = 10
seeds = [1, 2]
corpus = "out"
[[entry]]
subsystem = "cxl"
policy = ["linux-ioctl", "linux-fwctl"]
device = "spec"
without = [[], "exclusive-cmds"]
[[entry]]
subsystem = "rdma"
policy = "linux-devx"
time = 1
"""


def test_the_matrix_expands_policy_device_without_and_seed(registry: Registry, tmp_path: Path) -> None:
    plan = campaignfile.load(str(write(tmp_path, GOOD)), registry)
    labels = [r.label for r in plan.runs]
    assert labels[:4] == ["cxl linux-ioctl@spec seed 1", "cxl linux-ioctl@spec seed 2",
                          "cxl linux-ioctl~exclusive-cmds@spec seed 1", "cxl linux-ioctl~exclusive-cmds@spec seed 2"]
    assert len(plan.runs) == 2 * 2 * 2 + 2
    assert plan.corpus == str(tmp_path / "out")  # relative to the file
    assert plan.runs[-1].device == "spec" and plan.runs[-1].time == 1  # the first device by default
    # one budget: the fixed times first, the rest by weight, recomputed from what is left
    assert plan.shares(0.0, 8) == 1
    assert plan.shares(0.0, 0) == pytest.approx((10 - 2) / 8)
    assert plan.shares(8.0, 7) == pytest.approx(10 - 8 - 2) or plan.shares(8.0, 7) == 0.1  # an overrun: the floor
    assert plan.shares(9.5, 7) == 0.1


def test_pyproject_tool_table(registry: Registry, tmp_path: Path) -> None:
    path = write(tmp_path, "[project]\nname='x'\n[tool.ptfuzz]\nbudget = 2\n[[tool.ptfuzz.entry]]\n"
                           "subsystem = 'cxl'\npolicy = 'linux-ioctl'\n", "pyproject.toml")
    assert [r.label for r in campaignfile.load(str(path), registry).runs] == ["cxl linux-ioctl@spec seed 1"]


@pytest.mark.parametrize(("text", "needles"), [
    ("budget = 5\nbudgte = 1\n[[entry]]\nsubsystem='cxl'\npolicy='linux-ioctl'\n", ["'budgte'", "did you mean 'budget'"]),
    ("budget = 5\n[[entry]]\nsubsystem='cxl'\npolicy='linux-ioctl'\npolcy='x'\n", ["entry 1 (cxl)", "'polcy'"]),
    ("budget = 5\n[[entry]]\nsubsystem='nope'\npolicy='x'\n", ["entry 1", "'subsystem'", "unknown subsystem"]),
    ("budget = 5\n[[entry]]\nsubsystem='cxl'\npolicy='linux-ioctl'\n[[entry]]\nsubsystem='cxl'\npolicy='nope'\n",
     ["entry 2 (cxl)", "'policy'", "unknown policy 'nope'"]),
    ("budget = 5\n[[entry]]\nsubsystem='cxl'\npolicy='linux-ioctl'\ndevice='gizmo'\n", ["'device'", "'gizmo'"]),
    ("budget = 5\n[[entry]]\nsubsystem='cxl'\npolicy='linux-ioctl'\nwithout=['no-such-rule']\n",
     ["'without'", "no-such-rule"]),
    ("budget = 'soon'\n[[entry]]\nsubsystem='cxl'\npolicy='linux-ioctl'\n", ["'budget'", "a number"]),
    ("budget = 1\n[[entry]]\nsubsystem='cxl'\npolicy='*'\n", ["'budget'", "cannot hold"]),
    ("[[entry]]\nsubsystem='cxl'\npolicy='linux-ioctl'\n", ["'budget'", "missing"]),
    ("budget = 5\n", ["'entry'", "at least one"]),
    ("budget = 5\n[[entry\n", ["not valid TOML"]),
])
def test_bad_campaign_files_are_one_line_exit_2(capsys: pytest.CaptureFixture[str], tmp_path: Path, text: str,
                                                 needles: list[str]) -> None:
    path = write(tmp_path, text)
    assert_error(capsys, ["campaign", path], str(path), *needles)


SMALL = """
budget = 10
seed = 1
baseline = "{corpora}"
corpus = "out"
[[entry]]
subsystem = "cxl"
policy = "linux-fwctl"
device = "vendor"
weight = 3
[[entry]]
subsystem = "cxl"
policy = "linux-ioctl"
device = "spec"
{without}
"""


def test_campaign_exits_0_on_known_findings_and_1_when_a_rule_is_removed(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """The issue's "done when": known findings pass, a removed rule's finding fails the run."""
    path = write(tmp_path, SMALL.format(corpora=CORPORA, without=""))
    started = time.monotonic()
    code, out, err = ptfuzz(capsys, "campaign", path, "--json", tmp_path / "c.json", "--junit", tmp_path / "j.xml")
    assert code == 0, out + err
    assert time.monotonic() - started < 10 + 5  # the one budget, with room for minimizing on a loaded machine
    doc = json.loads((tmp_path / "c.json").read_text())
    assert doc["new"] == 0 and doc["known"] == 4 and doc["exit"] == 0
    assert "FOUND known" in out and "0 new, 4 known" in out

    path = write(tmp_path, SMALL.format(corpora=CORPORA, without='without = ["exclusive-cmds"]'))
    code, out, err = ptfuzz(capsys, "campaign", path, "--json", tmp_path / "c.json")
    assert code == 1, out + err
    doc = json.loads((tmp_path / "c.json").read_text())
    new = {f["signature"] for r in doc["runs"] for f in r["findings"] if f["status"] == "new"}
    assert "kernel-owned-integrity:cxl:SET_LSA:lsa" in new
    assert "NEW   [hole] kernel-owned-integrity:cxl:SET_LSA:lsa" in out
