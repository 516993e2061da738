"""The README's tutorial does what it says: its commands, run as shown, print what it shows.

The commands and their expected output are parsed from the README (``$ `` lines of the
tutorial's ``console`` blocks, the lines after each one being what it must print, ``...``
standing for anything), so the text and the code cannot drift apart.  The ``python`` blocks
are checked against the step files they quote.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from badinput import ptfuzz

ROOT = Path(__file__).resolve().parent.parent
SECTION = "### Tutorial: a plugin from nothing"


def _section() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index(SECTION)
    end = text.index("\n### ", start + len(SECTION))
    return text[start:end]


def _blocks(kind: str) -> list[tuple[int, str]]:
    """Every ``kind`` code block of the tutorial, with the step (``**Step N``) it belongs to."""
    out = []
    step = 0
    for m in re.finditer(r"\*\*Step (\d)|```" + kind + r"\n(.*?)```", _section(), re.S):
        if m.group(1):
            step = int(m.group(1))
        else:
            out.append((step, m.group(2)))
    return out


def _commands() -> list[tuple[str, list[str]]]:
    """(command, expected lines) in the order the README shows them."""
    found: list[tuple[str, list[str]]] = []
    for _, block in _blocks("console"):
        for line in block.splitlines():
            if line.startswith("$ "):
                found.append((line[2:], []))
            elif line.strip():
                found[-1][1].append(line)
    return found


def _norm(text: str) -> str:
    return " ".join(text.split())


def _matches(pattern: str, line: str) -> bool:
    """``pattern`` with ``...`` for anything, whitespace-insensitive, anchored at the line's start."""
    parts = _norm(pattern).split("...")
    line = _norm(line)
    if not line.startswith(parts[0]):
        return False
    at = len(parts[0])
    for part in parts[1:]:
        found = line.find(part, at)
        if found < 0:
            return False
        at = found + len(part)
    return pattern.rstrip().endswith("...") or at == len(line)


def _check_output(command: str, expected: list[str], output: str) -> None:
    lines = output.splitlines()
    i = 0
    for pattern in expected:
        if pattern.strip() == "...":
            continue
        while i < len(lines) and not _matches(pattern, lines[i]):
            i += 1
        assert i < len(lines), f"{command!r}: no line (in order) like {pattern!r} in:\n{output}"
        i += 1


def _expected_code(command: str, expected: list[str]) -> int:
    text = "\n".join(expected)
    if " run " in command:
        return 1 if "FOUND" in text else 0
    if " replay " in command:
        return 1 if "still fails" in text else 0
    if "pytest" in command:
        return 1 if "failed" in text else 0
    return 0


def test_the_tutorial_shows_every_step() -> None:
    commands = [c for c, _ in _commands()]
    assert [c for c in commands if " list " in c] == [
        f"ptfuzz --plugin examples/tutorial/step{n}.py list fan" for n in (1, 2, 3)]
    verbs = [shlex.split(c)[3] if c.startswith("ptfuzz") else "pytest" for c in commands[3:]]
    assert verbs == ["run", "run", "replay", "export", "pytest", "replay"]
    assert any("--without governor-owns-speed" in c for c in commands)
    assert "Reply.out" in _section() and "Reply.data" in _section()


def test_readme_tutorial_commands(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    shutil.copytree(ROOT / "examples" / "tutorial", tmp_path / "examples" / "tutorial")
    monkeypatch.chdir(tmp_path)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "plugins"),
                                                        os.environ.get("PYTHONPATH", "")])}
    for command, expected in _commands():
        argv = shlex.split(command)
        if argv[0] == "ptfuzz":
            code, out, err = ptfuzz(capsys, *argv[1:])
        else:
            assert argv[:3] == ["python", "-m", "pytest"], command
            proc = subprocess.run([sys.executable, *argv[1:], "-p", "no:cacheprovider"], cwd=tmp_path, env=env,
                                  capture_output=True, text=True, timeout=300)
            code, out, err = proc.returncode, proc.stdout, proc.stderr
        assert code == _expected_code(command, expected), (command, out, err)
        _check_output(command, expected, out)
    assert list((tmp_path / "out" / "tutorial" / "fan").iterdir()) == [
        tmp_path / "out" / "tutorial" / "fan"
        / "guarded~governor-owns-speed--basic--kernel-owned-integrity--SET_SPEED--fan.speed.json"]


def test_readme_tutorial_code_is_the_step_files() -> None:
    """Each definition the README quotes for step N is in ``stepN.py`` (step 4 is the finished plugin)."""
    quoted = 0
    for step, block in _blocks("python"):
        source = {_norm(line) for line in (ROOT / "examples" / "tutorial" / f"step{step}.py").read_text().splitlines()}
        for line in block.splitlines():
            if re.match(r"\s*(def |Field\(|Command\(|Rule\(|    actions=|\s+params=|\s+return |.*\.(mailbox|believe))",
                        line):
                assert _norm(line) in source, (step, line)
                quoted += 1
    assert quoted >= 20
