"""Bad input ends ptfuzz with exit code 2 and one clear line naming the culprit, never a traceback.

Every CLI call runs in-process through ``fuzzer.cli.main`` (catching
``SystemExit``), except two that run ``python -m fuzzer`` in a subprocess to
prove that nothing reaches the real stderr but the one line.  Corpus files
are built by hand from the ``ptfuzz.sequence/1`` format in ``fuzzer/corpus.py``.
"""

from __future__ import annotations

import copy
import json
import os
import pickle
import subprocess
import sys
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


# ----------------------------------------------------------------------------- the base file is good


def test_hand_built_corpus_file_replays(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = ptfuzz(capsys, "replay", write(tmp_path, BASE))
    assert code == 1, (out, err)  # the permissive policy lets SET_PARTITION_INFO move kernel-owned state
    assert "still fails" in out
    assert err == ""


# ----------------------------------------------------------------------------- corpus files: structure


@pytest.mark.parametrize(
    ("content", "needles"),
    [
        pytest.param('{"format": "ptfuzz.sequence/1", "steps": [', ("not valid JSON",), id="malformed"),
        pytest.param("", ("not valid JSON",), id="empty-file"),
        pytest.param(b"\xff\xfe{\x00}\x00", ("not UTF-8",), id="not-utf8"),
        pytest.param([BASE], ("top level must be a JSON object",), id="top-level-list"),
        pytest.param('"ptfuzz.sequence/1"', ("top level must be a JSON object",), id="top-level-string"),
        pytest.param(doc(format="ptfuzz.sequence/99"), ("unknown format", "ptfuzz.sequence/99"), id="format-99"),
        pytest.param({k: v for k, v in BASE.items() if k != "format"}, ("unknown format",), id="no-format"),
        pytest.param(doc(steps=[]), ("'steps' is empty",), id="empty-steps"),
        pytest.param(doc(steps={"1": KERNEL_STEP}), ("'steps' must be list",), id="steps-not-list"),
        pytest.param({k: v for k, v in BASE.items() if k != "steps"}, ("missing 'steps'",), id="no-steps"),
        pytest.param(doc(violation={"invariant": "x"}), ("violation", "missing 'signature'"), id="no-signature"),
        pytest.param(doc(subsystem=7), ("'subsystem' must be str",), id="subsystem-not-str"),
        pytest.param(doc(seed="3"), ("'seed' must be an integer",), id="seed-not-int"),
        pytest.param(doc(without="immediate-flag"), ("'without' must be a list",), id="without-not-list"),
        pytest.param("[" * 100_000 + "]" * 100_000, ("not valid JSON", "nested too deeply"), id="deeply-nested"),
    ],
)
def test_malformed_corpus_file(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                               content: Any, needles: tuple[str, ...]) -> None:
    path = write(tmp_path, content)
    assert_error(capsys, ["replay", path], str(path), *needles)


def test_truncated_corpus_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = json.dumps(BASE, indent=2)
    path = write(tmp_path, text[: len(text) // 2])
    assert_error(capsys, ["replay", path], str(path), "not valid JSON", "line ")


def test_integer_too_long_to_parse(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = json.dumps(BASE).replace('"volatile": 4', '"volatile": ' + "9" * 5000)
    path = write(tmp_path, text)
    assert_error(capsys, ["replay", path], str(path), "not valid JSON")


def test_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "nosuch.json"
    assert_error(capsys, ["replay", path], str(path), "cannot read")


def test_missing_file_for_export(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "nosuch.json"
    assert_error(capsys, ["export", path], str(path), "cannot read")


def test_second_file_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = write(tmp_path, BASE, "good.json")
    bad = write(tmp_path, doc(steps=[]), "bad.json")
    line = assert_error(capsys, ["replay", "-q", good, bad], str(bad))
    assert "good.json" not in line


# ----------------------------------------------------------------------------- corpus files: steps


@pytest.mark.parametrize(
    ("n", "step", "needles"),
    [
        pytest.param(2, dict(USER_STEP, op="NO_SUCH_OP"), ("unknown op", "NO_SUCH_OP"), id="unknown-op"),
        pytest.param(1, dict(KERNEL_STEP, action="summon"), ("unknown kernel action", "summon"),
                     id="unknown-action"),
        pytest.param(2, dict(USER_STEP, channel="cxl.nosuch"), ("unknown channel", "cxl.nosuch"),
                     id="unknown-channel"),
        pytest.param(2, dict(USER_STEP, args={"volatile": 10**6, "immediate": True}),
                     ("argument 'volatile'", "outside"), id="value-out-of-range"),
        pytest.param(2, dict(USER_STEP, args={"volatile": -1, "immediate": True}),
                     ("argument 'volatile'", "outside"), id="value-negative"),
        pytest.param(2, dict(USER_STEP, args={"volatile": "4", "immediate": True}),
                     ("argument 'volatile'", "expected an integer"), id="value-wrong-type"),
        pytest.param(2, dict(USER_STEP, args={"volatile": 4, "immediate": 1}),
                     ("argument 'immediate'", "true or false"), id="bool-as-int"),
        pytest.param(1, dict(KERNEL_STEP, args={"mode": "rom", "size": 1}),
                     ("argument 'mode'", "'rom'"), id="bad-choice"),
        pytest.param(2, dict(USER_STEP, args={"volatile": 4, "immediate": True, "force": True}),
                     ("unknown argument", "force"), id="unknown-arg"),
        pytest.param(2, dict(USER_STEP, args={"volatile": 4}), ("missing argument 'immediate'",),
                     id="missing-arg"),
        pytest.param(1, dict(KERNEL_STEP, args={}), ("missing argument 'mode'",), id="missing-kernel-arg"),
        pytest.param(2, dict(USER_STEP, args={"volatile": 4.0, "immediate": True}),
                     ("argument 'volatile'", "number, string or boolean"), id="float-arg"),
        pytest.param(2, dict(USER_STEP, args={"volatile": [4], "immediate": True}),
                     ("argument 'volatile'",), id="list-arg"),
        pytest.param(2, dict(USER_STEP, args=[4, True]), ("'args' must be an object",), id="args-not-object"),
        pytest.param(2, dict(USER_STEP, actor="root"), ("'actor'", "'root'"), id="unknown-actor"),
        pytest.param(2, {k: v for k, v in USER_STEP.items() if k != "actor"}, ("'actor'", "None"),
                     id="missing-actor"),
        pytest.param(2, {k: v for k, v in USER_STEP.items() if k != "op"}, ("missing 'op'",), id="missing-op"),
        pytest.param(1, dict(KERNEL_STEP, action=5), ("'action' must be str",), id="action-not-str"),
        pytest.param(2, dict(USER_STEP, caller={"caps": [], "uid": 0}), ("unknown caller key", "uid"),
                     id="unknown-caller-key"),
        pytest.param(2, dict(USER_STEP, caller={"caps": "CAP_SYS_ADMIN"}), ("'caps' must be a list",),
                     id="caps-not-list"),
        pytest.param(2, dict(USER_STEP, caller=None), ("'caller' must be an object",), id="caller-null"),
        pytest.param(2, ["user", "SET_PARTITION_INFO"], ("a step must be an object",), id="step-not-object"),
    ],
)
def test_bad_step_names_file_and_step(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                      n: int, step: Any, needles: tuple[str, ...]) -> None:
    path = write(tmp_path, with_step(n, step))
    line = assert_error(capsys, ["replay", path], f"{path}: step {n}:", *needles)
    other = 3 - n
    assert f"step {other}" not in line


def test_bad_step_in_a_long_sequence(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    steps = [KERNEL_STEP] + [USER_STEP] * 10 + [dict(USER_STEP, op="NO_SUCH_OP")] + [USER_STEP] * 3
    path = write(tmp_path, doc(steps=steps))
    assert_error(capsys, ["replay", path], f"{path}: step 12:", "NO_SUCH_OP")


def test_bad_step_reported_by_export(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, with_step(2, dict(USER_STEP, args={"volatile": 4})))
    assert_error(capsys, ["export", path], f"{path}: step 2:", "missing argument 'immediate'")


# ----------------------------------------------------------------------------- corpus files: unknown names


@pytest.mark.parametrize(
    ("changes", "needles"),
    [
        pytest.param({"subsystem": "nosuchsub"}, ("unknown subsystem", "nosuchsub"), id="subsystem"),
        pytest.param({"device": "nosuchdev"}, ("unknown device", "nosuchdev"), id="device"),
        pytest.param({"policy": "nosuchpol"}, ("unknown policy", "nosuchpol"), id="policy"),
        pytest.param({"policy": "linux-fwctl", "without": ["nosuch-rule"]}, ("nosuch-rule",), id="without-rule"),
    ],
)
def test_unknown_names_in_corpus_file(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                      changes: dict[str, Any], needles: tuple[str, ...]) -> None:
    path = write(tmp_path, doc(**changes))
    assert_error(capsys, ["replay", path], str(path), *needles)
    assert_error(capsys, ["export", path], str(path), *needles)


def test_unknown_replay_policy_names_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, BASE)
    assert_error(capsys, ["replay", path, "--policy", "nosuchpol"], str(path), "unknown policy", "nosuchpol")
    assert_error(capsys, ["replay", path, "--policy", "linux-fwctl", "--without", "nosuch-rule"],
                 str(path), "nosuch-rule")


# ----------------------------------------------------------------------------- corpus files are data only

EVIL = "__import__('os').system('touch {marker}')"


def test_code_in_corpus_strings_is_never_executed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    marker = tmp_path / "PWNED"
    evil = EVIL.format(marker=marker)
    # A handle argument accepts any string: the step runs, and the kernel model finds no such region.
    runs = write(tmp_path, doc(steps=[KERNEL_STEP, {"actor": "kernel", "action": "region_destroy",
                                                   "args": {"region": evil}}]), "runs.json")
    code, out, err = ptfuzz(capsys, "replay", runs)
    assert code in (0, 1), (out, err)
    assert "Traceback" not in out + err
    # ... as a capability or a caller scope: refused, since the channel does not declare them.
    caps = write(tmp_path, with_step(2, dict(USER_STEP, caller={"caps": [evil]})), "caps.json")
    assert_error(capsys, ["replay", caps], str(caps), "step 2", "caller capability", "not declared")
    scope = write(tmp_path, with_step(2, dict(USER_STEP, caller={"scope": evil})), "scope.json")
    assert_error(capsys, ["export", scope], str(scope), "step 2", "caller scope", "not declared")
    for n, d in enumerate([
        with_step(2, dict(USER_STEP, op=evil)),
        with_step(2, dict(USER_STEP, args={"volatile": evil, "immediate": True})),
        with_step(2, dict(USER_STEP, args={evil: 1, "volatile": 4, "immediate": True})),
        doc(device=evil),
        doc(policy=evil),
        doc(subsystem=evil),
        doc(format=evil),
    ]):
        path = write(tmp_path, d, f"evil{n}.json")
        assert_error(capsys, ["replay", path], str(path))
        assert_error(capsys, ["export", path], str(path))
    assert not marker.exists()


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


def test_pickle_payload_is_not_unpickled(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    marker = tmp_path / "PWNED"
    for protocol in (0, pickle.HIGHEST_PROTOCOL):
        path = write(tmp_path, pickle.dumps(_Payload(marker), protocol=protocol), f"p{protocol}.json")
        assert_error(capsys, ["replay", path], str(path))
    assert not marker.exists()


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


# ----------------------------------------------------------------------------- plugins


def test_plugin_raises_while_registering(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = plugin(tmp_path, "boomplug", """
        from fuzzer import hookimpl

        @hookimpl
        def ptfuzz_subsystems():
            raise RuntimeError("boom")
    """)
    assert_error(capsys, ["--plugin", p, "list"], "boom", "'boomplug'", "ptfuzz_subsystems")
    assert_error(capsys, ["--plugin", p, "run", "cxl", "--policy", "permissive"], "boom", "'boomplug'")


def test_plugin_raises_multiline_message(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = plugin(tmp_path, "multiline", """
        from fuzzer import hookimpl

        @hookimpl
        def ptfuzz_policies():
            raise ValueError("first line\\nsecond line\\n")
    """)
    assert_error(capsys, ["--plugin", p, "list"], "'multiline'", "first line", "second line")


@pytest.mark.parametrize(
    ("stem", "source", "needles"),
    [
        pytest.param("syntaxerr", "def ptfuzz_subsystems(:\n    return []\n",
                     ("syntaxerr.py", "failed to import", "SyntaxError"), id="syntax-error"),
        pytest.param("importboom", "raise ImportError('no module named acme_sdk')\n",
                     ("importboom.py", "failed to import", "acme_sdk"), id="import-time-raise"),
        pytest.param("notalist", """
            from fuzzer import hookimpl

            @hookimpl
            def ptfuzz_subsystems():
                return "cxl"
         """, ("'notalist'", "ptfuzz_subsystems()", "must return a list", "str"), id="returns-str"),
        pytest.param("adict", """
            from fuzzer import hookimpl

            @hookimpl
            def ptfuzz_policies():
                return {"name": "mine"}
         """, ("'adict'", "ptfuzz_policies()", "must return a list", "dict"), id="returns-dict"),
        pytest.param("wrongrec", """
            from fuzzer import hookimpl, Rule

            @hookimpl
            def ptfuzz_policies():
                return [Rule("r", lambda req: None, cite="x")]
         """, ("'wrongrec'", "ptfuzz_policies()", "returned Rule", "expected Policy"), id="wrong-record"),
        pytest.param("strrec", """
            from fuzzer import hookimpl

            @hookimpl
            def ptfuzz_subsystems():
                return ["cxl2"]
         """, ("'strrec'", "returned str", "expected Subsystem"), id="string-record"),
        pytest.param("orphanpol", """
            from fuzzer import hookimpl, Policy

            @hookimpl
            def ptfuzz_policies():
                return [Policy("mine", "nosuchsub", channels=())]
         """, ("'orphanpol'", "unknown subsystem", "'nosuchsub'", "'mine'"), id="policy-unknown-subsystem"),
        pytest.param("badchan", """
            from fuzzer import hookimpl, Policy

            @hookimpl
            def ptfuzz_policies():
                return [Policy("mine", "cxl", channels=("cxl.nosuch",))]
         """, ("'badchan'", "'mine'", "cxl.nosuch"), id="policy-unknown-channel"),
        pytest.param("twice", """
            from fuzzer import hookimpl, Policy

            @hookimpl
            def ptfuzz_policies():
                return [Policy("permissive", "cxl", channels=("cxl.ioctl",))]
         """, ("plugin 'twice' registers policy 'permissive'",), id="policy-registered-twice"),
        pytest.param("dupsub", """
            from fuzzer import hookimpl
            from fuzzer.plugins.cxl import SUBSYSTEM

            @hookimpl
            def ptfuzz_subsystems():
                return [SUBSYSTEM]
         """, ("plugin 'dupsub' registers subsystem 'cxl'", "already registered by 'cxl'"),
                     id="subsystem-registered-twice"),
        pytest.param("typo", """
            from fuzzer import hookimpl

            @hookimpl
            def ptfuzz_subsytems():
                return []
         """, ("'typo'", "unknown hook", "ptfuzz_subsytems"), id="misspelt-hook"),
        pytest.param("witharg", """
            from fuzzer import hookimpl

            @hookimpl
            def ptfuzz_subsystems(registry):
                return []
         """, ("'witharg'", "could not be registered", "registry"), id="hook-takes-argument"),
        pytest.param("cxl", "from fuzzer import hookimpl\n", ("'cxl'", "already named"), id="name-clash"),
    ],
)
def test_broken_plugin(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                       stem: str, source: str, needles: tuple[str, ...]) -> None:
    p = plugin(tmp_path, stem, source)
    assert_error(capsys, ["--plugin", p, "list"], *needles)


def test_two_plugins_with_the_same_stem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = plugin(tmp_path / "a", "samestem", "from fuzzer import hookimpl\n")
    b = plugin(tmp_path / "b", "samestem", "from fuzzer import hookimpl\n")
    assert_error(capsys, ["--plugin", a, "--plugin", b, "list"], "'samestem'", "already named")


def test_missing_plugin_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nosuchplugin.py"
    assert_error(capsys, ["--plugin", missing, "list"], str(missing), "does not exist")
    # a directory is a plugin only if it is a package
    assert_error(capsys, ["--plugin", tmp_path, "list"], str(tmp_path), "not a Python package")


def test_good_plugin_file_loads(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The control: a well-formed plugin file is accepted, so the failures above are about the faults."""
    p = plugin(tmp_path, "goodplug", """
        from fuzzer import hookimpl, Policy

        @hookimpl
        def ptfuzz_policies():
            return [Policy("ioctl-only", "cxl", channels=("cxl.ioctl",))]
    """)
    code, out, err = ptfuzz(capsys, "--plugin", p, "list")
    assert code == 0, err
    assert "ioctl-only" in out and "goodplug" in out


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
