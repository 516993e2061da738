"""The plugin guide's promises on the command line: `list` details, `--ignore`, follow-ons, effect bits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from badinput import assert_error, plugin, ptfuzz

from fuzzer import host
from fuzzer.campaign import Campaign

ROOT = Path(__file__).resolve().parent.parent
NVME = str(ROOT / "examples" / "nvme" / "ptfuzz_nvme")

#: A kernel-owned limit that userspace can overwrite, and a kernel action that then applies a limit
#: the device no longer holds: the second violation follows from the first (same field, later step).
RELAY = """
    from fuzzer import (Channel, Command, DeviceVariant, Effect, Field, Invariant, KernelAction, Param,
                        Policy, Reply, Subsystem, hookimpl)
    from fuzzer.spec import ALWAYS

    CH = "relay.rpc"

    def poke(dev, args):
        dev.state["relay.limit"] = args["limit"]
        return Reply()

    def probe(world):
        world.believe("relay.limit")

    def apply_limit(world, args):
        return Reply()

    def stale_limit(ctx):
        w = ctx.world
        if ctx.step.op == "apply_limit" and w.device.state["relay.limit"] != w.shadow["relay.limit"]:
            yield ctx.violation("limit-applied", "the kernel applied a limit the device no longer holds",
                                field="relay.limit")

    SUB = Subsystem("relay", fields=(Field("relay.limit", Effect.CONFIG_IMMEDIATE, ALWAYS),),
                    channels=(Channel(CH),),
                    commands=(Command("POKE", 1, (CH,), poke, effects=Effect.CONFIG_IMMEDIATE,
                                      params=(Param("limit", "int", 0, 3),)),),
                    devices=(DeviceVariant("one", state=lambda: {"relay.limit": 0}),),
                    actions=(KernelAction("apply_limit", apply_limit),),
                    kernel=dict, probe=probe, steps=6)

    @hookimpl
    def ptfuzz_subsystems():
        return [SUB]

    @hookimpl
    def ptfuzz_policies():
        return [Policy("open", "relay", channels=(CH,))]

    @hookimpl
    def ptfuzz_invariants():
        return [Invariant("limit-applied", stale_limit, subsystem="relay")]
"""
ROOT_SIG = "kernel-owned-integrity:relay:POKE:relay.limit"
FOLLOW_SIG = "limit-applied:relay:apply_limit:relay.limit"


def test_list_subsystem_shows_reactions_trusts_and_knobs(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = ptfuzz(capsys, "--plugin", NVME, "list", "nvme")
    assert code == 0
    assert "policy linux-nvme:" in out
    assert "reaction keep-alive-update: after any effect on nvme.admin for SET_FEATURES" in out
    assert "trust CAP_SYS_ADMIN for FORMAT_NVM,SANITIZE,WRITE,WRITE_ZEROES: root destroying data" in out
    assert "knobs: write_mounted=False, known_effects=True" in out
    assert "knobs: write_mounted=True" in out  # linux-nvme-write-mounted
    assert "policy permissive:\n    no reactions, trusts or knobs" in out
    assert "cxl" not in out.split("\n", 1)[0]  # only the subsystem asked for
    code, out, _ = ptfuzz(capsys, "--plugin", NVME, "list")
    assert code == 0 and "reactions, trusts and knobs: ptfuzz list nvme" in out
    assert "reaction keep-alive-update" not in out


def test_list_details_escape_plugin_text(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = plugin(tmp_path, "loud", """
        from fuzzer import Channel, DeviceVariant, Effect, Field, Knob, Policy, Reaction, Subsystem, Trust, hookimpl

        @hookimpl
        def ptfuzz_subsystems():
            return [Subsystem("loud", (Field("f", Effect.NONE),), (Channel("loud.ch"),), (),
                              (DeviceVariant("d", state=lambda: {"f": 0}),), (), dict, lambda w: None,
                              effects={1 << 16: "own-bit"}, knobs=(Knob("k\\x07", ""),))]

        @hookimpl
        def ptfuzz_policies():
            return [Policy("p", "loud", ("loud.ch",),
                           reactions=(Reaction("r[bold]x[/bold]", lambda w, q, r: None, cite="c\\x1b[31m",
                                               effects=(1 << 16) | 2),),
                           trusts=(Trust(frozenset({"CAP_X"}), cite="t", reason="[red]why\\n"),),
                           knobs={"k\\x07": "[b]v"})]
    """)
    code, out, _ = ptfuzz(capsys, "--plugin", p, "list", "loud")
    assert code == 0, out
    assert "reaction r[bold]x[/bold]: after immediate-config|own-bit  [c\\x1b[31m]" in out
    assert "trust CAP_X: [red]why\\x0a  [t]" in out
    assert "knobs: k\\x07='[b]v'" in out
    assert "\x1b" not in out and "\x07" not in out


def test_list_unknown_subsystem(capsys: pytest.CaptureFixture[str]) -> None:
    assert_error(capsys, ["list", "nosuch"], "unknown subsystem 'nosuch'", "cxl")


def test_own_effect_bits_below_16_are_refused_at_load(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = """
        from fuzzer import Channel, DeviceVariant, Effect, Field, Subsystem, hookimpl

        @hookimpl
        def ptfuzz_subsystems():
            return [Subsystem("clash", (Field("f", Effect.NONE),), (Channel("clash.ch"),), (),
                              (DeviceVariant("d", state=lambda: {"f": 0}),), (), dict, lambda w: None,
                              effects={BIT: "mine"})]
    """
    for bit in ("1 << 1", "1 << 12", "(1 << 16) | 4"):
        p = plugin(tmp_path, "clash", source.replace("BIT", bit))
        assert_error(capsys, ["--plugin", p, "list"], "'clash'", "Subsystem.effects", "bits 16 and up")
    p = plugin(tmp_path, "clash", source.replace("BIT", "1 << 16"))
    assert ptfuzz(capsys, "--plugin", p, "list")[0] == 0


def test_follow_ons_are_listed_under_their_root(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = plugin(tmp_path, "relay", RELAY)
    report = tmp_path / "run.json"
    code, out, _ = ptfuzz(capsys, "--plugin", p, "run", "relay", "--policy", "open", "--seed", "1",
                          "--max-examples", "300", "--corpus", tmp_path / "c", "--json", report)
    assert code == 1, out
    assert "2 distinct violation(s), 1 of them follow-ons of another (listed under it):" in out
    summary = out[out.index("distinct violation"):].splitlines()
    root = next(i for i, line in enumerate(summary) if ROOT_SIG in line)
    assert summary[root].startswith("  hole") and FOLLOW_SIG in summary[root + 1]
    assert summary[root + 1].startswith("    follow-on ")
    findings = {f["signature"]: f for f in json.loads(report.read_text())["findings"]}
    assert findings[FOLLOW_SIG]["follows"] == ROOT_SIG and findings[ROOT_SIG]["follows"] is None
    assert findings[FOLLOW_SIG]["steps"] == 2 and findings[ROOT_SIG]["steps"] == 1


def test_ignore_drops_an_invariant_and_its_follow_ons_stand_alone(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    p = plugin(tmp_path, "relay", RELAY)
    report = tmp_path / "run.json"
    code, out, _ = ptfuzz(capsys, "--plugin", p, "run", "relay", "--policy", "open", "--seed", "1",
                          "--max-examples", "300", "--corpus", tmp_path / "c", "--json", report,
                          "--ignore", "kernel-owned-integrity")
    assert code == 1, out
    findings = json.loads(report.read_text())["findings"]
    assert [(f["signature"], f["steps"], f["follows"]) for f in findings] == [(FOLLOW_SIG, 2, None)]
    code, out, _ = ptfuzz(capsys, "--plugin", p, "run", "relay", "--policy", "open", "--seed", "1",
                          "--max-examples", "300", "--corpus", tmp_path / "c",
                          "--ignore", "kernel-owned-integrity", "--ignore", "limit-applied")
    assert code == 0 and "no violations found" in out


def test_ignore_unknown_invariant_lists_them(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = plugin(tmp_path, "relay", RELAY)
    assert_error(capsys, ["--plugin", p, "run", "relay", "--policy", "open", "--ignore", "kernel-owned"],
                 "--ignore 'kernel-owned'", "no such invariant for relay", "kernel-owned-integrity", "limit-applied")
    campaign = tmp_path / "c.toml"
    campaign.write_text('budget = 1\n[[entry]]\nsubsystem = "relay"\npolicy = "open"\n')
    assert_error(capsys, ["--plugin", p, "campaign", campaign, "--ignore", "nope"], "--ignore 'nope'", "leak")


def test_campaign_ignore_reaches_every_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = plugin(tmp_path, "relay", RELAY)
    campaign = tmp_path / "c.toml"
    campaign.write_text('budget = 2\nline_sample = 0\n[[entry]]\nsubsystem = "relay"\npolicy = "open"\n'
                        '[[entry]]\nsubsystem = "relay"\npolicy = "open"\nworkers = 2\nseed = 2\n')
    out_json = tmp_path / "c.json"
    code, out, _ = ptfuzz(capsys, "--plugin", p, "campaign", campaign, "--corpus", tmp_path / "corpus",
                          "--json", out_json, "--ignore", "kernel-owned-integrity")
    assert code == 1, out
    assert ROOT_SIG not in out and FOLLOW_SIG in out
    assert "follow-on of" not in out


def test_campaign_marks_follow_ons_in_its_new_lines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = plugin(tmp_path, "relay", RELAY)
    campaign = tmp_path / "c.toml"
    campaign.write_text('budget = 1\nline_sample = 0\n[[entry]]\nsubsystem = "relay"\npolicy = "open"\n')
    code, out, _ = ptfuzz(capsys, "--plugin", p, "campaign", campaign, "--corpus", tmp_path / "corpus")
    assert code == 1, out
    line = next(x for x in out.splitlines() if x.startswith("  NEW") and FOLLOW_SIG in x)
    assert line.endswith(f"(follow-on of {ROOT_SIG})")


def test_follow_ons_on_the_engine(tmp_path: Path) -> None:
    """The grouping is the campaign's (so workers and campaign files get it), not the command line's."""
    reg = host.load([str(plugin(tmp_path, "relay", RELAY))], entry_points=False)
    result = Campaign(reg, "relay", reg.policy("relay", "open"), reg.device("relay", None), seed=3,
                      max_examples=300).run()
    assert {s: f.follows for s, f in result.findings.items()} == {ROOT_SIG: "", FOLLOW_SIG: ROOT_SIG}
