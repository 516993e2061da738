"""Helpers for the lifecycle tests: run ptfuzz as a process, time it, signal it, find its children.

Budgets are asserted against the interpreter start-up measured in the same
test (``startup()``), so that a loaded 2-core machine does not fail them.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import attrs

TESTS = Path(__file__).resolve().parent
ENV = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(TESTS.parent)}


@attrs.frozen
class Ran:
    code: int
    out: str
    err: str
    elapsed: float


def command(*args: object) -> list[str]:
    return [sys.executable, "-m", "fuzzer", *(str(a) for a in args)]


def ptfuzz(*args: object, timeout: float = 120, cwd: Path | None = None) -> Ran:
    start = time.monotonic()
    proc = subprocess.run(command(*args), capture_output=True, text=True, timeout=timeout, env=ENV,
                          cwd=cwd, check=False)
    return Ran(proc.returncode, proc.stdout, proc.stderr, time.monotonic() - start)


def startup(tmp: Path) -> float:
    """Wall time of the smallest campaign (interpreter, imports, plugins): what a budget does not cover."""
    return ptfuzz("run", "cxl", "--policy", "permissive", "--seed", "1", "--max-examples", "1", "--steps", "1",
                  "--corpus", tmp / "startup").elapsed


def allowed(budget: float, start: float) -> float:
    """The issue's promise: the budget, plus max(10 %, 2 s), plus the start-up measured."""
    return budget + max(0.1 * budget, 2.0) + start


def start(*args: object) -> subprocess.Popen[str]:
    return subprocess.Popen(command(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)


def wait_for(proc: subprocess.Popen[str], needle: str, timeout: float = 60) -> list[str]:
    """Read stdout lines until one contains ``needle``; the lines read."""
    assert proc.stdout is not None
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    for line in proc.stdout:
        seen.append(line)
        if needle in line or time.monotonic() > deadline:
            break
    assert any(needle in line for line in seen), seen
    return seen


def children(pid: int) -> list[int]:
    """Pids whose parent is ``pid`` (from /proc; psutil is not a dependency)."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid:
            out.append(int(entry))
    return out


def alive(pid: int) -> bool:
    """Running (a zombie waiting for its reaper counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def gone_within(pids: list[int], seconds: float) -> float | None:
    """Seconds until none of ``pids`` runs, or None if some still run after ``seconds``."""
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        if not any(alive(p) for p in pids):
            return time.monotonic() - start
        time.sleep(0.05)
    for p in pids:  # leave nothing behind for the next test
        if alive(p):
            os.kill(p, signal.SIGKILL)
    return None


def crashing_plugin(tmp: Path, how: str, after: int = 200) -> Path:
    """A copy of the toy subsystem ("crashy") whose SET_MTU model fails after ``after`` calls.

    ``how``: ``raise`` (a RuntimeError), ``exit`` (``sys.exit(7)``) or
    ``die`` (``os._exit(7)``: the worker process vanishes without a word).
    """
    path = tmp / f"crashy_{how}.py"
    path.write_text(textwrap.dedent(f"""
        import os
        import sys

        import attrs

        sys.path.insert(0, {str(TESTS)!r})
        import toy
        from fuzzer import hookimpl

        __version__ = "0.0.1"
        calls = [0]

        def set_mtu(dev, args):
            calls[0] += 1
            if calls[0] > {after}:
                if {how!r} == "raise":
                    raise RuntimeError("the crashy model blew up")
                if {how!r} == "exit":
                    sys.exit(7)
                os._exit(7)
            return toy.set_mtu(dev, args)

        SUBSYSTEM = attrs.evolve(toy.SUBSYSTEM, name="crashy", commands=(
            attrs.evolve(toy.SUBSYSTEM.commands[0], handler=set_mtu), *toy.SUBSYSTEM.commands[1:]))
        POLICY = attrs.evolve(toy.LINUX, name="crashy-linux", subsystem="crashy")

        @hookimpl
        def ptfuzz_subsystems():
            return [SUBSYSTEM]

        @hookimpl
        def ptfuzz_policies():
            return [POLICY]
    """))
    return path
