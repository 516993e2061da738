"""``pytest --ptfuzz-corpus``: corpus files as regression tests (``fuzzer/pytest_plugin.py``).

Each test runs pytest in a subprocess on a small corpus copied from
``corpora/``.  The hole is a historical policy: ``linux-raw-features-allowed``
is 7.3.4's ``linux-raw`` before Features moved to fwctl (RAW Set Feature behind
EDAC's back), so its file fails under its own policy and passes under
``--ptfuzz-policy linux-raw``, the fixed one.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import tomllib
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from conftest import run_cli

from fuzzer import corpus

ROOT = Path(__file__).resolve().parent.parent
HOLE = "linux-raw-features-allowed--spec--kernel-owned-integrity--SET_FEATURE--scrub.cycle_hours--tainted.json"
OTHER = "permissive--spec--kernel-owned-integrity--SET_LSA--lsa.json"
SIG = "kernel-owned-integrity:cxl:SET_FEATURE:scrub.cycle_hours:tainted"


def _installed() -> bool:
    """Whether the pytest11 entry point is installed (else the tests load the plugin with -p)."""
    return any(ep.value == "fuzzer.pytest_plugin" for ep in importlib.metadata.entry_points(group="pytest11"))


PLUGIN = [] if _installed() else ["-p", "fuzzer.pytest_plugin"]


def pytest_run(cwd: Path, *args: str, plugin: list[str] | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PY_COLORS": "0"}
    env.pop("PYTEST_ADDOPTS", None)
    env.pop("PYTEST_XDIST_WORKER", None)
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rA",
                           *(PLUGIN if plugin is None else plugin), *args],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project with a two-file corpus, as a maintainer's repository would have."""
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    cxl = tmp_path / "corpora" / "cxl"
    cxl.mkdir(parents=True)
    for name in (HOLE, OTHER):
        shutil.copy(ROOT / "corpora" / "cxl" / name, cxl / name)
    return tmp_path


def test_each_corpus_file_is_one_test_with_a_readable_id(project: Path) -> None:
    done = pytest_run(project, "--ptfuzz-corpus", "corpora/", "--collect-only")
    assert done.returncode == 0, done.stdout + done.stderr
    ids = sorted(line for line in done.stdout.splitlines() if "::" in line)
    assert ids == [f"corpora/cxl/{HOLE}::{SIG}",
                   f"corpora/cxl/{OTHER}::kernel-owned-integrity:cxl:SET_LSA:lsa"]


def test_a_finding_that_still_reproduces_fails_with_its_trace(project: Path) -> None:
    done = pytest_run(project, "--ptfuzz-corpus", "corpora/", "-k", "SET_FEATURE")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "1 failed, 1 deselected" in done.stdout
    # the failure text is the trace `ptfuzz replay` prints
    assert "policy=linux-raw-features-allowed" in done.stdout
    assert "      policy  allow" in done.stdout and f"=> still fails: {SIG}" in done.stdout


def test_under_the_fixed_policy_it_passes(project: Path) -> None:
    done = pytest_run(project, "--ptfuzz-corpus", "corpora/cxl", "-k", "SET_FEATURE", "--ptfuzz-policy", "linux-raw")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout


def test_a_baseline_makes_known_findings_xfail_and_fixed_ones_xpass(project: Path) -> None:
    (project / "known.txt").write_text(f"# known findings\n{SIG}  # RAW Set Feature\n")
    done = pytest_run(project, "--ptfuzz-corpus", "corpora/", "--ptfuzz-baseline", "known.txt")
    assert done.returncode == 1 and "1 failed, 1 xfailed" in done.stdout, done.stdout  # the other is new
    done = pytest_run(project, "--ptfuzz-corpus", "corpora/", "--ptfuzz-baseline", "corpora/")
    assert done.returncode == 0 and "2 xfailed" in done.stdout, done.stdout  # a corpus directory as baseline
    done = pytest_run(project, "--ptfuzz-corpus", "corpora/", "--ptfuzz-baseline", "known.txt",
                      "--ptfuzz-policy", "linux-raw", "-k", "SET_FEATURE")
    assert done.returncode == 0 and "1 xpassed" in done.stdout, done.stdout  # known, and now fixed
    assert f"XPASS corpora/cxl/{HOLE}::{SIG} - known finding (baseline known.txt:2)" in done.stdout


def test_a_baseline_entry_applies_to_its_policy_and_device_only(project: Path) -> None:
    """The formats ``ptfuzz campaign --baseline`` reads: ``SIGNATURE POLICY@DEVICE`` lines and baseline JSON."""
    (project / "other.txt").write_text(f"{SIG} linux-raw-features-allowed@vendor\n")  # another device
    done = pytest_run(project, "--ptfuzz-corpus", "corpora/", "-k", "SET_FEATURE", "--ptfuzz-baseline", "other.txt")
    assert done.returncode == 1 and "1 failed" in done.stdout, done.stdout
    (project / "known.json").write_text(json.dumps({"format": "ptfuzz.baseline/1", "known": [
        {"signature": SIG, "policy": "linux-raw-features-allowed", "device": "spec"}]}))
    done = pytest_run(project, "--ptfuzz-corpus", "corpora/", "-k", "SET_FEATURE", "--ptfuzz-baseline", "known.json")
    assert done.returncode == 0 and "1 xfailed" in done.stdout, done.stdout
    (project / "bad.txt").write_text(f"{SIG} not-a-place\n")
    done = pytest_run(project, "--ptfuzz-corpus", "corpora/", "--ptfuzz-baseline", "bad.txt")
    assert done.returncode == 4 and "bad.txt:1: expected 'SIGNATURE' or 'SIGNATURE POLICY@DEVICE'" in done.stderr


def test_junit_has_one_case_per_file_with_the_trace_escaped(project: Path) -> None:
    evil = project / "corpora" / "cxl" / "evil\x1b[31m.json"
    shutil.copy(project / "corpora" / "cxl" / OTHER, evil)
    done = pytest_run(project, "--ptfuzz-corpus", "corpora/", "--junitxml", "out.xml")
    assert done.returncode == 1
    suite = ET.parse(project / "out.xml").getroot().find("testsuite")
    assert suite is not None
    cases = suite.findall("testcase")
    assert len(cases) == 3 and all(c.find("failure") is not None for c in cases)
    body = "".join(c.find("failure").text or "" for c in cases)  # type: ignore[union-attr]
    assert "\x1b" not in body and "\\x1b[31m.json" in body
    assert "=> still fails" in body
    assert {c.get("name") for c in cases} >= {SIG}
    # the file's name is escaped where pytest itself prints it: the case's classname, the summary
    assert "corpora.cxl.evil\\x1b[31m.json" in {c.get("classname") for c in cases}
    assert "\x1b" not in done.stdout and "evil\\x1b[31m.json" in done.stdout


def test_an_unreadable_file_is_an_error_of_its_own_test(project: Path) -> None:
    (project / "corpora" / "cxl" / "broken.json").write_text('{"format": "ptfuzz.sequence/9"}')
    done = pytest_run(project, "--ptfuzz-corpus", "corpora/", "-k", "unreadable or SET_FEATURE")
    assert done.returncode == 1
    assert "1 failed, 1 deselected, 1 error" in done.stdout, done.stdout
    assert "unknown format 'ptfuzz.sequence/9'" in done.stdout


@pytest.fixture
def acme_finding(tmp_path: Path) -> Path:
    """A finding made with `--plugin examples/acme.py` (its vendor opcode ACME_TUNE)."""
    assert run_cli(["--plugin", str(ROOT / "examples" / "acme.py"), "run", "cxl", "--policy", "linux-raw",
                    "--seed", "1", "--max-examples", "300", "--corpus", str(tmp_path / "acme")]) == 1
    path = tmp_path / "acme" / "cxl" / "linux-raw--spec--declared-effects--ACME_TUNE--scrub.cycle_hours.json"
    assert corpus.load(path).plugins == {"acme": "0.1.0", "cxl": "0.1.0"}
    return path


def test_a_finding_that_needs_a_plugin_says_how_to_get_it(project: Path, acme_finding: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    # ptfuzz replay: exit 2, one line
    assert run_cli(["replay", str(acme_finding)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "needs plugin 'acme' (version '0.1.0'), which is not loaded" in err
    assert "ptfuzz --plugin PATH" in err and "entry point 'acme' in group 'ptfuzz'" in err
    assert run_cli(["--plugin", str(ROOT / "examples" / "acme.py"), "replay", "-q", str(acme_finding)]) == 1
    # pytest: an error (not a failure, not excused by a baseline), naming --ptfuzz-plugin
    shutil.copy(acme_finding, project / "corpora" / "cxl")
    sig = corpus.load(acme_finding).signature
    (project / "known.txt").write_text(sig + "\n")
    done = pytest_run(project, "--ptfuzz-corpus", "corpora/", "-k", "ACME", "--ptfuzz-baseline", "known.txt")
    assert done.returncode == 1 and "1 error" in done.stdout, done.stdout
    assert "pytest --ptfuzz-plugin PATH" in done.stdout and "Traceback" not in done.stdout
    done = pytest_run(project, "--ptfuzz-corpus", "corpora/", "-k", "ACME", "--ptfuzz-baseline", "known.txt",
                      "--ptfuzz-plugin", str(ROOT / "examples" / "acme.py"))
    assert done.returncode == 0 and "1 xfailed" in done.stdout, done.stdout


def test_xdist_runs_the_same_tests(project: Path) -> None:
    pytest.importorskip("xdist", reason="pytest-xdist is not installed (pip install pytest-xdist)")
    done = pytest_run(project, "--ptfuzz-corpus", "corpora/", "-p", "xdist", "-n", "2", "--ptfuzz-baseline",
                      "corpora/cxl/" + HOLE)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "1 failed, 1 xfailed" in done.stdout, done.stdout


def test_it_collects_nothing_without_its_option(project: Path) -> None:
    """Installed in every pytest run, it must not change what a project collects."""
    (project / "test_x.py").write_text("def test_a():\n    pass\n")
    with_plugin = pytest_run(project, "--collect-only")
    without = pytest_run(project, "--collect-only", plugin=[])
    assert with_plugin.returncode == without.returncode == 0
    assert with_plugin.stdout.splitlines()[:1] == without.stdout.splitlines()[:1] == ["test_x.py::test_a"]


def test_the_entry_point_is_declared() -> None:
    doc = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert doc["project"]["entry-points"]["pytest11"] == {"ptfuzz": "fuzzer.pytest_plugin"}
    assert any(d.startswith("pyyaml") for d in doc["project"]["optional-dependencies"]["test"])
