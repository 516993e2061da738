"""Shared by the bad-input tests: run the CLI in-process, and a hand-built corpus file to spoil.

Every CLI call runs in-process through ``fuzzer.cli.main`` (catching
``SystemExit``).  Corpus files are built by hand from the ``ptfuzz.sequence/1``
format in ``fuzzer/corpus.py``.
"""

from __future__ import annotations

import copy
import json
import textwrap
from pathlib import Path
from typing import Any

import pytest

from fuzzer.cli import main

KERNEL_STEP: dict[str, Any] = {"actor": "kernel", "action": "region_create", "args": {"mode": "ram", "size": 1}}
USER_STEP: dict[str, Any] = {
    "actor": "user",
    "channel": "cxl.ioctl",
    "op": "SET_PARTITION_INFO",
    "caller": {"caps": []},
    "args": {"volatile": 4, "immediate": True},
}
BASE: dict[str, Any] = {
    "format": "ptfuzz.sequence/1",
    "subsystem": "cxl",
    "device": "spec",
    "policy": "permissive",
    "plugins": {},
    "ptfuzz": "0.1.0",
    "seed": 3,
    "violation": {
        "invariant": "kernel-owned-integrity",
        "step": 2,
        "field": "partition.active_volatile",
        "severity": "hole",
        "message": "hand-built",
        "signature": "kernel-owned-integrity:cxl:SET_PARTITION_INFO:partition.active_volatile",
    },
    "steps": [KERNEL_STEP, USER_STEP],
}


# ----------------------------------------------------------------------------- helpers


def doc(**changes: Any) -> dict[str, Any]:
    d = copy.deepcopy(BASE)
    d.update(copy.deepcopy(changes))
    return d


def write(tmp_path: Path, content: Any, name: str = "case.json") -> Path:
    p = tmp_path / name
    if isinstance(content, bytes):
        p.write_bytes(content)
    elif isinstance(content, str):
        p.write_text(content)
    else:
        p.write_text(json.dumps(content, indent=2))
    return p


def with_step(n: int, step: dict[str, Any]) -> dict[str, Any]:
    """The base document with step ``n`` (1-based) replaced."""
    d = doc()
    d["steps"][n - 1] = step
    return d


def ptfuzz(capsys: pytest.CaptureFixture[str], *args: object) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc_info:
        main([str(a) for a in args])
    out, err = capsys.readouterr()
    code = exc_info.value.code
    return (code if isinstance(code, int) else 0), out, err


def assert_error(capsys: pytest.CaptureFixture[str], args: list[object], *needles: str) -> str:
    """Exit 2, exactly one non-empty stderr line ``ptfuzz: error: ...`` containing every needle."""
    code, out, err = ptfuzz(capsys, *args)
    assert "Traceback" not in out + err
    assert code == 2, (code, out, err)
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    line = lines[0]
    assert line.startswith("ptfuzz: error:"), line
    for needle in needles:
        assert needle in line, (needle, line)
    return line


def plugin(tmp_path: Path, stem: str, source: str) -> Path:
    p = tmp_path / f"{stem}.py"
    p.write_text(textwrap.dedent(source))
    return p


