"""Generated hostile input: corpus files (``hostile_corpus.py``) and command lines with absurd values.

A few hundred corpus files here; ``nox -s fuzz-corpus`` runs 100,000.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import pytest
from hostile_corpus import campaign, run_cli
from hypothesis import given, settings
from hypothesis import strategies as st

from fuzzer import host

ROOT = Path(__file__).resolve().parent.parent
GOOD = str(ROOT / "corpora/cxl/permissive--spec--kernel-owned-integrity--SET_LSA--lsa.json")


def test_hostile_corpus_files(tmp_path: Path) -> None:
    oracle = campaign(300, tmp_path)
    assert oracle.problems == [], "\n".join(oracle.problems[:20])
    assert oracle.stats["cases"] == 300
    # the generator reaches both sides: files that replay and files that are refused
    assert oracle.stats["replayed"] > 20 and oracle.stats["refused"] > 20, oracle.stats


ABSURD = ["", "-1", "0", "nan", "inf", "-inf", "1e309", "9" * 40, "abc", "\x1b[31mred", "[/]", "\udcff",
          "/dev/zero", "/", "/nonexistent/dir/x", "redis://127.0.0.1:1/0", "x" * 5000, "--", "-", "\n"]
# Values that are valid but would make the run long are left out of the options that set the budget.
BUDGET_OK = {"--time": ["0.1"], "--workers": ["1"], "--max-examples": ["1"]}
RUN_OPTIONS = ["--policy", "--device", "--without", "--seed", "--time", "--max-examples", "--steps", "--corpus",
               "--db", "--workers", "--json", "--junit"]


@st.composite
def command_lines(draw: st.DrawFn, tmp: Path) -> list[str]:
    value = st.sampled_from(ABSURD)
    command = draw(st.sampled_from(["run", "replay", "export", "list", "new-plugin", "top"]))
    if command == "run":
        option = draw(st.sampled_from(RUN_OPTIONS))
        v = draw(value)
        if option in BUDGET_OK and v not in ("0", "-1", "", "nan", "inf", "-inf", "abc", "1e309", "\n", "[/]"):
            v = BUDGET_OK[option][0]
        if option == "--seed" and v == "9" * 40:
            v = "9" * 40  # a huge seed is fine and fast
        sub = draw(st.sampled_from(["cxl", "rdma", *ABSURD[:4]]))
        base = ["run", sub, "--policy", "permissive", "--max-examples", "1", "--steps", "2", "--time", "5",
                "--corpus", str(tmp / "c")]
        return [*base, option, v]
    if command == "replay":
        return ["replay", *draw(st.lists(st.one_of(value, st.just(GOOD)), min_size=1, max_size=3)),
                *draw(st.sampled_from([[], ["-q"], ["--policy", draw(value)], ["--without", draw(value)]]))]
    if command == "export":
        opts = draw(st.sampled_from([["--format", draw(value)], ["-o", draw(value)], ["--format", "c", "-o",
                                                                                      str(tmp / "x.c")]]))
        return ["export", draw(st.one_of(value, st.just(GOOD))), *opts]
    if command == "new-plugin":
        return ["new-plugin", draw(value), "-o", str(tmp / "p.py"), "--force"]
    if command == "list":
        return ["list"]
    return [draw(value), *draw(st.lists(value, max_size=2))]


@pytest.fixture(scope="module")
def cli_tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cli")


@settings(max_examples=150)
@given(data=st.data(), encoding=st.sampled_from(["utf-8", "ascii"]))
def test_absurd_command_lines(cli_tmp: Path, data: st.DataObject, encoding: str) -> None:
    argv = data.draw(command_lines(cli_tmp))
    start = time.monotonic()
    with contextlib.chdir(cli_tmp):  # `export -o -1` writes a file named -1: not into the checkout
        code, out, err = run_cli(argv, encoding)
    assert time.monotonic() - start < 60, argv
    assert "Traceback" not in out + err, (argv, err)
    assert code in (0, 1, 2), (argv, code, err)
    if code == 2:
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("ptfuzz: error:"), (argv, err)
    assert "\x1b" not in out + err, argv


def test_registry_cache_is_not_left_installed() -> None:
    assert host.load.__name__ == "load"
