"""Issue 17 (fidelity review, December 2026): CXL rows checked against Linux 7.3.4 (Debian's linux-source-7.3)."""

from __future__ import annotations

import errno

import pytest
from ptfuzz_cxl import mailbox as mb

from fuzzer.executor import Executor
from fuzzer.host import Registry
from fuzzer.spec import Caller
from fuzzer.world import Step

ROOT = Caller(frozenset({"CAP_SYS_ADMIN"}))
ALLOW_ALL = Caller(frozenset({"CAP_SYS_ADMIN"}), switches=frozenset({"raw_allow_all"}))


def ex(registry: Registry, policy: str, device: str = "spec") -> Executor:
    return registry.executor("cxl", registry.policy("cxl", policy), registry.device("cxl", device))


def user(op: str, channel: str, caller: Caller = ROOT, **args: object) -> Step:
    return Step("user", op, args, channel, caller)


def verdict(e: Executor, step: Step) -> tuple[int, str]:
    d = e.apply(step).decision
    assert d is not None
    return d.errno, d.rule


# ----------------------------------------------------------------------------- #11r reserved fields


@pytest.mark.parametrize(("args", "want"), [
    ({}, (0, "")),
    ({"flags": 1}, (0, "")),  # CXL_MEM_COMMAND_FLAG_ENABLED: inside the mask
    ({"flags": 3}, (0, "")),
    ({"flags": 4}, (errno.EINVAL, "ioctl-flags")),
    ({"rsvd": 1}, (errno.EINVAL, "ioctl-rsvd")),
    # cxl_validate_cmd_from_user(): in.size > payload_size comes before cxl_to_mem_cmd()
    ({"rsvd": 1, "in_size": 4096}, (errno.EINVAL, "payload-max")),
])
def test_ioctl_reserved_fields(registry: Registry, args: dict[str, int], want: tuple[int, str]) -> None:
    """mbox.c cxl_to_mem_cmd() (7.3.4): flags outside CXL_MEM_COMMAND_FLAG_MASK, send_cmd->rsvd,
    in.rsvd/out.rsvd are -EINVAL, before enabled_cmds and the sizes."""
    e = ex(registry, "linux-ioctl")
    assert verdict(e, user("GET_HEALTH_INFO", "cxl.ioctl", **args)) == want


def test_reserved_fields_come_before_enabled_cmds(registry: Registry) -> None:
    # the qemu device lacks CLEAR_LOG: -ENOTTY for a clean request, -EINVAL with a reserved bit set
    e = ex(registry, "linux-ioctl", "qemu")
    assert verdict(e, user("CLEAR_LOG", "cxl.ioctl", log=mb.VENDOR_DEBUG_LOG_UUID)) == (errno.ENOTTY, "enabled-cmds")
    assert verdict(e, user("CLEAR_LOG", "cxl.ioctl", log=mb.VENDOR_DEBUG_LOG_UUID, flags=8))[1] == "ioctl-flags"


def test_raw_checks_raw_rsvd_first_and_ignores_flags(registry: Registry) -> None:
    """mbox.c cxl_to_mem_cmd_raw() (7.3.4): raw.rsvd -> -EINVAL before out.size and the command lists;
    flags, in.rsvd and out.rsvd are not looked at on the RAW path."""
    e = ex(registry, "linux-raw")
    assert verdict(e, user("SET_LSA", "cxl.raw", offset=0, length=8, byte=1, rsvd=1, out_size=4096)) == \
        (errno.EINVAL, "raw-rsvd")
    assert verdict(e, user("SET_LSA", "cxl.raw", offset=0, length=8, byte=1, rsvd=1)) == (errno.EINVAL, "raw-rsvd")
    assert "flags" not in {p.name for p in e.params[("cxl.raw", "GET_HEALTH_INFO")]}  # not drawn on RAW
    assert verdict(e, user("GET_HEALTH_INFO", "cxl.raw", flags=0xFFFFFFFF))[0] == 0
    assert verdict(e, user("SET_LSA", "cxl.raw", offset=0, length=8, byte=1))[0] == errno.EPERM


def test_reserved_fields_left_out_are_zero(registry: Registry) -> None:
    """A corpus step written before the fields existed has none: they are 0, as a correct caller sets them."""
    e = ex(registry, "linux-ioctl")
    step = e.complete(user("GET_HEALTH_INFO", "cxl.ioctl"))
    assert (step.args["flags"], step.args["rsvd"]) == (0, 0)


def test_c_export_sets_the_reserved_fields(registry: Registry) -> None:
    from fuzzer.corpus import Entry
    from fuzzer.replay import replay

    entry = Entry(subsystem="cxl", device="spec", policy="linux-ioctl",
                  steps=(user("GET_HEALTH_INFO", "cxl.ioctl", flags=4, rsvd=2, in_size=0, out_size=0x12),), violation={"signature": "none"})
    text = registry.exporter("c", "cxl").render(replay(registry, entry))
    assert "c.flags = flags;" in text and "c.raw.rsvd = rsvd;" in text
    assert ", 0x4, 0x2);" in text


# ----------------------------------------------------------------------------- #13 feat_cap and the fwctl device

FULL = Caller(frozenset({"CAP_SYS_ADMIN", "CAP_SYS_RAWIO"}), scope="debug_write_full")


def _without_in_cel(registry: Registry, *ops: str) -> Executor:
    import attrs
    from ptfuzz_cxl.device import COMMANDS, SPEC, build_cel

    variant = attrs.evolve(SPEC, name="spec-cel-lacks", info={
        **SPEC.info, "cel": build_cel(tuple(c for c in COMMANDS if c.op not in ops))})
    return registry.executor("cxl", registry.policy("cxl", "linux-fwctl"), variant)


def _set_test_feature(**sizes: int) -> Step:
    return user("SET_FEATURE", "cxl.fwctl", FULL, uuid=mb.TEST_FEATURE_UUID, value=1, **sizes)


def test_set_feature_needs_set_feature_in_the_cel(registry: Registry) -> None:
    """features.c cxlctl_validate_hw_command() (7.3.4): SET_FEATURE with feat_cap < CXL_FEATURES_RW is
    -EINVAL; mbox.c set_features_cap() makes it RO for a CEL with both Gets and no Set Feature."""
    e = _without_in_cel(registry, "SET_FEATURE")
    assert e.world.kernel["feat_cap"] == 1 and e.world.kernel["fwctl"]
    r = e.apply(_set_test_feature())
    assert r.decision is not None and (r.decision.errno, r.decision.rule) == (errno.EINVAL, "set-feature-cap")
    assert r.changes == ()
    get = e.apply(user("GET_FEATURE", "cxl.fwctl", FULL, uuid=mb.TEST_FEATURE_UUID, count=4))
    assert get.decision is not None and get.decision.allowed
    # a device whose CEL has it: the same request goes through
    ok = ex(registry, "linux-fwctl").apply(_set_test_feature())
    assert ok.decision is not None and ok.decision.allowed and ok.reply is not None and ok.reply.rc == 0


def test_no_fwctl_device_without_features_capability(registry: Registry) -> None:
    """features.c devm_cxl_setup_features(): feat_cap < CXL_FEATURES_RO -> no cxlfs, so
    devm_cxl_setup_fwctl() makes no fwctl device (7.3.4); the probe sends no Get Supported Features."""
    e = _without_in_cel(registry, "GET_FEATURE")
    assert e.world.kernel["feat_cap"] == 0 and e.world.kernel["features"] == {}
    r = e.apply(user("GET_SUPPORTED_FEATURES", "cxl.fwctl", FULL))
    assert r.decision is not None and (r.decision.errno, r.decision.rule) == (errno.ENODEV, "fwctl-device")


def test_no_fwctl_device_without_a_user_feature(registry: Registry) -> None:
    """devm_cxl_setup_fwctl() (7.3.4): !num_user_features -> -ENODEV.  QEMU 10.0.2 offers patrol scrub and ECS,
    both in cxl_exclusive_feats[]: a stock 7.3.4 kernel has no fwctl device for it (the live target's
    test-ecs-user-feature.patch, knob exclusive_features, gives it one)."""
    import attrs

    pol = registry.policy("cxl", "linux-fwctl")
    stock = registry.executor("cxl", pol, registry.device("cxl", "qemu"))
    assert not stock.world.kernel["fwctl"]
    step = user("GET_SUPPORTED_FEATURES", "cxl.fwctl", FULL)
    assert verdict(stock, step) == (errno.ENODEV, "fwctl-device")
    patched = attrs.evolve(pol, knobs={"exclusive_features": mb.EXCLUSIVE_FEATURES - {mb.ECS_UUID}})
    live = registry.executor("cxl", patched, registry.device("cxl", "qemu"))
    assert live.world.kernel["fwctl"] and verdict(live, step)[0] == 0


# ----------------------------------------------------------------------------- #5 DCD opcodes


@pytest.mark.parametrize("op", ["GET_DC_CONFIG", "GET_DC_EXTENT_LIST", "ADD_DC_RESPONSE", "RELEASE_DC"])
@pytest.mark.parametrize("device", ["spec", "qemu"])
def test_raw_reaches_the_dcd_opcodes(registry: Registry, op: str, device: str) -> None:
    """mbox.c (7.3.4) has no DCD code: 0x48xx is in neither cxl_disabled_raw_commands[] nor
    security_command_sets[], so cxl_mem_raw_command_allowed() lets it through (with the WARN); a device
    without Dynamic Capacity (no variant models it; QEMU 10.0.2 without DC regions) answers UNSUPPORTED."""
    e = ex(registry, "linux-raw", device)
    command = e.commands[op]
    assert command.opcode >> 8 == 0x48 and command.channels == ("cxl.raw",)
    assert command.opcode not in {opcode for opcode, _ in e.world.device.info["cel"]}
    r = e.apply(user(op, "cxl.raw"))
    assert r.decision is not None and r.decision.allowed and "WARN" in r.decision.taint
    assert r.reply is not None and r.reply.rc == mb.RC_UNSUPPORTED and r.changes == ()
    assert verdict(ex(registry, "linux-ioctl", device), user(op, "cxl.raw")) == (errno.EPERM, "channel-closed")


# ----------------------------------------------------------------------------- N11, N8, N9


def test_ioctl_bounce_buffer_is_clamped_to_the_payload_size(registry: Registry) -> None:
    """mbox.c cxl_mbox_cmd_ctor() (7.3.4): ``mbox_cmd->size_out = min_t(size_t, out_size,
    cxl_mbox->payload_size)``: a 1 MiB out.size gets a payload-sized kvzalloc()."""
    e = ex(registry, "linux-ioctl")
    e.apply(user("GET_LSA", "cxl.ioctl", offset=0, length=8, out_size=1 << 20))
    assert {a.size for a in e.world.accesses if a.buffer == "payload_out"} == {mb.PAYLOAD_SIZE}
    e.apply(user("GET_LSA", "cxl.ioctl", offset=0, length=8, out_size=0x20))
    assert {a.size for a in e.world.accesses if a.buffer == "payload_out"} == {0x20}


def test_nvdimm_unbind_names_the_cxl_mem_unbind(registry: Registry) -> None:
    """7.3.4: drivers/cxl/mem.c cxl_mem_probe() -> core/pmem.c devm_cxl_add_nvdimm(dev, ...) registers
    cxlmd_release_nvdimm() on memN, and cxl_mem_driver has no suppress_bind_attrs: unbinding memN from
    cxl_mem unregisters the cxl_nvdimm, so clear_exclusive() runs; unloading cxl_pmem is not the only way."""
    from ptfuzz_cxl.export_c import KERNEL_HOWTO
    from ptfuzz_cxl.kernel import ACTIONS

    (action,) = [a for a in ACTIONS if a.name == "nvdimm_unbind"]
    assert "only by unloading" not in action.doc and "cxl_mem" in action.doc
    assert "the only way" not in KERNEL_HOWTO["nvdimm_unbind"]
    assert "/sys/bus/cxl/drivers/cxl_mem/unbind" in KERNEL_HOWTO["nvdimm_unbind"]


def test_readme_says_memcpy_fromio_is_not_seen_by_kasan() -> None:
    """N9: pci.c __cxl_pci_mbox_send_cmd() copies with memcpy_fromio(), which x86's KASAN does not
    instrument (7.3.4); the README's "out_len 8, count 4" overflow must not claim a stock KASAN report."""
    from pathlib import Path

    text = " ".join((Path(__file__).resolve().parent.parent / "README.md").read_text().split())
    assert "does not report the overflow" in text and "test-kasan-mailbox-copies.patch" in text


# ----------------------------------------------------------------------------- #24 Get Supported Features over fwctl


def test_fwctl_supported_features_come_from_the_kernel_and_hide_exclusive_changeable(registry: Registry) -> None:
    """features.c cxlctl_get_supported_features() (7.3.4) answers from cxlfs->entries, read at probe,
    and clears CHANGEABLE for an exclusive feature (is_cxl_feature_exclusive()); the device is not asked."""
    e = ex(registry, "linux-fwctl")
    device_says = dict((u, c) for u, c, _ in e.world.mailbox("GET_SUPPORTED_FEATURES").out["features"])
    assert device_says[mb.ECS_UUID] and mb.ECS_UUID in mb.EXCLUSIVE_FEATURES
    before = dict(e.world.device.state)
    r = e.apply(user("GET_SUPPORTED_FEATURES", "cxl.fwctl", FULL))
    assert r.decision is not None and r.decision.allowed and r.reply is not None
    answer = {u: c for u, c, _ in r.reply.out["features"]}
    assert answer.keys() == device_says.keys()
    assert answer[mb.ECS_UUID] is False  # the device says changeable; the kernel's answer says not
    assert answer[mb.TEST_FEATURE_UUID] is device_says[mb.TEST_FEATURE_UUID]
    assert dict(e.world.device.state) == dict(before)


def test_probe_reads_no_poison_list(registry: Registry, monkeypatch: pytest.MonkeyPatch) -> None:
    """7.3.4 cxl_mem_probe()/cxl_poison_state_init() only allocate the Get Poison List buffer (fidelity #22)."""
    from fuzzer.world import World
    sent: list[str] = []
    original = World.mailbox

    def spy(self: World, op: str, **args: object) -> object:
        sent.append(op)
        return original(self, op, **args)

    monkeypatch.setattr(World, "mailbox", spy)
    ex(registry, "linux-ioctl")
    assert "IDENTIFY" in sent and "GET_POISON" not in sent
