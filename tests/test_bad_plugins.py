"""Broken plugins: exit 2 and one line naming the plugin, at load."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from badinput import BASE, KERNEL_STEP, USER_STEP, assert_error, doc, plugin, ptfuzz, write

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


# ----------------------------------------------------------------------------- records checked at load
#
# Each of these used to load and then fail mid-run (or run wrongly), blamed on a step or on another
# plugin; now the plugin is refused when it loads, naming the plugin, the record and the field.

_CXL_POLICY = """
    import errno
    from fuzzer import hookimpl, Policy, Rule, Reaction, Trust, Promise, Deny

    def rule(request):
        return None

    def react(world, request, reply):
        pass

    @hookimpl
    def ptfuzz_policies():
        return [Policy("mine", "cxl", channels=("cxl.raw",), {field})]
"""

_CXL_SUBSYSTEM = """
    import attrs
    from fuzzer import hookimpl, Invariant, KernelAction, Reply
    from ptfuzz_cxl import SUBSYSTEM

    @hookimpl
    def ptfuzz_subsystems():
        return [attrs.evolve(SUBSYSTEM, name="cxl2", {field})]
"""


@pytest.mark.parametrize(
    ("stem", "source", "needles"),
    [
        pytest.param("strcaps", _CXL_POLICY.replace("{field}", """trusts=(Trust("CAP_SYS_ADMIN", cite="x"),)"""),
                     ("'strcaps'", "policy 'mine' trust 1", "caps", "the string 'CAP_SYS_ADMIN'",
                      "frozenset({'CAP_SYS_ADMIN'})"), id="trust-caps-string"),
        pytest.param("strtaint", _CXL_POLICY.replace(
            "{field}", """promises=(Promise("cxl.raw", cite="x", taint="WARN"),)"""),
                     ("'strtaint'", "policy 'mine' promise 1", "taint", "frozenset({'WARN'})"),
                     id="promise-taint-string"),
        pytest.param("reactarity", _CXL_POLICY.replace(
            "{field}", """reactions=(Reaction("after", lambda world, request: None, cite="x"),)"""),
                     ("'reactarity'", "policy 'mine' reaction 'after'", "run", "3 arguments",
                      "the World, the Request and the Reply"), id="reaction-signature"),
        pytest.param("rulearity", _CXL_POLICY.replace(
            "{field}", """rules=(Rule("r", lambda request, kernel: None, cite="x"),)"""),
                     ("'rulearity'", "policy 'mine' rule 'r'", "check", "1 argument (the Request)"),
                     id="rule-signature"),
        pytest.param("rulenotfn", _CXL_POLICY.replace(
            "{field}", """rules=(Rule("r", Deny(errno.EPERM), cite="x"),)"""),
                     ("'rulenotfn'", "rule 'r'", "check must be a function", "Deny"), id="rule-not-callable"),
        pytest.param("rulechan", _CXL_POLICY.replace(
            "{field}", """rules=(Rule("r", rule, cite="x", channels="cxl.raw"),)"""),
                     ("'rulechan'", "rule 'r'", "channels", "the string 'cxl.raw'", "('cxl.raw',)"),
                     id="rule-channels-string"),
        pytest.param("notarule", _CXL_POLICY.replace("{field}", """rules=(rule,)"""),
                     ("'notarule'", "policy 'mine'", "rules holds a function", "expected Rule"),
                     id="rules-holds-function"),
        pytest.param("invarity", """
            from fuzzer import hookimpl, Invariant

            @hookimpl
            def ptfuzz_invariants():
                return [Invariant("mine", check=lambda ctx, world: [])]
         """, ("'invarity'", "invariant 'mine'", "check", "1 argument (the StepContext)"),
                     id="invariant-signature"),
        pytest.param("dotdot", _CXL_SUBSYSTEM.replace('name="cxl2", {field}', 'name="../cxl"'),
                     ("'dotdot'", "subsystem name '../cxl'", "corpora/NAME/"), id="subsystem-name-path"),
        pytest.param("slash", _CXL_SUBSYSTEM.replace('name="cxl2", {field}', 'name="a/b"'),
                     ("'slash'", "subsystem name 'a/b'", "lower-case word"), id="subsystem-name-slash"),
        pytest.param("probearity", _CXL_SUBSYSTEM.replace("{field}", "probe=lambda: None"),
                     ("'probearity'", "subsystem 'cxl2'", "probe", "1 argument (the World)"),
                     id="probe-signature"),
        pytest.param("actionarity", _CXL_SUBSYSTEM.replace(
            "{field}", """actions=(KernelAction("poke", lambda world: Reply()),)"""),
                     ("'actionarity'", "subsystem 'cxl2' action 'poke'", "run", "2 arguments"),
                     id="kernel-action-signature"),
        pytest.param("closername", _CXL_SUBSYSTEM.replace("{field}", """channels=tuple(
            attrs.evolve(c, closer="CLOSE") if c.name == "cxl.raw" else c for c in SUBSYSTEM.channels)"""),
                     ("'closername'", "channel 'cxl.raw' names closer 'CLOSE'", "no command on that channel"),
                     id="closer-not-a-command"),
        pytest.param("closerhandle", _CXL_SUBSYSTEM.replace("{field}", """channels=tuple(
            attrs.evolve(c, closer="IDENTIFY") if c.name == "cxl.raw" else c for c in SUBSYSTEM.channels)"""),
                     ("'closerhandle'", "closer 'IDENTIFY' consumes no handle", "consumes=True"),
                     id="closer-consumes-nothing"),
        pytest.param("openername", _CXL_SUBSYSTEM.replace("{field}", """channels=tuple(
            attrs.evolve(c, opener="OPEN") if c.name == "cxl.raw" else c for c in SUBSYSTEM.channels)"""),
                     ("'openername'", "channel 'cxl.raw' names opener 'OPEN'", "no command on that channel"),
                     id="opener-not-a-command"),
        pytest.param("handlerarity", """
            from fuzzer import hookimpl, Command, CommandSet, Reply

            @hookimpl
            def ptfuzz_commands():
                return [CommandSet("cxl", (Command("ACME_PING", 0xC001, ("cxl.raw",), lambda args: Reply()),))]
         """, ("'handlerarity'", "command ACME_PING", "handler", "2 arguments (the Device and the arguments)"),
                     id="command-handler-signature"),
        pytest.param("fwincmds", """
            from fuzzer import hookimpl, DeviceSet, DeviceVariant, Firmware, Reply
            from ptfuzz_cxl.device import SPEC

            @hookimpl
            def ptfuzz_devices():
                fw = Firmware("ACME_DIAG", 0xC002, lambda device, args: Reply())
                return [DeviceSet("cxl", (DeviceVariant("acme", SPEC.state, commands=(fw,)),))]
         """, ("'fwincmds'", "device 'acme'", "commands holds a Firmware 'ACME_DIAG'", "DeviceVariant(firmware=...)"),
                     id="firmware-among-device-commands"),
        pytest.param("fwclash", """
            from fuzzer import hookimpl, DeviceSet, DeviceVariant, Firmware, Reply
            from ptfuzz_cxl.device import SPEC

            @hookimpl
            def ptfuzz_devices():
                fw = Firmware("GET_SUPPORTED_LOGS", 0x0400, lambda device, args: Reply())
                return [DeviceSet("cxl", (DeviceVariant("acme", SPEC.state, firmware=(fw,)),))]
         """, ("'fwclash'", "device 'acme'", "GET_SUPPORTED_LOGS", "both as Firmware and as a forwarded Command"),
                     id="device-firmware-clashes-with-command"),
    ],
)
def test_record_checked_at_load(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                stem: str, source: str, needles: tuple[str, ...]) -> None:
    p = plugin(tmp_path, stem, source)
    assert_error(capsys, ["--plugin", p, "list"], *needles)
    # and a run fails the same way, before anything is drawn
    assert_error(capsys, ["--plugin", p, "run", "cxl", "--policy", "permissive", "--max-examples", "1"], *needles)


def test_good_records_with_defaults_load(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The control for the checks above: right signatures (defaults and *args count too) load."""
    p = plugin(tmp_path, "goodrecs", _CXL_POLICY.replace("{field}", """
        rules=(Rule("r", lambda request, extra=None: None, cite="x"),),
        reactions=(Reaction("after", lambda *args: None, cite="x"),),
        trusts=(Trust(frozenset({"CAP_SYS_ADMIN"}), cite="x", ops=("GET_LOG",)),)"""))
    code, out, err = ptfuzz(capsys, "--plugin", p, "list")
    assert code == 0, err
    assert "mine" in out


# ----------------------------------------------------------------------------- issue 19: what is not an Exception

#: Where a plugin's code runs, each raising ``RAISE``: the test substitutes a BaseException of the
#: plugin's own, KeyboardInterrupt or sys.exit.  Each must end in one line naming the plugin (exit 2).
WHERE = {
    "import": "{raise_}\n",
    "hook": """
        from fuzzer import hookimpl

        @hookimpl
        def ptfuzz_policies():
            {raise_}
    """,
    "handler": """
        from fuzzer import hookimpl, Command, CommandSet, Effect

        def bye(dev, args):
            {raise_}

        @hookimpl
        def ptfuzz_commands():
            return [CommandSet("cxl", (Command("BYE", 0xC1FF, ("cxl.raw",), bye, effects=Effect.NONE),))]
    """,
    "rule": """
        from fuzzer import hookimpl, Policy, Rule

        def check(req):
            {raise_}

        @hookimpl
        def ptfuzz_policies():
            return [Policy("boompol", "cxl", channels=("cxl.raw", "cxl.ioctl"), rules=(Rule("boom", check, "x"),))]
    """,
    "exporter": """
        from fuzzer import hookimpl, Exporter

        def render(rep):
            {raise_}

        @hookimpl
        def ptfuzz_exporters():
            return [Exporter("boomfmt", ".txt", render)]
    """,
}
RAISES = {
    "base-exception": ("class Boom(BaseException):\n    pass\n", "raise Boom('bang')", "Boom"),
    "keyboard-interrupt": ("", "raise KeyboardInterrupt", "KeyboardInterrupt"),
    "sys-exit": ("import sys\n", "sys.exit(0)", "SystemExit"),
}
BYE = {"actor": "user", "channel": "cxl.raw", "op": "BYE", "caller": {"caps": []}, "args": {}}


def hostile_plugin(tmp_path: Path, where: str, kind: str) -> tuple[Path, str]:
    head, raise_, needle = RAISES[kind]
    source = head + textwrap.dedent(WHERE[where]).replace("{raise_}", raise_)
    return plugin(tmp_path, "hostileplug", source), needle


@pytest.mark.parametrize("kind", list(RAISES))
@pytest.mark.parametrize("where", ["import", "hook"])
def test_what_is_not_an_exception_at_load_names_the_plugin(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                         where: str, kind: str) -> None:
    p, needle = hostile_plugin(tmp_path, where, kind)
    assert_error(capsys, ["--plugin", p, "list"], "hostileplug", needle)


@pytest.mark.parametrize("kind", list(RAISES))
@pytest.mark.parametrize("where", ["handler", "rule"])
def test_what_is_not_an_exception_in_a_run_names_the_plugin(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                          where: str, kind: str) -> None:
    p, needle = hostile_plugin(tmp_path, where, kind)
    policy = "permissive" if where == "handler" else "boompol"
    steps = [KERNEL_STEP, BYE] if where == "handler" else [USER_STEP]
    assert_error(capsys, ["--plugin", p, "replay", write(tmp_path, doc(policy=policy, steps=steps))],
                 "hostileplug", needle)
    # the native search draws BYE among the RAW commands within 50 sequences (seed 1)
    run = ["--plugin", p, "run", "cxl", "--policy", policy, "--seed", "1", "--max-examples", "50",
           "--corpus", tmp_path / "c"]
    assert_error(capsys, run, "hostileplug")
    if where == "rule":  # every user step reaches the rule; the Hypothesis search rarely draws BYE
        assert_error(capsys, [*run, "--search", "hypothesis"], "hostileplug")


@pytest.mark.parametrize("kind", list(RAISES))
def test_what_is_not_an_exception_in_an_exporter_names_it(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                          kind: str) -> None:
    p, needle = hostile_plugin(tmp_path, "exporter", kind)
    assert_error(capsys, ["--plugin", p, "export", write(tmp_path, BASE), "--format", "boomfmt"],
                 "'hostileplug'", "'boomfmt'", needle)


@pytest.mark.parametrize("value", ["b'bytes'", "None", "42", "['a', 'b']"])
def test_an_exporter_returning_no_text_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str], value: str) -> None:
    p = plugin(tmp_path, "notext", f"""
        from fuzzer import hookimpl, Exporter

        @hookimpl
        def ptfuzz_exporters():
            return [Exporter("notextfmt", ".txt", lambda rep: {value})]
    """)
    for out in ((), ("-o", tmp_path / "out.txt")):
        assert_error(capsys, ["--plugin", p, "export", write(tmp_path, BASE), "--format", "notextfmt", *out],
                     "'notext'", "'notextfmt'", "returned", "not the text")
    assert not (tmp_path / "out.txt").exists()


@pytest.mark.parametrize("kind", ["base-exception", "keyboard-interrupt"])
def test_a_worker_whose_plugin_raises_what_is_not_an_exception_is_named(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str) -> None:
    p, _ = hostile_plugin(tmp_path, "rule", kind)
    assert_error(capsys, ["--plugin", p, "run", "cxl", "--policy", "boompol", "--seed", "1", "--workers", "2",
                          "--max-examples", "50", "--corpus", tmp_path / "c"], "worker w", "hostileplug")


def test_a_worker_ended_by_os_exit_0_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``os._exit(0)`` cannot be caught; in a worker the client sees it die without a result (exit 2, not 0).

    Dask retries the slice on another worker, which dies too; the client names the last one.  (The fork
    pool also said "exited with code 0": a Dask client is not told a worker's exit code.)

    In one process nothing can see it: the exit code is the plugin's (the limit ``cli.main`` documents).
    """
    p = plugin(tmp_path, "vanish", """
        import os
        from fuzzer import hookimpl, Policy, Rule

        def check(req):
            os._exit(0)

        @hookimpl
        def ptfuzz_policies():
            return [Policy("vanishpol", "cxl", channels=("cxl.raw", "cxl.ioctl"), rules=(Rule("bye", check, "x"),))]
    """)
    assert_error(capsys, ["--plugin", p, "run", "cxl", "--policy", "vanishpol", "--seed", "1", "--workers", "2",
                          "--max-examples", "50", "--corpus", tmp_path / "c"], "worker w", "died without a result",
                 "os._exit")


def test_ctrl_c_during_a_plugin_is_still_an_interruption(tmp_path: Path) -> None:
    """The control: a real SIGINT while plugin code runs exits 130, not as the plugin's error."""
    ready = tmp_path / "ready"
    p = plugin(tmp_path, "slowplug", f"""
        import pathlib, time
        pathlib.Path({str(ready)!r}).write_text("x")
        time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-m", "fuzzer", "--plugin", str(p), "list"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not ready.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "slowplug" not in err


def test_a_campaign_stopped_by_a_plugins_keyboard_interrupt_names_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``ptfuzz campaign`` exited 130 "interrupted" when plugin code raised KeyboardInterrupt."""
    p = plugin(tmp_path, "kicamp", WHERE["rule"].replace("{raise_}", "raise KeyboardInterrupt"))
    plan = tmp_path / "c.toml"
    plan.write_text(f'budget = 5\nseed = 1\ncorpus = "{tmp_path / "out"}"\n'
                    '[[entry]]\nsubsystem = "cxl"\npolicy = "boompol"\ndevice = "spec"\n')
    assert_error(capsys, ["--plugin", p, "campaign", str(plan)], "KeyboardInterrupt that no Ctrl-C or SIGTERM sent",
                 "'kicamp'", "cxl")


def test_a_plugins_keyboard_interrupt_in_a_run_names_that_plugin_not_its_neighbours(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The interrupt's traceback names the plugin; before, every plugin of the subsystem was named."""
    p, _ = hostile_plugin(tmp_path, "rule", "keyboard-interrupt")
    innocent = plugin(tmp_path, "innocentplug", """
        from fuzzer import hookimpl, Policy

        @hookimpl
        def ptfuzz_policies():
            return [Policy("calmpol", "cxl", channels=("cxl.ioctl",))]
    """)
    err = assert_error(capsys, ["--plugin", p, "--plugin", innocent, "run", "cxl", "--policy", "boompol", "--seed",
                                "1", "--max-examples", "50", "--corpus", tmp_path / "c"],
                       "KeyboardInterrupt that no Ctrl-C or SIGTERM sent", "plugin 'hostileplug'")
    assert "innocentplug" not in err
