"""The lifecycle of a run (issue 18): the budget holds, signals keep the results, workers die with
their parent, and failures and I/O errors are one line with exit 2."""

from __future__ import annotations

import errno
import io
import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from lifecycle import (
    ENV,
    allowed,
    children,
    command,
    crashing_plugin,
    gone_within,
    ptfuzz,
    start,
    startup,
    wait_for,
)
from rich.console import Console

from fuzzer import cli, corpus, files
from fuzzer.campaign import Campaign, Finding, Result
from fuzzer.host import Registry
from fuzzer.minimize import one_minimal

RUN = ("run", "cxl", "--policy", "permissive", "--seed", "1")

# ----------------------------------------------------------------------------- the budget holds


@pytest.mark.parametrize("extra", [
    pytest.param((), id="native"),
    pytest.param(("--steps", "100000"), id="steps-100000"),
    pytest.param(("--workers", "2"), id="workers-2"),
    pytest.param(("--search", "hypothesis"), id="hypothesis"),
])
def test_time_budget_is_a_deadline_for_everything(tmp_path: Path, extra: tuple[str, ...]) -> None:
    """Before: ``--time 3`` ran 8 s, ``--steps 10000000 --time 3`` still ran at 60 s (minimizing after
    the deadline, and the deadline asked only between sequences)."""
    base = startup(tmp_path)
    ran = ptfuzz(*RUN, "--time", "3", "--corpus", tmp_path, "--json", tmp_path / "s.json", *extra)
    assert ran.code == 1, ran.err
    assert ran.elapsed <= allowed(3, base), (ran.elapsed, base)
    doc = json.loads((tmp_path / "s.json").read_text())
    assert doc["elapsed"] <= 3 + 2
    for f in doc["findings"]:  # every finding is saved, minimized or as found, and says which
        entry = corpus.load(f["file"])
        assert entry.minimized == f["minimized"]
    if extra == ("--steps", "100000"):  # 100 000-step sequences cannot all be minimized in 3 s
        raw = [f for f in doc["findings"] if not f["minimized"]]
        assert raw and "not minimized" in ran.out
        assert '"minimized": false' in Path(raw[0]["file"]).read_text()


def test_minimizing_stops_when_the_clock_says_so(registry: Registry) -> None:
    """``one_minimal`` handed an expired clock returns the failing sequence it was given, untouched."""
    c = Campaign(registry, "cxl", registry.policy("cxl", "permissive"), registry.device("cxl", "spec"),
                 seed=1, max_examples=50)
    result = c.run()
    sig, finding = next(iter(sorted(result.findings.items())))
    longer = [*finding.steps[:-1], *finding.steps]  # not minimal: one step repeated
    assert one_minimal(c.executor, longer, sig, lambda: True) == longer
    assert one_minimal(c.executor, longer, sig, lambda: False) == finding.steps


def test_steps_and_workers_have_bounds(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from badinput import assert_error

    assert_error(capsys, [*RUN, "--steps", "10000000", "--corpus", tmp_path], "--steps", "100000")
    assert_error(capsys, [*RUN, "--workers", "100000", "--corpus", tmp_path], "--workers 100000", "at most",
                 "CPU")


# ----------------------------------------------------------------------------- signals


@pytest.mark.parametrize("workers", ["1", "2"])
def test_sigterm_keeps_summary_json_and_junit(tmp_path: Path, workers: str) -> None:
    """Before: SIGTERM (``timeout``, a CI cancel) exited 143 with no summary, JSON or JUnit."""
    proc = start(*RUN, "--time", "120", "--workers", workers, "--corpus", tmp_path,
                 "--json", tmp_path / "s.json", "--junit", tmp_path / "j.xml")
    wait_for(proc, "FOUND")
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 1, err  # as an interrupted run with findings
    assert "Traceback" not in err
    assert "distinct violation(s)" in out and "interrupted: every finding above is saved" in out
    doc = json.loads((tmp_path / "s.json").read_text())
    assert doc["interrupted"] and doc["findings"]
    assert "<testsuite" in (tmp_path / "j.xml").read_text()


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_workers_die_with_their_parent(tmp_path: Path, sig: signal.Signals) -> None:
    """Before: both workers ran on 28-38 s after their parent was killed, still writing findings."""
    proc = start(*RUN, "--time", "120", "--workers", "2", "--corpus", tmp_path)
    wait_for(proc, "FOUND")
    kids = children(proc.pid)
    assert len(kids) >= 2
    proc.send_signal(sig)
    proc.communicate(timeout=30)
    took = gone_within(kids, 5)
    assert took is not None and took <= 2.0, took
    before = {p.name: p.stat().st_mtime for p in (tmp_path / "cxl").glob("*.json")}
    subprocess.run(["sleep", "1"], check=True)
    after = {p.name: p.stat().st_mtime for p in (tmp_path / "cxl").glob("*.json")}
    assert after == before  # nobody writes once the run is over


def test_first_ctrl_c_is_fast(tmp_path: Path) -> None:
    """Before: 4-6 s (9-12 s with --workers 2), minimizing everything first."""
    import time

    proc = start(*RUN, "--time", "120", "--workers", "2", "--corpus", tmp_path)
    wait_for(proc, "FOUND")
    t = time.monotonic()
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=30)
    assert time.monotonic() - t < 3.0  # < 1 s unloaded; a loaded 2-core machine gets slack
    assert proc.returncode == 1


# ----------------------------------------------------------------------------- failing workers


@pytest.mark.parametrize("how", ["raise", "exit", "die"])
def test_failing_worker_is_one_line_and_exit_2(tmp_path: Path, how: str) -> None:
    """Before: tracebacks from both workers and exit 130 "interrupted"."""
    plugin = crashing_plugin(tmp_path, how)
    ran = ptfuzz("--plugin", plugin, "run", "crashy", "--policy", "crashy-linux", "--seed", "1", "--time", "20",
                 "--workers", "2", "--corpus", tmp_path / "c")
    assert ran.code == 2, (ran.code, ran.err)
    assert "Traceback" not in ran.out + ran.err
    lines = [line for line in ran.err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("ptfuzz: error: worker w"), ran.err
    assert f"crashy_{how}" in lines[0]
    assert ran.elapsed < 20  # the other worker is stopped, not waited for


# ----------------------------------------------------------------------------- I/O


def test_closed_pipe_keeps_the_verdict(tmp_path: Path) -> None:
    """``ptfuzz replay -q DIR | head -1``: before, exit 3 (internal error) on the broken pipe."""
    proc = subprocess.Popen(command("replay", "-q", "corpora/cxl"), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=ENV, cwd=Path(__file__).parent.parent)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.readline()
    proc.stdout.close()  # what head does after its line
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 1, err  # the corpus's findings still fail: the verdict
    assert err == ""


@pytest.mark.parametrize("option", ["--json", "--junit", "--corpus"])
def test_empty_paths_are_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str], option: str) -> None:
    """Before: ``--json ''`` wrote nothing, silently; ``--corpus ''`` wrote into ./cxl."""
    from badinput import assert_error

    args = [*RUN, "--max-examples", "1", "--corpus", tmp_path]
    assert_error(capsys, [*args, option, ""], f"{option} ''", "empty path")


def _no_space(*args: object, **kw: object) -> None:
    raise OSError(errno.ENOSPC, "No space left on device")


def test_full_disk_for_the_corpus(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from badinput import assert_error

    monkeypatch.setattr(files, "write_atomic", _no_space)
    assert_error(capsys, [*RUN, "--max-examples", "50", "--corpus", tmp_path], "--corpus", str(tmp_path / "cxl"),
                 "No space left on device")


def test_full_disk_for_json(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                            monkeypatch: pytest.MonkeyPatch) -> None:
    from badinput import assert_error

    monkeypatch.setattr(files, "write_atomic", _no_space)
    assert_error(capsys, ["run", "cxl", "--policy", "linux-ioctl", "--seed", "1", "--max-examples", "1", "--steps",
                          "1", "--corpus", tmp_path, "--json", tmp_path / "s.json"], "--json", "s.json",
                 "No space left")


# ----------------------------------------------------------------------------- what is printed


def test_piped_run_prints_progress_with_its_budget(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before: a piped run with no findings printed nothing until the end; the line had no budget."""
    monkeypatch.setattr(cli, "PROGRESS_EVERY", 0.5)
    result = CliRunner().invoke(cli.cli, ["run", "cxl", "--policy", "linux-ioctl", "--seed", "1", "--time", "2.5",
                                          "--corpus", str(tmp_path)])
    lines = [line for line in result.output.splitlines() if line.startswith("  ... ")]
    assert lines and all(" / 2.5s" in line for line in lines), result.output


def _narrow() -> tuple[Console, io.StringIO]:
    buf = io.StringIO()
    return Console(file=buf, width=60, soft_wrap=False, highlight=False), buf


def test_60_columns_found_lines_and_summary(registry: Registry, tmp_path: Path) -> None:
    """At 60 columns nothing is wider than the terminal and the signature leads its own line."""
    c = Campaign(registry, "cxl", registry.policy("cxl", "linux-fwctl"), registry.device("cxl", "vendor"),
                 seed=1, max_examples=300, corpus_dir=tmp_path)
    result: Result = c.run()
    con, buf = _narrow()
    for f in result.findings.values():
        cli._print_finding(con, f, True)
    cli._summary(con, result, "linux-fwctl", "vendor")
    text = buf.getvalue()
    assert all(len(line) <= 60 for line in text.splitlines()), text
    for sig in result.findings:
        if len(sig) < 40:
            assert any(line.startswith("FOUND [") and line.endswith(sig) for line in text.splitlines()), sig
    joined = text.replace("\n", "")
    for f in result.findings.values():
        assert str(f.path) in joined  # folded, not cut


def test_workers_print_each_found_line_once_and_whole(tmp_path: Path) -> None:
    """Before: with --workers 2 FOUND lines came twice, and once two were glued on one line."""
    ran = ptfuzz("run", "cxl", "--policy", "linux-fwctl", "--device", "vendor", "--seed", "1", "--max-examples",
                 "2000", "--workers", "2", "--corpus", tmp_path)  # split between the workers
    found = [line for line in ran.out.splitlines() if "FOUND" in line]
    assert found, ran.out
    assert all(line.count("FOUND") == 1 and line.startswith("[w") for line in found)
    sigs = [line.split()[3] for line in found]
    assert len(sigs) == len(set(sigs)), found


def test_unminimized_finding_says_so_everywhere() -> None:
    from fuzzer.spec import Violation

    f = Finding(Violation("access", "caps", "m", op="IDENTIFY", step=1, subsystem="cxl"), [], minimized=False)
    assert "not minimized" in f.describe()
    r = Result({f.signature: f}, 1, 1, 1.0, 1, 1)
    assert "not minimized" in cli.junit_xml(r, "cxl", "permissive", "spec")
    con, buf = _narrow()
    cli._summary(con, r, "permissive", "spec")
    assert "not minimized" in buf.getvalue()


def test_watchdog_alone_ends_an_orphan(tmp_path: Path) -> None:
    """Without PR_SET_PDEATHSIG (another system, a failed prctl) the parent-pid watchdog still ends it."""
    script = tmp_path / "orphan.py"
    script.write_text(
        "import os, sys, time\n"
        "from fuzzer import workers\n"
        "sys.platform = 'not-linux'  # no prctl: the watchdog alone\n"
        "if os.fork() == 0:\n"
        "    parent = os.getpid()\n"
        "    child = os.fork()\n"
        "    if child == 0:\n"
        "        workers.die_with_parent(parent)\n"
        "        time.sleep(60)\n"
        "        os._exit(0)\n"
        "    print(child, flush=True)\n"
        "    time.sleep(0.5)\n"
        "    os._exit(0)  # the parent dies; its child is re-parented\n"
        "os.wait()\n")
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True, env=ENV)
    assert proc.stdout is not None
    orphan = int(proc.stdout.readline())
    proc.wait(timeout=30)
    took = gone_within([orphan], 5)
    assert took is not None and took <= 2.0, took
