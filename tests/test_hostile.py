"""Issue 9: hostile corpus files and hostile terminals, one test per reported failure.

Each test here failed before the fix it names.  The generated counterpart
(Hypothesis builds the hostile files) is ``tests/test_hostile_fuzz.py``.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import attrs
import pytest
from badinput import BASE, assert_error, doc, ptfuzz, with_step, write
from committed import corpus_files
from hostile import (
    GCC,
    MARKER,
    c_export_problems,
    gcc_problems,
    python_export_problems,
    reference_body,
)
from ptfuzz_cxl.export_c import render_c

from fuzzer import corpus, files
from fuzzer.replay import replay as do_replay
from fuzzer.spec import Caller

ROOT = Path(__file__).resolve().parent.parent
RDMA = ROOT / "corpora/rdma/linux-devx-2019--lax--kernel-owned-integrity--OBJ_MODIFY_general--general.json"
ESC = "\x1b[31mRED\x1b]0;title\x07\x9b2J"


def violation(**changes: Any) -> dict[str, Any]:
    d = doc()
    d["violation"].update(changes)
    return d


def export(capsys: pytest.CaptureFixture[str], path: Path, fmt: str, out: Path) -> str:
    code, _, err = ptfuzz(capsys, "export", path, "--format", fmt, "-o", out)
    assert code == 0, err
    return out.read_text()


def good_pytest_body(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> str:
    return reference_body(export(capsys, write(tmp_path, BASE, "good.json"), "pytest", tmp_path / "good.py"))


# ----------------------------------------------------------------------------- security: exporters

PY_INJECT = f'x"""\nimport os; {MARKER} = os.getpid()\n"""\n# '
C_INJECT = f"x */ int {MARKER} = 1; /* \n#error {MARKER}\n\\"


@pytest.mark.parametrize("field", ["message", "signature"])
def test_pytest_export_never_turns_corpus_text_into_code(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                        field: str) -> None:
    path = write(tmp_path, violation(**{field: PY_INJECT}))
    text = export(capsys, path, "pytest", tmp_path / "test_x.py")
    assert python_export_problems(text, good_pytest_body(capsys, tmp_path)) == []
    assert f"\n{MARKER}" not in text and "\nimport os" not in text


def test_pytest_export_of_a_crafted_file_runs_nothing_when_collected(tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    marker = tmp_path / "RAN"
    evil = f'"""\nopen({str(marker)!r}, "w").close()\n"""'
    path = write(tmp_path, violation(message=evil, signature=evil))
    out = tmp_path / "test_exported.py"
    export(capsys, path, "pytest", out)
    subprocess.run([sys.executable, "-m", "pytest", "-q", "--collect-only", str(out)], cwd=tmp_path,
                   capture_output=True, timeout=120, check=False)
    assert not marker.exists()


def test_c_export_keeps_corpus_text_out_of_code(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = violation(message=C_INJECT, signature=C_INJECT)
    d["steps"][0] = {"actor": "kernel", "action": "region_destroy", "args": {"region": C_INJECT + "??/"}}
    folder = tmp_path / "a*" / f" int {MARKER}; "  # the path holds "*/ int ...;"
    folder.mkdir(parents=True)
    path = write(folder, d)
    src = export(capsys, path, "c", tmp_path / "x.c")
    assert c_export_problems(src) == []
    assert gcc_problems([tmp_path / "x.c"]) == ""


def test_c_export_escapes_a_caller_that_slipped_past_the_loader(registry: Any, tmp_path: Path) -> None:
    """Defence in depth: render_c itself sanitises caller capabilities, scopes and switches."""
    rep = do_replay(registry, corpus.load(write(tmp_path, BASE)))
    evil = Caller(frozenset({C_INJECT}), C_INJECT, C_INJECT, frozenset({C_INJECT}))
    user = attrs.evolve(rep.entry.steps[1], caller=evil)
    src = render_c(attrs.evolve(rep, entry=attrs.evolve(rep.entry, steps=(rep.entry.steps[0], user))))
    assert c_export_problems(src) == []
    (tmp_path / "y.c").write_text(src)
    assert gcc_problems([tmp_path / "y.c"]) == ""


@pytest.mark.parametrize(
    ("caller", "what"),
    [
        ({"caps": ["CAP_SYS_ADMIN", f"*/ int {MARKER};"]}, "caller capability"),
        ({"caps": [], "scope": "debug_write"}, "caller scope"),  # cxl.ioctl has no scopes
        ({"caps": [], "lockdown": "paranoid"}, "caller lockdown state"),
        ({"caps": [], "switches": ["raw_allow_all"]}, "caller switch"),  # only cxl.raw declares it
    ],
)
def test_loader_refuses_undeclared_callers(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                           caller: dict[str, Any], what: str) -> None:
    path = write(tmp_path, with_step(2, {**copy.deepcopy(BASE["steps"][1]), "caller": caller}))
    for command in ("replay", "export"):
        assert_error(capsys, [command, path], str(path), "step 2", what, "not declared", "cxl.ioctl")


def test_declared_callers_still_load(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    step = {"actor": "user", "channel": "cxl.raw", "op": "SET_PARTITION_INFO",
            "caller": {"caps": ["CAP_SYS_ADMIN", "CAP_SYS_RAWIO"], "lockdown": "integrity",
                       "switches": ["raw_allow_all"]}, "args": {"volatile": 4, "immediate": True}}
    code, _, err = ptfuzz(capsys, "replay", write(tmp_path, with_step(2, step)))
    assert code in (0, 1) and err == "", err


# ----------------------------------------------------------------------------- security: terminals


def test_escape_sequences_are_shown_not_sent(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / f"dir{ESC}"
    folder.mkdir()
    path = write(folder, violation(signature=f"sig{ESC}", message=f"msg{ESC}"))
    for args in (["replay", path], ["replay", "-q", path], ["export", path]):
        code, out, err = ptfuzz(capsys, *args)
        assert code in (0, 1), err
        assert "\x1b" not in out + err and "\x07" not in out + err and "\x9b" not in out + err
        assert "\\x1b[31mRED" in out
    line = assert_error(capsys, ["replay", path, "--policy", f"nope{ESC}"], "unknown policy")
    assert "\x1b" not in line and "\\x1b" in line


# ----------------------------------------------------------------------------- crashes


@pytest.mark.parametrize("text", ["[/]", "[bold]x[/bold]", "[link=file:///etc/passwd]y", "x\ud800y", "\udcff"])
def test_markup_and_surrogates_print(tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str) -> None:
    folder = tmp_path / "[" / "]"  # the path holds "[/]"
    folder.mkdir(parents=True)
    raw = json.dumps(violation(signature=f"s{text}", message=f"m{text}"))  # \ud800 stays a JSON escape
    path = write(folder, raw)
    for args in (["replay", path], ["replay", "-q", path], ["export", path],
                 ["export", path, "--format", "pytest"], ["export", path, "--format", "c"]):
        code, out, err = ptfuzz(capsys, *args)
        assert code in (0, 1), (args, err)
        assert "Traceback" not in out + err


def test_an_ascii_terminal_gets_escapes_not_a_crash(tmp_path: Path) -> None:
    path = write(tmp_path, json.dumps(violation(signature="s\u00e9\u2603\ud800", message="m\u00e9")))
    for args in (["replay", str(path)], ["replay", "-q", str(path)], ["export", str(path)]):
        proc = subprocess.run([sys.executable, "-m", "fuzzer", *args], capture_output=True, timeout=120,
                              env={**os.environ, "PYTHONIOENCODING": "ascii"}, check=False)
        assert proc.returncode in (0, 1), proc.stderr
        assert b"Traceback" not in proc.stdout + proc.stderr
        assert b"\\xe9" in proc.stdout  # backslashreplace, never a raw UTF-8 byte


def test_a_fifo_is_refused_not_waited_on(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.json"
    os.mkfifo(fifo)
    proc = subprocess.run([sys.executable, "-m", "fuzzer", "replay", str(fifo)], capture_output=True,
                          text=True, timeout=60, check=False)
    assert proc.returncode == 2 and "a FIFO" in proc.stderr and "Traceback" not in proc.stderr


def test_a_device_is_refused_not_read_forever(capsys: pytest.CaptureFixture[str]) -> None:
    assert_error(capsys, ["replay", "/dev/zero"], "/dev/zero", "is a character device")
    assert_error(capsys, ["export", "/dev/zero"], "/dev/zero", "is a character device")


def test_size_cap(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, doc(pad="x" * files.MAX_BYTES))
    assert_error(capsys, ["replay", path], str(path), "16 MiB cap")


def test_long_values_are_cut_in_messages(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    long = "A" * 2_000_000
    for d in (with_step(2, {**copy.deepcopy(BASE["steps"][1]), "op": long}), doc(policy=long),
              doc(format=long), with_step(1, {"actor": long})):
        path = write(tmp_path, d)
        line = assert_error(capsys, ["replay", path], str(path), "2,000,000 chars)")
        assert len(line) < 600, len(line)


def test_rdma_replay_is_linear(registry: Any, tmp_path: Path) -> None:
    base = json.loads(RDMA.read_text())

    def seconds(n: int) -> float:
        d = copy.deepcopy(base)
        d["steps"] = base["steps"] * (n // len(base["steps"]))
        entry = corpus.load(write(tmp_path, d, f"n{n}.json"))
        t = time.perf_counter()
        do_replay(registry, entry)
        return time.perf_counter() - t

    small, large = seconds(2_000), seconds(20_000)
    assert large < 10, large
    assert large / small < 25, (small, large)  # quadratic would be ~100


def _events_per_step(ex: Any, steps: list[Any]) -> float:
    """Python and C calls the executor and the model make per step over ``steps`` (work, counted, not timed)."""
    calls = [0]

    def count(frame: Any, event: str, arg: Any) -> None:
        if event in ("call", "c_call"):
            calls[0] += 1

    sys.setprofile(count)
    try:
        for step in steps:
            ex.apply(step)
    finally:
        sys.setprofile(None)
    return calls[0] / len(steps)


def test_gpu_replay_work_per_step_does_not_grow(registry: Any) -> None:
    """A gpu step late in a 20,000-step replay costs what it costs early on (it once grew with the objects held).

    The same 500 steps are applied after 2,000 and after 19,500 earlier
    steps; every call the executor, the policy and the model make is counted
    (``sys.setprofile``): the executor's diff and the model's object scans call
    ``dict.get`` and ``str.startswith`` once per object held.
    """
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from bench_executor import make_steps
    from ptfuzz_gpu.kernel import MAX_BOS, MAX_FENCES, MAX_FILES

    ex = registry.executor("gpu", registry.policy("gpu", "permissive"), registry.device("gpu", "spec"))
    steps = make_steps(ex, 20_000, 0)
    window = steps[1_000:1_500]
    ex.reset()
    for step in steps[:2_000]:
        ex.apply(step)
    early = _events_per_step(ex, window)
    for step in steps[2_000:19_500]:
        ex.apply(step)
    late = _events_per_step(ex, window)
    assert late < 1.3 * early, (early, late)
    kernel = ex.world.kernel
    assert len(kernel["clients"]) + len(kernel["regs2"]) <= MAX_FILES
    assert len(kernel["bos"]) <= MAX_BOS and len(kernel["fences"]) <= MAX_FENCES


# ----------------------------------------------------------------------------- temporary files


def test_save_uses_dot_temporaries_and_cleans_old_ones(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    entry = corpus.load(write(tmp_path, BASE))
    d = tmp_path / "corpus"
    d.mkdir()
    old = [d / ".tmp-abc.json", d / ".ptfuzz-tmp-old"]
    young = d / ".ptfuzz-tmp-young"
    for p in [*old, young]:
        p.write_text("{trunc")
    for p in old:
        os.utime(p, (time.time() - 3600, time.time() - 3600))
    seen: list[str] = []
    real = os.replace
    monkeypatch.setattr(os, "replace", lambda a, b: (seen.append(os.path.basename(a)), real(a, b))[1])
    saved = corpus.save(d, entry)
    assert seen and all(n.startswith(".ptfuzz-tmp-") and not n.endswith(".json") for n in seen)
    assert not any(p.exists() for p in old) and young.exists()
    assert sorted(p.name for p in d.iterdir()) == sorted([saved.name, young.name])


def test_replay_dir_ignores_leftovers_and_dot_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = tmp_path / "corpus"
    (d / ".git").mkdir(parents=True)
    write(d, BASE, "good.json")
    for name in (".tmp-x.json", ".ptfuzz-tmp-y", "notes.txt", ".git/bad.json"):
        (d / name).write_text("{trunc")
    (d / "dir.json").mkdir()
    code, out, err = ptfuzz(capsys, "replay", "-q", d)
    assert code == 1, err
    assert out.count("FAILS") == 1 and "good.json" in out


@pytest.mark.parametrize("name", ["empty", "x.json"])
def test_replay_of_an_empty_directory_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                  name: str) -> None:
    (tmp_path / name).mkdir()
    assert_error(capsys, ["replay", tmp_path / name], name, "no corpus files")


# ----------------------------------------------------------------------------- exit codes


def test_internal_error_exits_3(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args: Any, **kw: Any) -> Any:
        raise RuntimeError("a bug\nin ptfuzz")

    monkeypatch.setattr("fuzzer.cli.do_replay", boom)
    code, _, err = ptfuzz(capsys, "replay", write(tmp_path, BASE))
    assert code == 3, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ptfuzz: internal error: RuntimeError: a bug in ptfuzz")


def test_redis_failing_mid_run_is_a_configuration_error(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    error = type("ConnectionError", (Exception,), {"__module__": "redis.exceptions"})

    def down(*args: Any, **kw: Any) -> Any:
        raise error("Error 111 connecting to localhost:6379. Connection refused.")

    monkeypatch.setattr("fuzzer.cli.do_replay", down)
    assert_error(capsys, ["replay", write(tmp_path, BASE)], "--db", "Redis", "Connection refused")


def test_redis_db_is_checked_before_the_campaign(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    start = time.monotonic()
    assert_error(capsys, ["run", "cxl", "--policy", "permissive", "--time", "600", "--corpus", tmp_path,
                          "--db", "redis://127.0.0.1:1/0"], "--db", "redis")
    assert time.monotonic() - start < 30


PLUGIN_EXITS = {
    "at-import": "import sys\nsys.exit(0)\n",
    "in-hook": """
        import sys
        from fuzzer import hookimpl

        @hookimpl
        def ptfuzz_policies():
            sys.exit(0)
    """,
    "in-handler": """
        import sys
        from fuzzer import hookimpl, Command, CommandSet, Effect

        def bye(dev, args):
            sys.exit(0)

        @hookimpl
        def ptfuzz_commands():
            return [CommandSet("cxl", (Command("BYE", 0xC1FF, ("cxl.raw",), bye, effects=Effect.NONE),))]
    """,
    "in-invariant": """
        import sys
        from fuzzer import hookimpl, Invariant

        def check(ctx):
            sys.exit(0)

        @hookimpl
        def ptfuzz_invariants():
            return [Invariant("bye", check)]
    """,
}


@pytest.mark.parametrize("where", list(PLUGIN_EXITS))
def test_a_plugin_calling_sys_exit_does_not_end_the_run_clean(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                              where: str) -> None:
    p = tmp_path / "byeplug.py"
    p.write_text(textwrap.dedent(PLUGIN_EXITS[where]))
    if where in ("at-import", "in-hook"):
        assert_error(capsys, ["--plugin", p, "list"], "byeplug", "SystemExit")
    else:
        step = {"actor": "user", "channel": "cxl.raw", "op": "BYE", "caller": {"caps": []}, "args": {}}
        path = write(tmp_path, with_step(2, step) if where == "in-handler" else BASE)
        assert_error(capsys, ["--plugin", p, "replay", path], "SystemExit")
        # enough sequences for the search to draw BYE among the RAW commands (the DCD opcodes included)
        assert_error(capsys, ["--plugin", p, "run", "cxl", "--policy", "permissive", "--seed", "1",
                              "--max-examples", "50", "--corpus", tmp_path / "c"], "SystemExit")


# ----------------------------------------------------------------------------- --json / --junit


@pytest.mark.parametrize("option", ["--json", "--junit"])
def test_output_targets_are_checked_before_the_campaign(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                        option: str) -> None:
    start = time.monotonic()
    assert_error(capsys, ["run", "cxl", "--policy", "permissive", "--time", "600", "--corpus", tmp_path,
                          option, tmp_path / "no" / "x.out"], option)
    assert_error(capsys, ["run", "cxl", "--policy", "permissive", "--time", "600", "--corpus", tmp_path,
                          option, tmp_path], option, "is a directory")
    assert time.monotonic() - start < 30


def test_writing_json_leaves_an_unrelated_tmp_file_alone(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    mine = tmp_path / "summary.tmp"
    mine.write_text("my notes")
    code, _, err = ptfuzz(capsys, "run", "cxl", "--policy", "linux-ioctl", "--seed", "1", "--max-examples", "2",
                          "--steps", "1", "--corpus", tmp_path / "c", "--json", tmp_path / "summary.json",
                          "--junit", tmp_path / "summary.xml")
    assert code in (0, 1), err
    assert mine.read_text() == "my notes"
    assert json.loads((tmp_path / "summary.json").read_text())["policy"] == "linux-ioctl"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".ptfuzz-tmp")]


@pytest.mark.parametrize(("option", "value"), [("--time", "nan"), ("--time", "inf"), ("--workers", "100000")])
def test_absurd_budgets_are_refused(capsys: pytest.CaptureFixture[str], option: str, value: str) -> None:
    assert_error(capsys, ["run", "cxl", "--policy", "permissive", option, value], option)


# ----------------------------------------------------------------------------- silent acceptance


@pytest.mark.parametrize(
    ("raw", "needles"),
    [
        pytest.param({**BASE, "extra": 1}, ("unknown key(s) 'extra'",), id="top-level"),
        pytest.param(violation(colour="red"), ("unknown violation key(s) 'colour'",), id="violation"),
        pytest.param(with_step(2, {**BASE["steps"][1], "opp": "X"}), ("step 2", "unknown key(s) 'opp'"), id="step"),
        pytest.param(json.dumps(BASE)[:-1] + ', "policy": "linux-raw"}', ("top level", "'policy'", "more than once"),
                     id="duplicate-top"),
        pytest.param(json.dumps(BASE).replace('"volatile": 4', '"volatile": 4, "volatile": 2'),
                     ("steps[1].args", "'volatile'", "more than once"), id="duplicate-arg"),
        pytest.param(json.dumps(BASE).replace('"seed": 3', '"seed": NaN'), ("NaN",), id="nan"),
        pytest.param(violation(step="2"), ("'step' must be int",), id="violation-type"),
        pytest.param(doc(seed=True), ("'seed' must be an integer",), id="bool-seed"),
    ],
)
def test_unknown_and_duplicate_keys_are_named(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                              raw: Any, needles: tuple[str, ...]) -> None:
    path = write(tmp_path, raw)
    assert_error(capsys, ["replay", path], str(path), *needles)


@pytest.mark.skipif(GCC is None, reason="no gcc")
def test_every_committed_cxl_finding_exports_cleanly_in_iso_c(registry: Any, tmp_path: Path) -> None:
    paths = []
    for path in corpus_files("cxl"):
        src = render_c(do_replay(registry, corpus.load(path)))
        assert c_export_problems(src) == [], path.name
        paths.append(tmp_path / (path.stem + ".c"))
        paths[-1].write_text(src)
    assert gcc_problems(paths) == ""



# ----------------------------------------------------------------------------- issue 19: plugin text, files


MARKUP_PLUGIN = '''
from fuzzer import hookimpl, Policy

@hookimpl
def ptfuzz_policies():
    return [Policy({name!r}, "cxl", channels=("cxl.raw", "cxl.ioctl"), doc={doc!r}, kernel={version!r})]
'''


@pytest.mark.parametrize("name", ["[/]", "[bold]x[/bold]", "a/../../b", "x\x1b[2Jy"])
def test_a_policy_name_is_shown_as_written_and_never_a_path(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                            name: str) -> None:
    """Markup in a plugin's names once made ``list`` and ``run`` exit 3; ``/`` must not leave the corpus."""
    p = tmp_path / "markupplug.py"
    p.write_text(MARKUP_PLUGIN.format(name=name, doc="[red]doc[/red] " + ESC, version="[/]"))
    code, out, err = ptfuzz(capsys, "--plugin", p, "list")
    assert code == 0, err
    assert "\x1b" not in out and "\x07" not in out
    row = next(line for line in out.splitlines() if "markupplug" in line)
    assert name.replace("\x1b", "\\x1b") in row and "[red]doc[/red]" in row and "\\x1b[31mRED" in row
    corpus_dir = tmp_path / "c"
    code, out, err = ptfuzz(capsys, "--plugin", p, "run", "cxl", "--policy", name, "--seed", "1",
                            "--max-examples", "20", "--corpus", corpus_dir)
    assert code == 1, err
    assert f"policy={name}" in out.replace("\\x1b", "\x1b")
    saved = [f for f in corpus_dir.rglob("*") if f.is_file()]
    assert saved and all(f.parent == corpus_dir / "cxl" for f in saved), saved
    assert not list(tmp_path.glob("b*")) and not (tmp_path.parent / "b").exists()


def test_new_plugin_keeps_a_hostile_path_out_of_code(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``-o PATH`` goes into the generated docstring: a path holding ``\"\"\"`` once became code."""
    import ast

    path = tmp_path / f'x"""\nimport os; {MARKER} = os.getpid()\n"""\\#\x1b[31m.py'
    code, out, err = ptfuzz(capsys, "new-plugin", "widget", "-o", path)
    assert code == 0, err
    assert "\x1b" not in out
    source = path.read_text()
    tree = ast.parse(source)
    assert MARKER not in {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    namespace: dict[str, Any] = {}
    exec(compile(tree, str(path), "exec"), namespace)  # the generated plugin, run as an import would
    assert MARKER not in namespace
    doc = ast.get_docstring(tree) or ""
    assert str(path) in doc.replace("'\"'\"'", "'")  # the docstring shows the command to type, shell-quoted


@pytest.mark.parametrize("mask", [0o022, 0o077])
def test_written_files_follow_the_umask(tmp_path: Path, capsys: pytest.CaptureFixture[str], mask: int) -> None:
    """Every file ptfuzz writes was 0600 whatever the umask; now what ``open()`` would make."""
    old = os.umask(mask)
    try:
        corpus_dir = tmp_path / "c"
        code, _, err = ptfuzz(capsys, "run", "cxl", "--policy", "permissive", "--seed", "1", "--max-examples", "5",
                              "--corpus", corpus_dir, "--json", tmp_path / "r.json", "--junit", tmp_path / "r.xml")
        assert code == 1, err
        code, _, err = ptfuzz(capsys, "export", write(tmp_path, BASE), "-o", tmp_path / "e.txt")
        assert code == 0, err
        code, _, err = ptfuzz(capsys, "new-plugin", "widget", "-o", tmp_path / "w.py")
        assert code == 0, err
    finally:
        os.umask(old)
    written = [*corpus_dir.rglob("*.json"), *(tmp_path / n for n in ("r.json", "r.xml", "e.txt", "w.py"))]
    assert len(written) > 4
    for f in written:
        assert f.stat().st_mode & 0o777 == 0o666 & ~mask, (f, oct(f.stat().st_mode))


def test_rewriting_a_file_keeps_its_mode(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "r.json"
    out.write_text("{}")
    out.chmod(0o640)
    code, _, err = ptfuzz(capsys, "run", "cxl", "--policy", "permissive", "--seed", "1", "--max-examples", "5",
                          "--corpus", tmp_path / "c", "--json", out)
    assert code == 1, err
    assert out.stat().st_mode & 0o777 == 0o640 and json.loads(out.read_text())["subsystem"] == "cxl"


def test_migrate_writes_through_a_symlink(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``ptfuzz migrate`` once replaced a linked corpus file with a file: the link stays, its target changes."""
    real = write(tmp_path, BASE, "real.json")
    (tmp_path / "corpus").mkdir()
    link = tmp_path / "corpus" / "linked.json"
    link.symlink_to(real)
    code, _, err = ptfuzz(capsys, "migrate", link)
    assert code == 0, err
    assert link.is_symlink() and link.resolve() == real.resolve()
    assert json.loads(real.read_text())["format"] == corpus.FORMAT
    assert not [f for f in (tmp_path / "corpus").iterdir() if f != link]  # no temporary left beside the link


def test_json_output_writes_through_a_symlink(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "reports").mkdir()
    real = tmp_path / "reports" / "latest.json"
    real.write_text("{}")
    link = tmp_path / "r.json"
    link.symlink_to(real)
    code, _, err = ptfuzz(capsys, "run", "cxl", "--policy", "permissive", "--seed", "1", "--max-examples", "5",
                          "--corpus", tmp_path / "c", "--json", link)
    assert code == 1, err
    assert link.is_symlink() and json.loads(real.read_text())["subsystem"] == "cxl"


def test_recorded_bytes_must_be_what_replay_sends(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A format-2 file claiming ``dede...`` once replayed while sending ``0105...``."""
    committed = ROOT / "corpora/cxl/linux-fwctl-unchecked-sizes--spec--out-of-bounds--cxl_get_feature--rpc_out.json"
    d = json.loads(committed.read_text())
    assert d["format"] == corpus.FORMAT
    code, _, err = ptfuzz(capsys, "replay", "-q", write(tmp_path, d, "honest.json"))
    assert code == 1, err  # the control: the committed finding replays, its bytes as recorded
    n, step = next((i, s) for i, s in enumerate(d["steps"], 1) if s.get("bytes"))
    step["bytes"] = "dede" + step["bytes"][4:]
    path = write(tmp_path, d, "edited.json")
    assert_error(capsys, ["replay", path], "edited.json", f"step {n}", "'bytes'", "dede", step["bytes"][4:8])
    del step["bytes"]  # a step that records no bytes is not checked
    code, _, err = ptfuzz(capsys, "replay", "-q", write(tmp_path, d, "nobytes.json"))
    assert code == 1, err
    kernel = next(s for s in d["steps"] if s["actor"] == "kernel") if any(
        s["actor"] == "kernel" for s in d["steps"]) else None
    assert kernel is None or "bytes" not in kernel


def test_a_loop_of_links_is_refused_not_replaced(tmp_path: Path) -> None:
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    with pytest.raises(OSError, match="symbolic links"):
        files.write_atomic(tmp_path / "a", "{}")
    assert (tmp_path / "a").is_symlink() and sorted(p.name for p in tmp_path.iterdir()) == ["a", "b"]
