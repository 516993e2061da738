"""A plugin's mistake is one line, exit 2, naming the plugin and the record: never a traceback or exit 1."""

from __future__ import annotations

from pathlib import Path

import pytest
from badinput import assert_error, ptfuzz

TOY = Path(__file__).with_name("toy.py")
HEAD = "from fuzzer import *\nimport toy\nTOY, SUBSYSTEM = toy.TOY, toy.SUBSYSTEM\n"


def plugin(tmp_path: Path, name: str, body: str) -> Path:
    path = tmp_path / f"{name}.py"
    path.write_text(HEAD + body)
    return path


@pytest.fixture(autouse=True)
def _toy_importable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(TOY.parent))


def run_toy(p: Path, policy: str = "bad") -> list[object]:
    return ["--plugin", TOY, "--plugin", p, "run", "toy", "--policy", policy, "--seed", "1",
            "--max-examples", "50", "--corpus", p.parent / "out"]


def test_invariant_that_raises(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = plugin(tmp_path, "badinv", '''
def boom(ctx):
    return [1 / 0]
@hookimpl
def ptfuzz_invariants():
    return [Invariant("boom", boom, subsystem="toy")]
''')
    assert_error(capsys, run_toy(p, "toy-linux"), "plugin 'badinv'", "invariant 'boom'", "ZeroDivisionError",
                 "badinv.py:", "in boom")


@pytest.mark.parametrize(("param", "needle"), [
    ('Param("x", "float")', "unknown kind 'float'"),
    ('Param("x", "choice")', "a choice needs choices"),
    ('Param("x", "int", 5, 1)', "lo=5 is above hi=1"),
    ('Param("x", "handle")', "a handle needs bundle"),
])
def test_bad_params_are_refused_at_load(tmp_path: Path, capsys: pytest.CaptureFixture[str], param: str,
                                        needle: str) -> None:
    p = plugin(tmp_path, "badparam", f"P = {param}\n")
    assert_error(capsys, ["--plugin", TOY, "--plugin", p, "list"], "badparam", f"Param('x'): {needle}")


def test_rule_that_raises(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = plugin(tmp_path, "badrule", '''
def check(r):
    return {}["missing"]
@hookimpl
def ptfuzz_policies():
    return [Policy("bad", "toy", channels=(TOY,), rules=(Rule("crashy", check, "nowhere"),))]
''')
    assert_error(capsys, run_toy(p), "plugin 'badrule'", "policy 'bad'", "rule 'crashy'", "KeyError",
                 "badrule.py:", "in check")


def test_rewrite_of_an_unknown_argument(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = plugin(tmp_path, "badrewrite", '''
@hookimpl
def ptfuzz_policies():
    return [Policy("bad", "toy", channels=(TOY,),
                   rules=(Rule("typo", lambda r: Rewrite({"mut": 1}), "nowhere", ops=("SET_MTU",)),))]
''')
    assert_error(capsys, run_toy(p), "plugin 'badrewrite'", "rule 'typo'", "rewrote ['mut']", "SET_MTU")


def test_handler_that_returns_no_reply(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = plugin(tmp_path, "badreply", '''
def nothing(dev, args):
    dev.state["counter"] = 7
@hookimpl
def ptfuzz_commands():
    return [CommandSet("toy", (Command("NOTHING", 0x33, (TOY,), nothing),))]
@hookimpl
def ptfuzz_policies():
    return [Policy("bad", "toy", channels=(TOY,))]
''')
    assert_error(capsys, run_toy(p), "plugin 'badreply'", "NOTHING", "returned NoneType, not a Reply")


def test_reaction_that_raises(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = plugin(tmp_path, "badreact", '''
def after(world, request, reply):
    world.kernel["x"] = 1 / 0
@hookimpl
def ptfuzz_policies():
    return [Policy("bad", "toy", channels=(TOY,), reactions=(Reaction("after", after, "nowhere"),))]
''')
    assert_error(capsys, run_toy(p), "plugin 'badreact'", "reaction 'after'", "ZeroDivisionError", "badreact.py:")


def test_owned_field_the_kernel_never_believed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = plugin(tmp_path, "badowner", '''
import attrs
SUB = attrs.evolve(SUBSYSTEM, name="toy2", probe=lambda world: None)
@hookimpl
def ptfuzz_subsystems():
    return [SUB]
@hookimpl
def ptfuzz_policies():
    return [Policy("open", "toy2", channels=(TOY,))]
''')
    assert_error(capsys, ["--plugin", p, "run", "toy2", "--policy", "open", "--seed", "1", "--max-examples", "50",
                          "--corpus", tmp_path], "link.mtu", "kernel-owned now but the kernel holds no belief",
                 "world.believe('link.mtu')")


def test_duplicate_names_in_a_policy(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = plugin(tmp_path, "baddup", '''
@hookimpl
def ptfuzz_policies():
    return [Policy("bad", "toy", channels=(TOY,), rules=(Rule("x", lambda r: None, "a"),),
                   reactions=(Reaction("x", lambda w, r, p: None, "b"),))]
''')
    assert_error(capsys, ["--plugin", TOY, "--plugin", p, "list"], "plugin 'baddup'", "policy 'bad'", "['x'] twice")


def test_list_shows_a_subsystem_without_policies(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = plugin(tmp_path, "nopolicy", '''
import attrs
@hookimpl
def ptfuzz_subsystems():
    return [attrs.evolve(SUBSYSTEM, name="lonely")]
''')
    code, out, err = ptfuzz(capsys, "--plugin", p, "list")
    assert code == 0 and "lonely" in out and "(none)" in out and not err


def test_plugin_package_directory_is_named_after_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pkg = tmp_path / "acmepkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("from toy import *\nfrom .extra import *\n")
    (pkg / "extra.py").write_text("X = 1\n")
    for arg in (pkg, pkg / "__init__.py"):
        code, out, err = ptfuzz(capsys, "--plugin", arg, "list")
        assert code == 0, err
        assert "plugin acmepkg" in out and "__init__" not in out


def test_subsystem_where_nothing_can_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = plugin(tmp_path, "nostart", '''
import attrs
SUB = attrs.evolve(SUBSYSTEM, name="stuck", actions=(), commands=(SUBSYSTEM.commands[1],))
@hookimpl
def ptfuzz_subsystems():
    return [SUB]
@hookimpl
def ptfuzz_policies():
    return [Policy("open", "stuck", channels=(TOY,))]
''')
    assert_error(capsys, ["--plugin", p, "run", "stuck", "--policy", "open", "--seed", "1", "--max-examples", "5",
                          "--corpus", tmp_path], "stuck", "no action or command can run")
