"""SIGINT mid-campaign: the run stops cleanly, reports, and keeps every finding on disk."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from fuzzer import corpus


@pytest.mark.parametrize("workers", ["1", "2"])
def test_sigint_keeps_findings_and_exits_cleanly(tmp_path: Path, workers: str) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "fuzzer", "run", "cxl", "--policy", "permissive", "--seed", "1",
         "--time", "120", "--workers", workers, "--corpus", str(tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    for line in proc.stdout:  # wait for the first finding
        if "FOUND" in line:
            break
    proc.send_signal(signal.SIGINT)  # to the parent only, as `timeout -s INT` or a CI cancel would
    try:
        out, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("campaign did not stop within 60 s of SIGINT")
    assert proc.returncode == 1, err
    assert "interrupted: every finding above is saved" in out
    assert "Traceback" not in err
    files = list((tmp_path / "cxl").glob("*.json"))
    assert files and not list((tmp_path / "cxl").glob(".tmp-*"))
    for f in files:
        corpus.load(f)  # complete, valid files only
