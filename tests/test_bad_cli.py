"""Bad command lines: exit 2 and one line naming the option; nothing but that line reaches stderr."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from badinput import BASE, USER_STEP, assert_error, plugin, with_step, write

# ----------------------------------------------------------------------------- run / export arguments


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        pytest.param(["run", "nosuch"], ("unknown subsystem", "'nosuch'", "cxl"), id="subsystem"),
        pytest.param(["run", "cxl"], ("--policy",), id="no-policy"),
        pytest.param(["run", "cxl", "--policy", "nosuch"], ("unknown policy", "'nosuch'", "linux-fwctl"),
                     id="policy"),
        pytest.param(["run", "cxl", "--policy", "permissive", "--device", "nosuch"],
                     ("unknown device", "'nosuch'", "spec"), id="device"),
        pytest.param(["run", "cxl", "--policy", "linux-fwctl", "--without", "nosuch-rule"],
                     ("linux-fwctl", "nosuch-rule"), id="without-rule"),
        pytest.param(["run", "cxl", "--policy", "linux-fwctl", "--without", "immediate-flag",
                      "--without", "nosuch-rule"], ("nosuch-rule",), id="one-of-two-rules"),
        pytest.param(["run", "cxl", "--policy", "permissive", "--steps", "0"], ("--steps",), id="steps-0"),
        pytest.param(["run", "cxl", "--policy", "permissive", "--seed", "abc"], ("--seed", "abc"), id="seed-abc"),
        pytest.param(["run"], ("SUBSYSTEM",), id="missing-subsystem"),
        pytest.param(["nosuchcommand"], ("nosuchcommand",), id="unknown-command"),
        pytest.param(["run", "cxl", "--nosuch-option"], ("--nosuch-option",), id="unknown-option"),
    ],
)
def test_bad_run_arguments(capsys: pytest.CaptureFixture[str], args: list[str], needles: tuple[str, ...]) -> None:
    assert_error(capsys, args, *needles)


def test_export_unknown_format(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, BASE)
    assert_error(capsys, ["export", path, "--format", "nosuch"], "unknown export format", "'nosuch'", "text")


def test_export_output_unwritable(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, BASE)
    out = tmp_path / "no" / "such" / "dir" / "x.txt"
    assert_error(capsys, ["export", path, "-o", out], str(out), "cannot write")


def test_run_corpus_dir_is_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "afile"
    blocker.write_text("")
    assert_error(capsys, ["run", "cxl", "--policy", "permissive", "--seed", "1", "--max-examples", "1",
                          "--corpus", blocker], "--corpus", str(blocker))


def test_run_json_unwritable(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "no" / "such" / "summary.json"
    assert_error(capsys, ["run", "cxl", "--policy", "linux-ioctl", "--seed", "1", "--max-examples", "1",
                          "--steps", "1", "--corpus", tmp_path / "c", "--json", out], "--json", str(out))


# ----------------------------------------------------------------------------- the real stderr


@pytest.mark.parametrize("case", ["plugin", "corpus"])
def test_subprocess_stderr_is_one_line(tmp_path: Path, case: str) -> None:
    if case == "plugin":
        p = plugin(tmp_path, "boomsub", """
            from fuzzer import hookimpl

            @hookimpl
            def ptfuzz_subsystems():
                raise RuntimeError("boom")
        """)
        args, needles = ["--plugin", str(p), "list"], ["boom", "boomsub"]
    else:
        bad = write(tmp_path, with_step(2, dict(USER_STEP, op="NO_SUCH_OP")))
        args, needles = ["replay", str(bad)], [str(bad), "step 2", "NO_SUCH_OP"]
    proc = subprocess.run([sys.executable, "-m", "fuzzer", *args], capture_output=True, text=True,
                          timeout=60, cwd=tmp_path, check=False)
    assert proc.returncode == 2, proc
    assert "Traceback" not in proc.stdout + proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("ptfuzz: error:")
    for needle in needles:
        assert needle in lines[0]
