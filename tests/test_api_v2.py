"""Plugin API v2 against the toy subsystem: reactions, knobs, trust, effect names, ownership, handles."""

from __future__ import annotations

import json
from pathlib import Path

import attrs
import pytest
import toy
from conftest import run_cli

from fuzzer import Caller, Step, describe, host
from fuzzer.campaign import Campaign
from fuzzer.errors import ModelError

TOY = str(Path(__file__).with_name("toy.py"))
ROOT = Caller(frozenset({"CAP_SYS_ADMIN"}))


@pytest.fixture(scope="module")
def reg() -> host.Registry:
    return host.load(extra=[toy])


def ex(reg: host.Registry, *without: str, **knobs: object):  # type: ignore[no-untyped-def]
    policy = reg.policy("toy", "toy-linux", without)
    if knobs:
        policy = attrs.evolve(policy, knobs={**policy.knobs, **knobs})
    return reg.executor("toy", policy, reg.device("toy", None))


def user(op: str, caller: Caller = ROOT, **args: object) -> Step:
    return Step("user", op, args, toy.TOY, caller)


def test_reaction_keeps_the_kernel_right_and_removing_it_opens_the_hole(reg: host.Registry) -> None:
    r = ex(reg).apply(user("SET_MTU", mtu=9000))
    assert r.violations == () and r.reactions == ("remtu",)
    sigs = {v.signature for v in ex(reg, "remtu").apply(user("SET_MTU", mtu=9000)).violations}
    assert sigs == {"kernel-owned-integrity:toy:SET_MTU:link.mtu"}
    # the reaction reads the policy's knobs
    assert ex(reg, reread=False).apply(user("SET_MTU", mtu=9000)).violations != ()


def test_campaign_finds_the_removed_reaction_and_shrinks_it(reg: host.Registry) -> None:
    sig = "kernel-owned-integrity:toy:SET_MTU:link.mtu"
    r = Campaign(reg, "toy", reg.policy("toy", "toy-linux", ("remtu",)), reg.device("toy", None), seed=1,
                 max_examples=300, targets=frozenset({sig})).run()
    assert [s.op for s in r.findings[sig].steps] == ["SET_MTU"]


def test_trusted_caller_is_reported_apart_and_does_not_fail(reg: host.Registry, tmp_path: Path) -> None:
    r = ex(reg).apply(user("FLAP_PORT", port="port1"))
    assert [v.signature for v in r.violations] == ["kernel-owned-integrity:toy:FLAP_PORT:port:trusted"]
    assert r.violations[0].severity == "trusted"
    # without the root check, an unprivileged flap is a hole
    r = ex(reg, "flap-root").apply(user("FLAP_PORT", Caller(), port="port1"))
    assert [v.severity for v in r.violations] == ["hole"]
    out = tmp_path / "s.json"
    code = run_cli(["--plugin", TOY, "run", "toy", "--policy", "toy-linux", "--seed", "1", "--max-examples", "200",
                    "--corpus", str(tmp_path), "--json", str(out)])
    found = json.loads(out.read_text())["findings"]
    assert code == 0 and found and all(f["severity"] == "trusted" for f in found)


def test_published_handles_reach_commands_and_ownership_is_per_instance(reg: host.Registry) -> None:
    e = ex(reg)
    assert e.apply(Step("kernel", "scan", {})).published == ("port0", "port1", "port2")
    # the kernel releases port 2: from then on it is userspace's to bounce
    e.apply(Step("kernel", "release_port", {"port": "port2"}))
    assert e.apply(user("FLAP_PORT", port="port2")).violations == ()
    assert e.apply(user("FLAP_PORT", port="port0")).violations != ()
    # the native search draws FLAP_PORT with the scan's handles
    c = Campaign(reg, "toy", reg.policy("toy", "toy-linux"), reg.device("toy", None), seed=2, max_examples=50)
    c.run()
    assert c.explorer is not None
    seen = {c.explorer.moves[move].op for move, *_ in c.explorer.behaviours}
    assert "FLAP_PORT" in seen


def test_subsystem_effect_names_and_effectless_fields(reg: host.Registry) -> None:
    assert describe(toy.LINK_FLAP, {toy.LINK_FLAP: "link-flap"}) == "link-flap"
    assert describe(1 << 17) == "bit17"
    r = ex(reg).apply(user("SET_MTU", mtu=9000))
    assert "counter" in [c[0] for c in r.changes] and r.violations == ()  # Effect.NONE: nothing to declare
    lying = attrs.evolve(toy.SUBSYSTEM.commands[1], effects=0)
    policy = reg.policy("toy", "toy-linux")
    e = host.Registry(subsystems={"toy": toy.SUBSYSTEM}).executor("toy", policy, reg.device("toy", None))
    e.user_index[(toy.TOY, "FLAP_PORT")] = lying
    msgs = [v.message for v in e.apply(user("FLAP_PORT", port="port1")).violations if v.invariant == "declared-effects"]
    assert msgs and "(link-flap)" in msgs[0]


def test_unknown_firmware_op_answers_the_subsystems_status(reg: host.Registry) -> None:
    assert ex(reg).world.mailbox("NO_SUCH_OP").rc == 0xFF
    strict = attrs.evolve(toy.SUBSYSTEM, unsupported=-1)
    e = host.Registry(subsystems={"toy": strict}).executor("toy", reg.policy("toy", "toy-linux"),
                                                            reg.device("toy", None))
    with pytest.raises(ModelError, match="no op 'NO_SUCH_OP'"):
        e.world.mailbox("NO_SUCH_OP")


def test_pytest_export_loads_the_same_plugin_files(tmp_path: Path) -> None:
    """A test exported in a session that used --plugin finds the subsystem (it loads the same file)."""
    assert run_cli(["--plugin", TOY, "run", "toy", "--policy", "toy-linux", "--without", "remtu", "--seed", "1",
                    "--max-examples", "100", "--corpus", str(tmp_path)]) == 1
    found = next(f for f in (tmp_path / "toy").glob("*.json") if "SET_MTU" in f.name)
    out = tmp_path / "test_exported.py"
    assert run_cli(["--plugin", TOY, "export", str(found), "--format", "pytest", "-o", str(out)]) == 0
    namespace: dict[str, object] = {}
    exec(compile(out.read_text(), str(out), "exec"), namespace)
    assert namespace["PLUGIN_FILES"] == (str(Path(TOY).resolve()),)
    test = next(v for k, v in namespace.items() if k.startswith("test_"))
    with pytest.raises(AssertionError, match=r"link\.mtu"):
        test()  # type: ignore[operator]


def test_a_device_variants_own_firmware_op() -> None:
    """DeviceVariant(firmware=...): an op only this device's firmware has, or its own answer to a common one.

    A Firmware record among a variant's ``commands`` crashed ptfuzz (exit 3, naming no plugin); it
    is refused at load now (tests/test_bad_plugins.py), and ``firmware=`` is where it goes.
    """
    from fuzzer import DeviceSet, DeviceVariant, Firmware, Reply, hookimpl

    def two_ports(dev: object, args: object) -> Reply:  # a vendor firmware that hides port 2
        return Reply(out={"ports": (0, 1)})

    variant = DeviceVariant("two-port", toy.initial_state, firmware=(Firmware("LIST_PORTS", 0x10, two_ports),))

    class Vendor:
        __name__ = "vendor"

        @staticmethod
        @hookimpl
        def ptfuzz_devices() -> list[DeviceSet]:
            return [DeviceSet("toy", (variant,))]

    reg = host.load(extra=[toy, Vendor()], entry_points=False)
    scan = Step("kernel", "scan", {})
    plain = reg.executor("toy", reg.policy("toy", "toy-linux"), reg.device("toy", "toy"))
    vendor = reg.executor("toy", reg.policy("toy", "toy-linux"), reg.device("toy", "two-port"))
    assert plain.apply(scan).published == ("port0", "port1", "port2")
    assert vendor.apply(scan).published == ("port0", "port1")  # the variant's firmware answered
