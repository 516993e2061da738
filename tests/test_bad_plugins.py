"""Broken plugins: exit 2 and one line naming the plugin, at load."""

from __future__ import annotations

from pathlib import Path

import pytest
from badinput import assert_error, plugin, ptfuzz

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
            from ptfuzz_cxl import SUBSYSTEM

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
