"""The ``qemu`` device against QEMU 10.0.2's source, transcribed here by hand.

Each expectation is read from QEMU 10.0.2 (Debian ``qemu_10.0.2+ds.orig.tar.xz``),
not from ``plugins/ptfuzz_cxl/qemu.py``, so a slip in either shows up as a failure.
Where the ``spec`` device answers differently, a test says so, so a test would also
fail if the qemu variant silently fell back to the spec device's handlers.
"""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Any

import pytest
from conftest import run_cli
from ptfuzz_cxl import mailbox as mb
from ptfuzz_cxl.qemu import LSA_SIZE

from fuzzer.executor import Executor, StepResult
from fuzzer.host import Registry
from fuzzer.spec import Caller, Command
from fuzzer.world import Step

ROOT = Caller(frozenset({"CAP_SYS_ADMIN"}))
ALLOW_ALL = Caller(frozenset({"CAP_SYS_ADMIN"}), switches=frozenset({"raw_allow_all"}))

# hw/cxl/cxl-mailbox-utils.c cxl_cmd_set[][] (QEMU 10.0.2, lines 2717-2778):
# opcode -> (the input length cxl_process_cci_message() wants, None for ~0; the CEL effect).
# Effect bits (include/hw/cxl/cxl_mailbox.h): 0x02 immediate config, 0x04 immediate data,
# 0x08 immediate policy, 0x10 immediate log, 0x20 security state, 0x40 background.
QEMU_CMD_SET: dict[int, tuple[int | None, int]] = {
    0x0100: (1, 0x00),      # EVENTS_GET_RECORDS
    0x0101: (None, 0x10),   # EVENTS_CLEAR_RECORDS
    0x0102: (0, 0x00),      # EVENTS_GET_INTERRUPT_POLICY
    0x0103: (None, 0x02),   # EVENTS_SET_INTERRUPT_POLICY
    0x0200: (0, 0x00),      # FIRMWARE_UPDATE_GET_INFO
    0x0201: (None, 0x40),   # FIRMWARE_UPDATE_TRANSFER
    0x0202: (2, 0x40),      # FIRMWARE_UPDATE_ACTIVATE
    0x0300: (0, 0x00),      # TIMESTAMP_GET
    0x0301: (8, 0x08),      # TIMESTAMP_SET
    0x0400: (0, 0x00),      # LOGS_GET_SUPPORTED
    0x0401: (0x18, 0x00),   # LOGS_GET_LOG
    0x0500: (0x8, 0x00),    # FEATURES_GET_SUPPORTED
    0x0501: (0x15, 0x00),   # FEATURES_GET_FEATURE
    0x0502: (None, 0x3E),   # FEATURES_SET_FEATURE
    0x4000: (0, 0x00),      # IDENTIFY_MEMORY_DEVICE
    0x4100: (0, 0x00),      # CCLS_GET_PARTITION_INFO
    0x4102: (8, 0x00),      # CCLS_GET_LSA
    0x4103: (None, 0x06),   # CCLS_SET_LSA
    0x4300: (16, 0x00),     # MEDIA_AND_POISON_GET_POISON_LIST
    0x4301: (8, 0x00),      # MEDIA_AND_POISON_INJECT_POISON
    0x4302: (72, 0x00),     # MEDIA_AND_POISON_CLEAR_POISON
    0x4303: (16, 0x00),     # MEDIA_AND_POISON_GET_SCAN_MEDIA_CAPABILITIES
    0x4304: (17, 0x40),     # MEDIA_AND_POISON_SCAN_MEDIA
    0x4305: (0, 0x00),      # MEDIA_AND_POISON_GET_SCAN_MEDIA_RESULTS
    0x4400: (0, 0x64),      # SANITIZE_OVERWRITE
    0x4500: (0, 0x00),      # GET_SECURITY_STATE
}
# Opcodes the model's table has and cxl_cmd_set[][] lacks: no handler, so
# cxl_process_cci_message() answers CXL_MBOX_UNSUPPORTED before it looks at anything else.
QEMU_LACKS = ("GET_LOG_CAPS", "CLEAR_LOG", "GET_SUP_LOG_SUBLIST", "DO_MAINTENANCE", "SET_PARTITION_INFO",
              "GET_HEALTH_INFO", "GET_ALERT_CONFIG", "SET_ALERT_CONFIG", "GET_SHUTDOWN_STATE",
              "SET_SHUTDOWN_STATE", "SECURE_ERASE", "SET_PASSPHRASE", "DISABLE_PASSPHRASE", "UNLOCK",
              "FREEZE_SECURITY", "PASSPHRASE_SECURE_ERASE")


def ex(registry: Registry, policy: str = "permissive", device: str = "qemu") -> Executor:
    return registry.executor("cxl", registry.policy("cxl", policy), registry.device("cxl", device))


def user(op: str, channel: str = "cxl.raw", caller: Caller = ROOT, **args: Any) -> Step:
    return Step("user", op, args, channel, caller)


def kernel(action: str, **args: Any) -> Step:
    return Step("kernel", action, args)


def plain_args(c: Command) -> dict[str, Any]:
    """The first value of each content argument (sizes left to their natural value)."""
    out: dict[str, Any] = {}
    for p in c.params:
        if p.kind == "choice":
            out[p.name] = p.choices[0]
        elif p.kind == "bool":
            out[p.name] = False
        elif p.kind == "int":
            out[p.name] = p.lo
    return out


def rc(result: StepResult) -> str:
    assert result.reply is not None, result
    return mb.RC_NAMES.get(result.reply.rc, str(result.reply.rc))


def sigs(result: StepResult) -> set[str]:
    return {v.signature for v in result.violations}


# ----------------------------------------------------------------------------- the CEL


def test_the_cel_is_cxl_cmd_set(registry: Registry) -> None:
    e = ex(registry)
    cel = e.world.device.execute("GET_LOG", {"log": mb.CEL_UUID, "offset": 0, "length": 104}).out["cel"]
    assert dict(cel) == {op: eff for op, (_, eff) in QEMU_CMD_SET.items()}
    assert [op for op, _ in cel] == sorted(QEMU_CMD_SET)  # cxl_rebuild_cel(): set by set, command by command
    logs = e.world.device.execute("GET_SUPPORTED_LOGS", {}).out["logs"]
    assert logs == ((mb.CEL_UUID, 4 * len(QEMU_CMD_SET)),)  # cmd_logs_get_supported(): the CEL only


def test_every_command_declares_its_cel_entry_or_nothing(registry: Registry) -> None:
    e = ex(registry)
    by_opcode = {c.opcode: c for c in e.commands.values()}
    for op in QEMU_LACKS:
        assert e.commands[op].opcode not in QEMU_CMD_SET
        assert e.commands[op].declared(plain_args(e.commands[op]), e.world.device) == 0, op
    for opcode, (_, effect) in QEMU_CMD_SET.items():
        c = by_opcode[opcode]
        if c.op == "SET_FEATURE":  # per feature: the Supported Features entry's effects
            continue
        assert c.declared(plain_args(c), e.world.device) == effect, c.op


def test_commands_qemu_lacks_answer_unsupported_whatever_their_length(registry: Registry) -> None:
    e = ex(registry)
    for op in QEMU_LACKS:
        args = plain_args(e.commands[op])
        for in_size in (None, 1, 300):
            step = user(op, **args) if in_size is None else user(op, **args, in_size=in_size)
            r = e.apply(step)
            assert rc(r) == "UNSUPPORTED" and not r.changes, (op, in_size)
    spec = ex(registry, device="spec")
    assert rc(spec.apply(user("GET_HEALTH_INFO"))) == "SUCCESS"
    assert rc(spec.apply(user("DO_MAINTENANCE", op_class=1, op_subclass=0, dpa=0))) == "SUCCESS"


def test_ioctl_commands_absent_from_the_cel_are_enotty(registry: Registry) -> None:
    e = ex(registry, "linux-ioctl")
    r = e.apply(user("SET_PARTITION_INFO", "cxl.ioctl", volatile=0, immediate=False))
    assert r.decision is not None and not r.decision.allowed
    assert (r.decision.errno, r.decision.rule) == (errno.ENOTTY, "enabled-cmds")
    for op in ("GET_HEALTH_INFO", "GET_ALERT_CONFIG", "GET_SHUTDOWN_STATE", "GET_LOG_CAPS", "CLEAR_LOG"):
        r = e.apply(user(op, "cxl.ioctl", **plain_args(e.commands[op])))
        assert r.decision is not None and r.decision.errno == errno.ENOTTY, op
    for op in ("GET_FW_INFO", "GET_PARTITION_INFO", "GET_TIMESTAMP", "GET_SCAN_MEDIA_CAPS"):
        r = e.apply(user(op, "cxl.ioctl"))
        assert r.decision is not None and r.decision.allowed and rc(r) == "SUCCESS", op
    spec = ex(registry, "linux-ioctl", "spec").apply(user("SET_PARTITION_INFO", "cxl.ioctl", volatile=2,
                                                          immediate=False))
    assert spec.decision is not None and spec.decision.allowed


# ----------------------------------------------------------------------------- lengths


def test_fixed_lengths_are_exact(registry: Registry) -> None:
    e = ex(registry)
    by_opcode = {c.opcode: c for c in e.commands.values()}
    for opcode, (length, _) in QEMU_CMD_SET.items():
        if length is None:
            continue
        c = by_opcode[opcode]
        assert rc(e.apply(user(c.op, **plain_args(c), in_size=length + 1))) == "PAYLOADLEN", c.op
        assert rc(e.apply(user(c.op, **plain_args(c), in_size=length))) != "PAYLOADLEN", c.op
        e.reset()


def test_variable_lengths_are_the_handlers_minimums(registry: Registry) -> None:
    e = ex(registry)
    # cmd_events_set_interrupt_policy(): at least CXL_EVENT_INT_SETTING_MIN_LEN (4); more is fine
    assert rc(e.apply(user("SET_EVT_INT_POLICY", log=0, setting=1, in_size=5))) == "SUCCESS"
    assert rc(e.apply(user("SET_EVT_INT_POLICY", log=0, setting=1, in_size=3))) == "PAYLOADLEN"
    spec = ex(registry, device="spec")
    assert rc(spec.apply(user("SET_EVT_INT_POLICY", log=0, setting=1, in_size=5))) == "PAYLOADLEN"
    # cmd_events_clear_records(): 6 bytes and nr_recs (1) handles
    assert rc(e.apply(user("CLEAR_EVENT_RECORD", log=0, handle=1, in_size=7))) == "PAYLOADLEN"
    assert rc(e.apply(user("CLEAR_EVENT_RECORD", log=0, handle=1, in_size=9))) == "SUCCESS"
    # cmd_firmware_update_transfer(): the 0x80-byte header
    assert rc(e.apply(user("TRANSFER_FW", slot=2, revision="v2", in_size=0x7F))) == "PAYLOADLEN"
    # cmd_ccls_set_lsa(): the 8-byte header; offset + data within the 1 MiB LSA
    assert rc(e.apply(user("SET_LSA", offset=0, length=4, byte=1, in_size=7))) == "PAYLOADLEN"
    assert rc(e.apply(user("SET_LSA", offset=LSA_SIZE - 16, length=16, byte=7))) == "SUCCESS"
    assert rc(e.apply(user("SET_LSA", offset=LSA_SIZE - 8, length=16, byte=7))) == "INPUT"
    got = e.apply(user("GET_LSA", offset=LSA_SIZE - 16, length=16))
    assert rc(got) == "SUCCESS" and got.reply is not None and got.reply.data == bytes([7]) * 16
    assert rc(e.apply(user("GET_LSA", offset=LSA_SIZE - 15, length=16))) == "INPUT"
    # a longer Set LSA writes its zero padding too
    e.apply(user("SET_LSA", offset=LSA_SIZE - 16, length=4, byte=9, in_size=8 + 16))
    got = e.apply(user("GET_LSA", offset=LSA_SIZE - 16, length=16))
    assert got.reply is not None and got.reply.data == bytes([9]) * 4 + bytes(12)


# ----------------------------------------------------------------------------- features


def test_features_are_patrol_scrub_and_ecs(registry: Registry) -> None:
    e = ex(registry)
    # cmd_features_get_supported(): CHANGABLE, effects immediate config | CEL valid
    assert e.world.kernel["features"] == {mb.PATROL_SCRUB_UUID: (True, 0x202), mb.ECS_UUID: (True, 0x202)}
    sizes = {}
    for uuid in (mb.PATROL_SCRUB_UUID, mb.ECS_UUID):
        r = e.apply(user("GET_FEATURE", uuid=uuid, count=100))
        assert rc(r) == "SUCCESS" and r.reply is not None
        sizes[uuid] = len(r.reply.data)
    # sizeof(CXLMemPatrolScrubReadAttrs), sizeof(CXLMemECSReadAttrs) (include/hw/cxl/cxl_device.h)
    assert sizes == {mb.PATROL_SCRUB_UUID: 4, mb.ECS_UUID: 13}
    # ct3_realize(): 12-hour cycle, minimum 1, disabled; ECS log entry type 1, threshold count 3 per FRU
    scrub = e.apply(user("GET_FEATURE", uuid=mb.PATROL_SCRUB_UUID, count=4)).reply
    ecs = e.apply(user("GET_FEATURE", uuid=mb.ECS_UUID, count=13)).reply
    assert scrub is not None and scrub.data == bytes([3, 12, 1, 0])
    assert ecs is not None and ecs.data == bytes([1]) + bytes([1, 3, 0, 0]) * 3
    # offset + count against the payload comes before the UUID
    assert rc(e.apply(user("GET_FEATURE", uuid=mb.TEST_FEATURE_UUID, count=4))) == "UNSUPPORTED"
    assert rc(e.apply(user("GET_FEATURE", uuid=mb.TEST_FEATURE_UUID, count=2049))) == "INPUT"
    assert rc(e.apply(user("GET_FEATURE", uuid=mb.PATROL_SCRUB_UUID, count=2049))) == "INPUT"
    assert rc(e.apply(user("SET_FEATURE", uuid=mb.TEST_FEATURE_UUID, value=1))) == "UNSUPPORTED"


def test_set_feature_writes_at_most_the_write_attributes(registry: Registry) -> None:
    e = ex(registry)
    st = e.world.device.state
    # natural: the struct's 2 (scrub) and 7 (ECS) bytes of data; no 1-hour minimum in QEMU
    assert rc(e.apply(user("SET_FEATURE", uuid=mb.PATROL_SCRUB_UUID, value=0))) == "SUCCESS"
    assert (st["scrub.cycle_hours"], st["scrub.enabled"]) == (0, True)
    assert rc(ex(registry, device="spec").apply(user("SET_FEATURE", uuid=mb.PATROL_SCRUB_UUID,
                                                     value=0))) == "INPUT"
    assert rc(e.apply(user("SET_FEATURE", uuid=mb.PATROL_SCRUB_UUID, value=5, in_size=32 + 3))) == "PAYLOADLEN"
    assert rc(e.apply(user("SET_FEATURE", uuid=mb.PATROL_SCRUB_UUID, value=5, in_size=32))) == "PAYLOADLEN"
    # one byte of data: the cycle; the flags byte stays zero, so scrub is disabled
    assert rc(e.apply(user("SET_FEATURE", uuid=mb.PATROL_SCRUB_UUID, value=6, in_size=33))) == "SUCCESS"
    assert (st["scrub.cycle_hours"], st["scrub.enabled"]) == (6, False)
    assert rc(e.apply(user("SET_FEATURE", uuid=mb.ECS_UUID, value=0x25))) == "SUCCESS"
    assert st["ecs.threshold"] == (0, 5, 5, 5)  # ecs_config & 0x1F; the request's log capability is 0
    assert rc(e.apply(user("SET_FEATURE", uuid=mb.ECS_UUID, value=1, in_size=32 + 8))) == "PAYLOADLEN"
    assert rc(e.apply(user("SET_FEATURE", uuid=mb.ECS_UUID, value=2, in_size=32 + 3))) == "SUCCESS"
    assert st["ecs.threshold"] == (0, 2, 0, 0)
    # EDAC's own writes keep the flags it read
    r = e.apply(kernel("edac_set_scrub", cycle_hours=24))
    assert r.reply is not None and not r.reply.errno
    assert (st["scrub.cycle_hours"], st["scrub.enabled"]) == (24, False)


# ----------------------------------------------------------------------------- device state


def test_identify_and_capacity(registry: Registry) -> None:
    e = ex(registry)
    out = e.world.device.execute("IDENTIFY", {}).out
    assert (out["total_units"], out["volatile_only"], out["persistent_only"], out["lsa_size"]) == (1, 0, 1, 1 << 20)
    # no volatile capacity, so no ram partition: cxl_dpa_set_part() refuses the mode (EINVAL)
    assert e.apply(kernel("region_create", mode="ram", size=1)).reply.errno == errno.EINVAL  # type: ignore[union-attr]
    assert e.apply(kernel("region_create", mode="pmem", size=2)).reply.errno == errno.ENOSPC  # type: ignore[union-attr]
    assert not e.apply(kernel("region_create", mode="pmem", size=1)).reply.errno  # type: ignore[union-attr]
    # Set Shutdown State is UNSUPPORTED: cxl_nvdimm_arm_dirty_shutdown_tracking() warns, the nvdimm binds
    r = e.apply(kernel("nvdimm_bind"))
    assert r.reply is not None and not r.reply.errno and e.world.kernel["nvdimm_bound"]


def test_one_background_command_then_media_disabled(registry: Registry) -> None:
    e = ex(registry)
    e.apply(user("SET_LSA", offset=64, length=8, byte=0xAA))
    e.apply(kernel("media_error_event", log=1))
    assert rc(e.apply(user("SANITIZE"))) == "BACKGROUND"
    # The device itself (the kernel's busy gate, below, keeps these from reaching it):
    dev = e.world.device

    def drc(op: str, **args: Any) -> str:
        return mb.RC_NAMES[dev.execute(op, args).rc]

    # cxl_process_cci_message(): BUSY (a background command's effect) is checked before MEDIA_DISABLED
    for op, args in (("SANITIZE", {}), ("TRANSFER_FW", {"slot": 2, "revision": "v2"}),
                     ("ACTIVATE_FW", {"slot": 2, "online": True}), ("SCAN_MEDIA", {})):
        assert drc(op, **args) == "BUSY", op
    for op, args in (("GET_LSA", {"offset": 0, "length": 8}), ("GET_EVENT_RECORD", {"log": 1}),
                     ("GET_POISON", {}), ("GET_LOG", {"log": mb.CEL_UUID, "offset": 0, "length": 4})):
        assert drc(op, **args) == "MEDIADISABLED", op
    assert drc("GET_FW_INFO") == "SUCCESS"
    # 7.3.4 pci.c __cxl_pci_mbox_send_cmd(): while the sanitize poller runs, the kernel answers -EBUSY
    # to everything but Get Health Info, before the device sees it (measured on 7.3.4 under QEMU)
    r = e.apply(user("GET_FW_INFO"))
    assert r.reply is not None and r.reply.errno == errno.EBUSY
    spec = ex(registry, device="spec")
    spec.apply(user("SANITIZE"))
    assert mb.RC_NAMES[spec.world.device.execute("SANITIZE", {}).rc] == "MEDIADISABLED"
    # __do_sanitization(): the LSA is zeroed and every event record discarded
    e.apply(kernel("background_complete"))
    st = e.world.device.state
    assert st["lsa"] == () and st["event.records"] == () and st["media.enabled"]
    assert rc(e.apply(user("GET_FW_INFO"))) == "SUCCESS"  # the poller saw it finish: the gate is open


def test_firmware_slots(registry: Registry) -> None:
    e = ex(registry)
    st = e.world.device.state
    assert rc(e.apply(user("ACTIVATE_FW", slot=1, online=True))) == "FWSLOT"  # the active slot
    assert rc(ex(registry, device="spec").apply(user("ACTIVATE_FW", slot=1, online=True))) == "SUCCESS"
    assert rc(e.apply(user("ACTIVATE_FW", slot=2, online=False))) == "FWSLOT"  # no package yet
    assert rc(e.apply(user("TRANSFER_FW", slot=1, revision="v2"))) == "FWSLOT"
    assert rc(e.apply(user("TRANSFER_FW", slot=2, revision="v2"))) == "BACKGROUND"
    e.apply(kernel("background_complete"))
    assert rc(e.apply(user("ACTIVATE_FW", slot=2, online=False))) == "SUCCESS"
    assert st["fw.staged_slot"] == 2
    # ct3d_reset() -> cxl_init_cci(): slot 1 only, active 1; the staged slot never goes live
    e.apply(kernel("cold_reset"))
    st = e.world.device.state
    assert (st["fw.slots"], st["fw.active_slot"], st["fw.staged_slot"]) == (("v1", ""), 1, 0)


def test_event_handles_count_up_and_only_the_oldest_clears(registry: Registry) -> None:
    e = ex(registry)
    assert rc(e.apply(user("CLEAR_EVENT_RECORD", log=0, handle=3))) == "SUCCESS"  # an empty log
    assert rc(ex(registry, device="spec").apply(user("CLEAR_EVENT_RECORD", log=0, handle=3))) == "INPUT"
    e.apply(kernel("media_error_event", log=0))
    e.apply(kernel("media_error_event", log=0))
    assert e.world.device.state["event.records"] == ((0, 1), (0, 2))
    assert rc(e.apply(user("CLEAR_EVENT_RECORD", log=0, handle=2))) == "INPUT"  # not the oldest
    assert rc(e.apply(user("CLEAR_EVENT_RECORD", log=0, handle=1))) == "SUCCESS"
    e.apply(kernel("event_irq"))
    e.apply(kernel("media_error_event", log=0))
    assert e.world.device.state["event.records"] == ((0, 3),)  # cxl_event_insert(): never reused
    for _ in range(9):
        e.apply(kernel("media_error_event", log=2))
    assert sum(1 for lg, _ in e.world.device.state["event.records"] if lg == 2) == 8  # CXL_TEST_EVENT_OVERFLOW


def test_get_log_checks_length_then_uuid_then_the_cel_array(registry: Registry) -> None:
    e = ex(registry)
    assert rc(e.apply(user("GET_LOG", log=mb.VENDOR_DEBUG_LOG_UUID, offset=0, length=2049))) == "INPUT"
    assert rc(e.apply(user("GET_LOG", log=mb.VENDOR_DEBUG_LOG_UUID, offset=0, length=8))) == "LOG"
    # past the 104-byte CEL but within cci->cel_log[]
    assert rc(e.apply(user("GET_LOG", log=mb.CEL_UUID, offset=200, length=100))) == "SUCCESS"
    assert rc(ex(registry, device="spec").apply(user("GET_LOG", log=mb.CEL_UUID, offset=200,
                                                     length=100))) == "INPUT"


def test_scan_media_and_poison(registry: Registry) -> None:
    e = ex(registry)
    st = e.world.device.state
    assert rc(e.apply(user("GET_SCAN_MEDIA"))) == "UNSUPPORTED"  # no scan has run
    assert rc(e.apply(user("INJECT_POISON", dpa=3))) == "SUCCESS" and st["poison"] == {3}
    assert rc(e.apply(user("SCAN_MEDIA"))) == "BACKGROUND"
    assert rc(e.apply(user("INJECT_POISON", dpa=4))) == "SUCCESS" and st["poison"] == {3}  # list frozen
    assert rc(e.apply(user("CLEAR_POISON", dpa=3))) == "SUCCESS" and st["poison"] == {3}
    e.apply(kernel("background_complete"))
    assert rc(e.apply(user("GET_SCAN_MEDIA"))) == "SUCCESS"


def test_qemus_cel_declares_no_effect_for_inject_poison(registry: Registry) -> None:
    """Not a model bug: QEMU 10.0.2's CEL entry for Inject Poison is 0, and the model says what follows."""
    r = ex(registry, "linux-raw").apply(user("INJECT_POISON", caller=ALLOW_ALL, dpa=1))
    assert "declared-effects:cxl:INJECT_POISON:poison" in sigs(r)


def test_a_short_campaign_runs(tmp_path: Path) -> None:
    code = run_cli(["run", "cxl", "--policy", "linux-raw", "--device", "qemu", "--seed", "1",
                    "--max-examples", "300", "--corpus", str(tmp_path)])
    assert code in (0, 1)


@pytest.mark.parametrize("policy", ["linux-ioctl", "linux-fwctl"])
def test_other_policies_run_on_the_qemu_device(registry: Registry, policy: str) -> None:
    e = ex(registry, policy)
    e.apply(user("GET_FW_INFO", "cxl.ioctl"))
    assert e.world.kernel["enabled"] >= {"IDENTIFY", "GET_LSA", "SET_LSA", "GET_TIMESTAMP"}
