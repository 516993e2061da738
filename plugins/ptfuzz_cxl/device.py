"""A CXL type-3 memory device: its state, its mailbox handlers and its CEL.

Behaviour follows QEMU's emulation (``hw/cxl/cxl-mailbox-utils.c``) and the
CXL spec where Linux depends on it: one background operation at a time (BUSY
otherwise), media disabled while a sanitize runs, partition changes staged as
"next" values applied at cold reset, FW slots, Set Feature on patrol scrub and
ECS.  Every command declares its payload layout (``LAYOUTS``: the sizes of
the kernel's ``cxl_mem_commands[]`` and the spec's structs), so requests
carry real sizes.  Simplifications, once: handlers take the decoded
arguments (the transport refuses a payload of the wrong length first, as
QEMU's ``cxl_process_cci_message()`` does); every feature's data is 4 bytes;
DPAs are slot indices; Set Feature is a single FULL transfer;
a background operation makes its destructive change when it starts and the
``background_complete`` kernel action stands for the passing of time.

What the device does on its own (a background operation finishing, a cold
reset, logging an event) is in ``complete_background()``, ``cold_reset()``
and ``log_event()``; a variant whose firmware does these differently names
its own in ``info`` under the same key (``qemu.py``).
"""

from __future__ import annotations

import errno
from collections.abc import Callable, Mapping
from typing import Any, Final

import attrs
from hypothesis import strategies as st

from fuzzer import ALWAYS, Args, Command, Device, DeviceVariant, Effect, Field, Layout, Param, Reply, Slot

from . import mailbox as mb

E = Effect

# ----------------------------------------------------------------------------- fields


def _nvdimm_bound(k: Mapping[str, Any]) -> bool:
    return bool(k["nvdimm_bound"])


def _decoders_committed(k: Mapping[str, Any]) -> bool:
    return bool(k["regions"])


FIELDS = (
    Field("partition.active_volatile", E.CONFIG_IMMEDIATE, ALWAYS,
          "cxl_mem_dpa_fetch() sized the ram/pmem DPA partitions at probe (drivers/cxl/core/mbox.c)"),
    Field("partition.next_volatile", E.CONFIG_COLD_RESET, None, "applied at the next cold reset"),
    Field("lsa", E.CONFIG_IMMEDIATE, _nvdimm_bound,
          "libnvdimm owns the labels while the nvdimm is bound (drivers/cxl/pmem.c)"),
    Field("shutdown_state", E.POLICY_IMMEDIATE, _nvdimm_bound,
          "cxl_nvdimm_arm_dirty_shutdown_tracking() armed it dirty at nvdimm probe"),
    Field("timestamp", E.POLICY_IMMEDIATE, ALWAYS, "cxl_set_timestamp() set it at probe"),
    Field("event.int_policy", E.CONFIG_IMMEDIATE, ALWAYS,
          "cxl_event_config() programmed event interrupts at probe (drivers/cxl/pci.c)"),
    Field("event.records", E.LOG_IMMEDIATE, ALWAYS,
          "the driver reads and clears event logs itself (cxl_mem_get_records_log())"),
    Field("event.next_handle", E.NONE, None,
          "the qemu device's per-log handle counter (other variants number records from what the log holds)"),
    Field("alert.config", E.POLICY_IMMEDIATE, None, "userspace's to set (cxl set-alert-config)"),
    Field("fw.slots", E.CONFIG_COLD_RESET, None, "staged images run only after activation"),
    Field("fw.active_slot", E.CONFIG_IMMEDIATE, ALWAYS,
          "the running firmware; activation needs the kernel to quiesce the device"),
    Field("fw.staged_slot", E.CONFIG_COLD_RESET, None, "slot activated at next cold reset"),
    Field("fw.transfer", E.BACKGROUND, None, "an in-progress Transfer FW"),
    Field("bg.opcode", E.BACKGROUND, None, "the running background operation"),
    Field("media.enabled", E.DATA_IMMEDIATE, _decoders_committed,
          "committed HDM decoders map this media into system memory"),
    Field("media.generation", E.DATA_IMMEDIATE, _decoders_committed,
          "the contents of memory online in a region"),
    Field("poison", E.DATA_IMMEDIATE, ALWAYS,
          "poison list orchestration is the driver's (cxl_disabled_raw_commands[])"),
    Field("scan.results", E.LOG_IMMEDIATE, None, "Scan Media results"),
    Field("security.state", E.SECURITY, _nvdimm_bound,
          "nvdimm security ops cache the state while bound (drivers/cxl/security.c)"),
    Field("security.passphrase", E.SECURITY, _nvdimm_bound, "set through the nvdimm keys ABI"),
    Field("scrub.cycle_hours", E.CONFIG_IMMEDIATE, ALWAYS,
          "EDAC caches it in cxlmd->scrub_cycle (drivers/cxl/core/edac.c)"),
    Field("scrub.enabled", E.CONFIG_IMMEDIATE, ALWAYS, "EDAC patrol scrub enable_background"),
    Field("ecs.threshold", E.CONFIG_IMMEDIATE, ALWAYS, "EDAC ECS threshold (drivers/cxl/core/edac.c)"),
    Field("feature.test", E.CONFIG_COLD_RESET, None, "cxl_test's vendor test feature"),
    Field("log.cel", E.LOG_IMMEDIATE, ALWAYS,
          "cxl_enumerate_cmds() read the CEL at probe and enabled commands from it (drivers/cxl/core/mbox.c)"),
    Field("log.vendor_debug", E.LOG_IMMEDIATE, None, "vendor debug log: the one log userspace may clear"),
    Field("log.component_state_dump", E.LOG_IMMEDIATE, None, "component state dump log"),
    Field("log.ecs", E.LOG_IMMEDIATE, None, "DDR5 error check scrub log"),
    Field("vendor.perf_mode", E.CONFIG_COLD_RESET, None, "ACME performance mode"),
    Field("vendor.thermal", E.CONFIG_IMMEDIATE, None, "ACME thermal throttle level"),
)


def initial_state() -> dict[str, Any]:
    return {
        "partition.active_volatile": 8,
        "partition.next_volatile": 8,
        "lsa": bytes(mb.LSA_SIZE),
        "shutdown_state": 0,
        "timestamp": 0,
        "event.int_policy": (0, 0, 0, 0),
        "event.records": (),
        "event.next_handle": (1, 1, 1, 1, 1),
        "alert.config": (0, 0),
        "fw.slots": ("v1", ""),
        "fw.active_slot": 1,
        "fw.staged_slot": 0,
        "fw.transfer": (),
        "bg.opcode": 0,
        "media.enabled": True,
        "media.generation": 0,
        "poison": frozenset(),
        "scan.results": (),
        "security.state": 0,
        "security.passphrase": "",
        "scrub.cycle_hours": 12,  # QEMU's default; minimum 1
        "scrub.enabled": True,
        "ecs.threshold": 3,
        "feature.test": 0,
        "vendor.perf_mode": 0,
        "vendor.thermal": 0,
        "log.cel": True,
        "log.vendor_debug": 64,  # bytes of log content
        "log.component_state_dump": 32,
        "log.ecs": 16,
    }


# ----------------------------------------------------------------------------- features


@attrs.frozen
class Feature:
    """One entry of Get Supported Features, and what Set Feature writes.

    ``set_effects`` is what the device *declares*; ``also`` is what a lying
    device does besides.
    """

    uuid: str
    name: str
    field: str
    lo: int
    hi: int
    set_effects: int
    changeable: bool = True
    also: Callable[[dict[str, Any], int], None] | None = None


PATROL_SCRUB = Feature(mb.PATROL_SCRUB_UUID, "patrol-scrub", "scrub.cycle_hours", 1, 255,
                       E.CONFIG_IMMEDIATE | mb.EFFECTS_VALID)
ECS = Feature(mb.ECS_UUID, "ecs", "ecs.threshold", 0, 0x1F, E.CONFIG_IMMEDIATE | mb.EFFECTS_VALID)
# tools/testing/cxl/test/mem.c: effects 0x201 (cold reset | effects valid), get/set size 4.
TEST_FEATURE = Feature(mb.TEST_FEATURE_UUID, "cxl-test", "feature.test", 0, 0xFFFFFFFF,
                       E.CONFIG_COLD_RESET | mb.EFFECTS_VALID)

_PERF_SCRUB_HOURS = (12, 24, 6, 1)


def _perf_mode_also_moves_scrub(state: dict[str, Any], mode: int) -> None:
    state["scrub.cycle_hours"] = _PERF_SCRUB_HOURS[mode]


# The lie: declared "config change after cold reset", but applying a performance
# mode also reprograms the patrol scrubber now.
ACME_PERF = Feature(mb.ACME_PERF_UUID, "acme-perf-mode", "vendor.perf_mode", 0, 3,
                    E.CONFIG_COLD_RESET | mb.EFFECTS_VALID, also=_perf_mode_also_moves_scrub)
ACME_THERMAL = Feature(mb.ACME_THERMAL_UUID, "acme-thermal", "vendor.thermal", 0, 3,
                       E.CONFIG_IMMEDIATE | mb.EFFECTS_VALID)

ALL_FEATURE_UUIDS = (mb.PATROL_SCRUB_UUID, mb.ECS_UUID, mb.TEST_FEATURE_UUID,
                     mb.ACME_PERF_UUID, mb.ACME_THERMAL_UUID)


def features(dev: Device) -> dict[str, Feature]:
    return dev.info["features"]


# ----------------------------------------------------------------------------- helpers

MEDIA_GATED = frozenset({  # refused with MEDIADISABLED during sanitize (QEMU)
    "GET_EVENT_RECORD", "GET_PARTITION_INFO", "SET_LSA", "GET_LSA", "GET_LOG", "GET_POISON",
    "INJECT_POISON", "CLEAR_POISON", "SANITIZE", "SECURE_ERASE", "TRANSFER_FW", "ACTIVATE_FW",
})


def mbox(op: str, background: bool = False) -> Callable[[Callable[[Device, Args], Reply]], Callable[[Device, Args], Reply]]:
    """Wrap a handler with QEMU's generic checks (media disabled, one background op)."""

    def wrap(fn: Callable[[Device, Args], Reply]) -> Callable[[Device, Args], Reply]:
        gated = op in MEDIA_GATED

        def handler(dev: Device, args: Args) -> Reply:
            st = dev.state
            if gated and not st["media.enabled"]:
                return Reply(rc=mb.RC_MEDIADISABLED)
            if background and st["bg.opcode"]:
                return Reply(rc=mb.RC_BUSY)
            return fn(dev, args)

        handler.__name__ = fn.__name__
        return handler

    return wrap


def _ok(**out: Any) -> Reply:
    return Reply(rc=mb.RC_SUCCESS, out=out)


# ----------------------------------------------------------------------------- handlers


def _persistent_only(dev: Device) -> int:
    """Identify's "persistent only capacity": the part of the media no partitioning makes volatile."""
    return int(dev.info.get("persistent_only", mb.PERSISTENT_ONLY_UNITS))


def total_units(dev: Device) -> int:
    """The device's capacity in 256 MiB units (Identify's total capacity)."""
    return int(dev.info.get("total_units", mb.TOTAL_UNITS))


def identify(dev: Device, args: Args) -> Reply:
    return _ok(total_units=total_units(dev), volatile_only=mb.VOLATILE_ONLY_UNITS,
               persistent_only=_persistent_only(dev), lsa_size=mb.LSA_SIZE)


#: log UUID -> state key of its content
LOGS = {
    mb.CEL_UUID: "log.cel",
    mb.VENDOR_DEBUG_LOG_UUID: "log.vendor_debug",
    mb.COMPONENT_STATE_DUMP_UUID: "log.component_state_dump",
    mb.ECS_LOG_UUID: "log.ecs",
}
CEL_ENTRY = 4  # struct cxl_cel_entry: le16 opcode, le16 effect


def _log_size(dev: Device, uuid: str) -> int:
    if uuid == mb.CEL_UUID:
        return CEL_ENTRY * len(dev.info["cel"]) if dev.state["log.cel"] else 0
    return int(dev.state[LOGS[uuid]])


def get_supported_logs(dev: Device, args: Args) -> Reply:
    logs = tuple((u, _log_size(dev, u)) for u in LOGS)
    return _ok(logs=logs, data=bytes(8 + 20 * len(logs)))


@mbox("GET_LOG")
def get_log(dev: Device, args: Args) -> Reply:
    """CXL r3.1 8.2.9.5.2; QEMU cmd_logs_get_log(): offset + length within the log and the payload."""
    uuid, offset, length = args["log"], args.get("offset", 0), args.get("length", 0)
    if uuid not in LOGS:
        return Reply(rc=mb.RC_LOG)
    size = _log_size(dev, uuid)
    if length > dev.info.get("payload_size", mb.PAYLOAD_SIZE) or offset + length > size:
        return Reply(rc=mb.RC_INPUT)
    out = {"cel": dev.info["cel"]} if uuid == mb.CEL_UUID and dev.state["log.cel"] else {}
    return Reply(rc=mb.RC_SUCCESS, out=out, data=bytes(length))


def get_log_caps(dev: Device, args: Args) -> Reply:
    """Log capabilities: bit 0 "clear log supported" (the CEL is not clearable on a spec device)."""
    if args["log"] not in LOGS:
        return Reply(rc=mb.RC_LOG)
    clear = args["log"] != mb.CEL_UUID or dev.info.get("clears_cel", False)
    return _ok(clearable=clear, data=int(clear).to_bytes(4, "little"))


def clear_log(dev: Device, args: Args) -> Reply:
    """CXL r3.1 8.2.9.5.4.  A device that clears its CEL does what QEMU's first Clear Log posting did
    (qemu-devel, 2025), which review rejected: the CEL is not a dynamic thing."""
    uuid = args["log"]
    if uuid not in LOGS:
        return Reply(rc=mb.RC_LOG)
    if uuid == mb.CEL_UUID:
        if not dev.info.get("clears_cel", False):
            return Reply(rc=mb.RC_UNSUPPORTED)
        dev.state["log.cel"] = False
        return _ok()
    dev.state[LOGS[uuid]] = 0
    return _ok()


def get_sup_log_sublist(dev: Device, args: Args) -> Reply:
    start, most = args["start"], args["max_entries"]
    logs = tuple(LOGS)[start: start + most]
    return _ok(logs=logs, data=bytes(8 + 20 * len(logs)))


#: Do Maintenance operation classes (CXL r3.1 Table 8-102): 1 PPR, 2 memory sparing.
MAINTENANCE_CLASSES = (1, 2)


def do_maintenance(dev: Device, args: Args) -> Reply:
    """A post-package repair or sparing remaps the media at a DPA: what was there is replaced."""
    if args["op_class"] not in MAINTENANCE_CLASSES:
        return Reply(rc=mb.RC_UNSUPPORTED)
    dev.state["media.generation"] = dev.state["media.generation"] + 1
    return _ok()


def get_fw_info(dev: Device, args: Args) -> Reply:
    st = dev.state
    return _ok(slots=st["fw.slots"], active=st["fw.active_slot"], staged=st["fw.staged_slot"])


@mbox("TRANSFER_FW", background=True)
def transfer_fw(dev: Device, args: Args) -> Reply:
    slot = args["slot"]
    if slot == dev.state["fw.active_slot"]:
        return Reply(rc=mb.RC_FWSLOT)
    dev.state["fw.transfer"] = (slot, args["revision"])
    dev.state["bg.opcode"] = mb.TRANSFER_FW
    return Reply(rc=mb.RC_BACKGROUND)


@mbox("ACTIVATE_FW")
def activate_fw(dev: Device, args: Args) -> Reply:
    st, slot = dev.state, args["slot"]
    if not st["fw.slots"][slot - 1] or st["fw.transfer"]:
        return Reply(rc=mb.RC_FWSLOT)
    if args["online"]:
        st["fw.active_slot"] = slot
    else:
        st["fw.staged_slot"] = slot
    return _ok()


def get_timestamp(dev: Device, args: Args) -> Reply:
    return _ok(timestamp=dev.state["timestamp"])


def set_timestamp(dev: Device, args: Args) -> Reply:
    dev.state["timestamp"] = args["timestamp"]
    return _ok()


@mbox("GET_EVENT_RECORD")
def get_event_record(dev: Device, args: Args) -> Reply:
    return _ok(records=tuple(r for r in dev.state["event.records"] if r[0] == args["log"]))


def clear_event_record(dev: Device, args: Args) -> Reply:
    st = dev.state
    rec = (args["log"], args["handle"])
    if rec not in st["event.records"]:
        return Reply(rc=mb.RC_INPUT)
    st["event.records"] = tuple(r for r in st["event.records"] if r != rec)
    return _ok()


def get_evt_int_policy(dev: Device, args: Args) -> Reply:
    return _ok(policy=dev.state["event.int_policy"])


def set_evt_int_policy(dev: Device, args: Args) -> Reply:
    pol = list(dev.state["event.int_policy"])
    pol[args["log"]] = args["setting"]
    dev.state["event.int_policy"] = tuple(pol)
    return _ok()


def get_supported_features(dev: Device, args: Args) -> Reply:
    return _ok(features=tuple(
        (f.uuid, f.changeable, f.set_effects) for f in features(dev).values()
    ))


FEATURE_DATA = 4  # every feature's readable data here (the kernel mock's test feature: get size 4)


def get_feature(dev: Device, args: Args) -> Reply:
    feat = features(dev).get(args["uuid"])
    if feat is None:
        return Reply(rc=mb.RC_UNSUPPORTED)
    count = args.get("count", FEATURE_DATA)
    if count > FEATURE_DATA:  # offset + count past the feature's data (QEMU: Invalid Input)
        return Reply(rc=mb.RC_INPUT)
    value = dev.state[feat.field]
    return Reply(rc=mb.RC_SUCCESS, out={"value": value},
                 data=(int(value) & 0xFFFFFFFF).to_bytes(4, "little")[:count])


def set_feature(dev: Device, args: Args) -> Reply:
    feat = features(dev).get(args["uuid"])
    if feat is None or not feat.changeable:
        return Reply(rc=mb.RC_UNSUPPORTED)
    value = args["value"]
    if not feat.lo <= value <= feat.hi:
        return Reply(rc=mb.RC_INPUT)
    dev.state[feat.field] = value
    if feat.also is not None:
        feat.also(dev.state, value)
    return _ok()


def set_feature_effects(args: Args, dev: Device) -> int:
    feat = features(dev).get(args["uuid"])
    return (feat.set_effects & ~mb.EFFECTS_VALID) if feat else 0


@mbox("GET_PARTITION_INFO")
def get_partition_info(dev: Device, args: Args) -> Reply:
    st = dev.state
    return _ok(active_volatile=st["partition.active_volatile"], next_volatile=st["partition.next_volatile"])


def set_partition_info(dev: Device, args: Args) -> Reply:
    vol = args["volatile"]
    if not mb.VOLATILE_ONLY_UNITS <= vol <= total_units(dev) - _persistent_only(dev):
        return Reply(rc=mb.RC_INPUT)
    dev.state["partition.next_volatile"] = vol
    if args["immediate"]:
        dev.state["partition.active_volatile"] = vol
    return _ok()


def set_partition_effects(args: Args, dev: Device) -> int:
    return E.CONFIG_IMMEDIATE | E.CONFIG_COLD_RESET if args["immediate"] else E.CONFIG_COLD_RESET


@mbox("GET_LSA")
def get_lsa(dev: Device, args: Args) -> Reply:
    off, length = args["offset"], args["length"]
    if off + length > mb.LSA_SIZE:
        return Reply(rc=mb.RC_INPUT)
    return Reply(rc=mb.RC_SUCCESS, data=dev.state["lsa"][off: off + length])


@mbox("SET_LSA")
def set_lsa(dev: Device, args: Args) -> Reply:
    off, length = args["offset"], args["length"]
    if off + length > mb.LSA_SIZE:
        return Reply(rc=mb.RC_INPUT)
    lsa = dev.state["lsa"]
    dev.state["lsa"] = lsa[:off] + bytes([args["byte"]]) * length + lsa[off + length:]
    return _ok()


def get_health_info(dev: Device, args: Args) -> Reply:
    return _ok(media_enabled=dev.state["media.enabled"], shutdown_state=dev.state["shutdown_state"])


def get_alert_config(dev: Device, args: Args) -> Reply:
    return _ok(config=dev.state["alert.config"])


def set_alert_config(dev: Device, args: Args) -> Reply:
    dev.state["alert.config"] = (args["life_used_threshold"], args["temperature_threshold"])
    return _ok()


def get_shutdown_state(dev: Device, args: Args) -> Reply:
    return _ok(state=dev.state["shutdown_state"])


def set_shutdown_state(dev: Device, args: Args) -> Reply:
    dev.state["shutdown_state"] = args["state"]
    return _ok()


@mbox("GET_POISON")
def get_poison(dev: Device, args: Args) -> Reply:
    return _ok(dpas=tuple(sorted(dev.state["poison"])))


@mbox("INJECT_POISON")
def inject_poison(dev: Device, args: Args) -> Reply:
    dev.state["poison"] = dev.state["poison"] | {args["dpa"]}
    return _ok()


@mbox("CLEAR_POISON")
def clear_poison(dev: Device, args: Args) -> Reply:
    dev.state["poison"] = dev.state["poison"] - {args["dpa"]}
    return _ok()


def get_scan_media_caps(dev: Device, args: Args) -> Reply:
    return _ok(estimated_runtime_ms=1000)


@mbox("SCAN_MEDIA", background=True)
def scan_media(dev: Device, args: Args) -> Reply:
    dev.state["bg.opcode"] = mb.SCAN_MEDIA
    return Reply(rc=mb.RC_BACKGROUND)


def get_scan_media(dev: Device, args: Args) -> Reply:
    return _ok(results=dev.state["scan.results"])


def _erase(dev: Device, opcode: int) -> Reply:
    st = dev.state
    if st["security.state"] & mb.SEC_LOCKED:
        return Reply(rc=mb.RC_SECURITY)
    st["bg.opcode"] = opcode
    st["media.enabled"] = False
    st["media.generation"] = st["media.generation"] + 1
    return Reply(rc=mb.RC_BACKGROUND)


@mbox("SANITIZE", background=True)
def sanitize(dev: Device, args: Args) -> Reply:
    return _erase(dev, mb.SANITIZE)


@mbox("SECURE_ERASE", background=True)
def secure_erase(dev: Device, args: Args) -> Reply:
    return _erase(dev, mb.SECURE_ERASE)


def get_security_state(dev: Device, args: Args) -> Reply:
    return _ok(state=dev.state["security.state"])


def _frozen(dev: Device) -> bool:
    return bool(dev.state["security.state"] & mb.SEC_FROZEN)


def set_passphrase(dev: Device, args: Args) -> Reply:
    st = dev.state
    if _frozen(dev):
        return Reply(rc=mb.RC_SECURITY)
    if st["security.passphrase"] and st["security.passphrase"] != args["old"]:
        return Reply(rc=mb.RC_PASSPHRASE)
    st["security.passphrase"] = args["new"]
    st["security.state"] = st["security.state"] | mb.SEC_USER_PASS_SET
    return _ok()


def disable_passphrase(dev: Device, args: Args) -> Reply:
    st = dev.state
    if _frozen(dev) or not st["security.passphrase"]:
        return Reply(rc=mb.RC_SECURITY)
    if st["security.passphrase"] != args["passphrase"]:
        return Reply(rc=mb.RC_PASSPHRASE)
    st["security.passphrase"] = ""
    st["security.state"] = st["security.state"] & ~mb.SEC_USER_PASS_SET
    return _ok()


def unlock(dev: Device, args: Args) -> Reply:
    st = dev.state
    if _frozen(dev) or not st["security.state"] & mb.SEC_LOCKED:
        return Reply(rc=mb.RC_SECURITY)
    if st["security.passphrase"] != args["passphrase"]:
        return Reply(rc=mb.RC_PASSPHRASE)
    st["security.state"] = st["security.state"] & ~mb.SEC_LOCKED
    return _ok()


def freeze_security(dev: Device, args: Args) -> Reply:
    dev.state["security.state"] = dev.state["security.state"] | mb.SEC_FROZEN
    return _ok()


def passphrase_secure_erase(dev: Device, args: Args) -> Reply:
    st = dev.state
    if _frozen(dev):
        return Reply(rc=mb.RC_SECURITY)
    if st["security.passphrase"] and st["security.passphrase"] != args["passphrase"]:
        return Reply(rc=mb.RC_PASSPHRASE)
    st["media.generation"] = st["media.generation"] + 1
    st["security.passphrase"] = ""
    st["security.state"] = st["security.state"] & ~(mb.SEC_USER_PASS_SET | mb.SEC_LOCKED)
    return _ok()


def no_dynamic_capacity(dev: Device, args: Args) -> Reply:
    """The DCD commands on a device without Dynamic Capacity regions: no handler, UNSUPPORTED.

    Simplification: no variant models DCD (QEMU 10.0.2 installs cxl_cmd_set_dcd[] only with DC
    regions, which the live target's device has none of); the commands are here so that RAW reaches
    their opcodes, and they are absent from every variant's CEL.
    """
    return Reply(rc=mb.RC_UNSUPPORTED)


# vendor device -----------------------------------------------------------------


def acme_ras_restore(dev: Device, args: Args) -> Reply:
    """ACME's "restore RAS defaults": its CEL entry says no effect; it rewrites scrub and ECS."""
    dev.state["scrub.cycle_hours"] = 24
    dev.state["ecs.threshold"] = 0
    return _ok()


def acme_get_diag(dev: Device, args: Args) -> Reply:
    return _ok(temperature_c=41)


# ----------------------------------------------------------------------------- table

IOCTL, RAW, FWCTL, SYSFS = "cxl.ioctl", "cxl.raw", "cxl.fwctl", "cxl.sysfs"
MAILBOX = (IOCTL, RAW)  # in the CXL_MEM_SEND_COMMAND table and reachable raw

_LOG = Param("log", "int", 0, 3, doc="event log: informational, warning, failure, fatal")
_PASS = ("", "secret-a", "secret-b")
# Most features take a small value (a mode, a threshold); draw those often.
_FEATURE_VALUE = st.one_of(st.integers(0, 3), st.integers(0, 255))
_FW_SLOT = Param("slot", "int", 1, mb.FW_SLOTS)
_DPA = Param("dpa", "int", 0, mb.POISON_DPAS - 1, doc="index of a 64-byte aligned DPA")
_LOG_ID = Param("log", "choice", choices=mb.LOG_UUIDS, doc="log identifier UUID")

# (op, opcode, channels, declared effects, handler, params)
# Declared effects are the CEL entries: QEMU's cxl_cmd_set[] and the kernel
# mock's CEL (tools/testing/cxl/test/mem.c) where they exist.
_TABLE: tuple[tuple[str, int, tuple[str, ...], Any, Callable[[Device, Args], Reply], tuple[Param, ...]], ...] = (
    ("IDENTIFY", mb.IDENTIFY, MAILBOX, E.NONE, identify, ()),
    ("GET_SUPPORTED_LOGS", mb.GET_SUPPORTED_LOGS, MAILBOX, E.NONE, get_supported_logs, ()),
    ("GET_LOG", mb.GET_LOG, MAILBOX, E.NONE, get_log,
     (_LOG_ID, Param("offset", "int", 0, 256, doc="byte offset into the log"),
      Param("length", "size", 0, 0xFFFFFFFF, natural=CEL_ENTRY, marks=("payload_size",),
            doc="bytes to read; the device refuses more than its payload size"))),
    ("GET_LOG_CAPS", mb.GET_LOG_CAPS, MAILBOX, E.NONE, get_log_caps, (_LOG_ID,)),
    ("CLEAR_LOG", mb.CLEAR_LOG, MAILBOX, E.LOG_IMMEDIATE, clear_log, (_LOG_ID,)),
    ("GET_SUP_LOG_SUBLIST", mb.GET_SUP_LOG_SUBLIST, MAILBOX, E.NONE, get_sup_log_sublist,
     (Param("max_entries", "int", 0, 255), Param("start", "int", 0, 255))),
    ("GET_FW_INFO", mb.GET_FW_INFO, MAILBOX, E.NONE, get_fw_info, ()),
    ("TRANSFER_FW", mb.TRANSFER_FW, (RAW,), E.CONFIG_COLD_RESET | E.BACKGROUND, transfer_fw,
     (_FW_SLOT, Param("revision", "choice", choices=("v2", "v3")))),
    ("ACTIVATE_FW", mb.ACTIVATE_FW, (RAW,), E.CONFIG_COLD_RESET | E.CONFIG_IMMEDIATE, activate_fw,
     (_FW_SLOT, Param("online", "bool"))),
    ("GET_TIMESTAMP", mb.GET_TIMESTAMP, MAILBOX, E.NONE, get_timestamp, ()),
    ("SET_TIMESTAMP", mb.SET_TIMESTAMP, (RAW,), E.POLICY_IMMEDIATE, set_timestamp,
     (Param("timestamp", "int", 0, 2**32),)),
    ("GET_EVENT_RECORD", mb.GET_EVENT_RECORD, (RAW,), E.NONE, get_event_record, (_LOG,)),
    ("CLEAR_EVENT_RECORD", mb.CLEAR_EVENT_RECORD, (RAW,), E.LOG_IMMEDIATE, clear_event_record,
     (_LOG, Param("handle", "int", 1, 4))),
    ("GET_EVT_INT_POLICY", mb.GET_EVT_INT_POLICY, (RAW,), E.NONE, get_evt_int_policy, ()),
    ("SET_EVT_INT_POLICY", mb.SET_EVT_INT_POLICY, (RAW,), E.CONFIG_IMMEDIATE, set_evt_int_policy,
     (_LOG, Param("setting", "int", 0, 2, doc="0 none, 1 MSI/MSI-X, 2 FW interrupt"))),
    ("GET_SUPPORTED_FEATURES", mb.GET_SUPPORTED_FEATURES, (RAW, FWCTL), E.NONE, get_supported_features, ()),
    ("GET_FEATURE", mb.GET_FEATURE, (RAW, FWCTL), E.NONE, get_feature,
     (Param("uuid", "choice", choices=ALL_FEATURE_UUIDS),
      Param("count", "size", 0, 0xFFFF, natural=FEATURE_DATA, marks=("payload_size",),
            doc="bytes of feature data to read (le16)"))),
    ("SET_FEATURE", mb.SET_FEATURE, (RAW, FWCTL), set_feature_effects, set_feature,
     (Param("uuid", "choice", choices=ALL_FEATURE_UUIDS),
      Param("value", "int", 0, 255, strategy=_FEATURE_VALUE,
            doc="the feature's one settable value (scrub hours, ECS threshold, a mode)"))),
    ("GET_PARTITION_INFO", mb.GET_PARTITION_INFO, MAILBOX, E.NONE, get_partition_info, ()),
    ("SET_PARTITION_INFO", mb.SET_PARTITION_INFO, MAILBOX, set_partition_effects, set_partition_info,
     (Param("volatile", "int", 0, mb.TOTAL_UNITS, doc="volatile capacity, 256 MiB units"),
      Param("immediate", "bool", doc="CXL_SET_PARTITION_IMMEDIATE_FLAG"))),
    ("GET_LSA", mb.GET_LSA, MAILBOX, E.NONE, get_lsa,
     (Param("offset", "int", 0, mb.LSA_SIZE - 1), Param("length", "int", 1, 16))),
    ("SET_LSA", mb.SET_LSA, MAILBOX, E.CONFIG_IMMEDIATE | E.DATA_IMMEDIATE, set_lsa,
     (Param("offset", "int", 0, mb.LSA_SIZE - 1), Param("length", "int", 1, 16),
      Param("byte", "int", 0, 255))),
    ("GET_HEALTH_INFO", mb.GET_HEALTH_INFO, MAILBOX, E.NONE, get_health_info, ()),
    ("GET_ALERT_CONFIG", mb.GET_ALERT_CONFIG, MAILBOX, E.NONE, get_alert_config, ()),
    ("SET_ALERT_CONFIG", mb.SET_ALERT_CONFIG, MAILBOX, E.POLICY_IMMEDIATE, set_alert_config,
     (Param("life_used_threshold", "int", 0, 100), Param("temperature_threshold", "int", 0, 127))),
    ("GET_SHUTDOWN_STATE", mb.GET_SHUTDOWN_STATE, MAILBOX, E.NONE, get_shutdown_state, ()),
    # The kernel mock's CEL says 0x3 here (an unshifted enum); the intended
    # value is immediate policy change, used here.
    ("SET_SHUTDOWN_STATE", mb.SET_SHUTDOWN_STATE, MAILBOX, E.POLICY_IMMEDIATE, set_shutdown_state,
     (Param("state", "int", 0, 1, doc="0 clean, 1 dirty"),)),
    # ioctl ids 15-17: in cxl_mem_commands[] until 2023, deprecated since (kernel.DEPRECATED_IOCTL_OPS)
    ("GET_POISON", mb.GET_POISON, MAILBOX, E.NONE, get_poison, ()),
    ("INJECT_POISON", mb.INJECT_POISON, MAILBOX, E.DATA_IMMEDIATE, inject_poison, (_DPA,)),
    ("CLEAR_POISON", mb.CLEAR_POISON, MAILBOX, E.DATA_IMMEDIATE, clear_poison, (_DPA,)),
    ("GET_SCAN_MEDIA_CAPS", mb.GET_SCAN_MEDIA_CAPS, MAILBOX, E.NONE, get_scan_media_caps, ()),
    ("SCAN_MEDIA", mb.SCAN_MEDIA, (RAW,), E.BACKGROUND, scan_media, ()),
    ("GET_SCAN_MEDIA", mb.GET_SCAN_MEDIA, (RAW,), E.NONE, get_scan_media, ()),
    ("SANITIZE", mb.SANITIZE, (RAW, SYSFS), E.DATA_IMMEDIATE | E.SECURITY | E.BACKGROUND, sanitize, ()),
    # Secure erase effects: not in QEMU nor the kernel mock; taken to match sanitize.
    ("SECURE_ERASE", mb.SECURE_ERASE, (RAW, SYSFS), E.DATA_IMMEDIATE | E.SECURITY | E.BACKGROUND,
     secure_erase, ()),
    ("GET_SECURITY_STATE", mb.GET_SECURITY_STATE, (RAW,), E.NONE, get_security_state, ()),
    ("SET_PASSPHRASE", mb.SET_PASSPHRASE, (RAW,), E.SECURITY, set_passphrase,
     (Param("old", "choice", choices=_PASS), Param("new", "choice", choices=_PASS[1:]))),
    ("DISABLE_PASSPHRASE", mb.DISABLE_PASSPHRASE, (RAW,), E.SECURITY, disable_passphrase,
     (Param("passphrase", "choice", choices=_PASS),)),
    ("UNLOCK", mb.UNLOCK, (RAW,), E.SECURITY, unlock, (Param("passphrase", "choice", choices=_PASS),)),
    ("FREEZE_SECURITY", mb.FREEZE_SECURITY, (RAW,), E.SECURITY, freeze_security, ()),
    ("PASSPHRASE_SECURE_ERASE", mb.PASSPHRASE_SECURE_ERASE, (RAW,), E.DATA_IMMEDIATE | E.SECURITY,
     passphrase_secure_erase, (Param("passphrase", "choice", choices=_PASS),)),
    # Not in cxl_disabled_raw_commands[]: RAW reaches it.  EDAC drives repair itself
    # (drivers/cxl/core/edac.c cxl_do_maintenance()) after checking the memory is offline
    # or the DPA is in an event record.  Effects as a PPR/sparing entry would declare them.
    ("DO_MAINTENANCE", mb.DO_MAINTENANCE, (RAW,), E.CONFIG_IMMEDIATE | E.DATA_IMMEDIATE, do_maintenance,
     (Param("op_class", "int", 0, 3, doc="1 PPR, 2 memory sparing"), Param("op_subclass", "int", 0, 3), _DPA)),
    # Dynamic Capacity (0x48xx): 7.3.4 has no DCD code (no cxl_is_dcd_command(), no opcode in enum
    # cxl_opcode, none in cxl_disabled_raw_commands[] nor security_command_sets[]), so RAW passes them
    # like any unknown opcode, with the WARN.  Effects as QEMU's cxl_cmd_set_dcd[] declares them.
    ("GET_DC_CONFIG", mb.GET_DC_CONFIG, (RAW,), E.NONE, no_dynamic_capacity, ()),
    ("GET_DC_EXTENT_LIST", mb.GET_DC_EXTENT_LIST, (RAW,), E.NONE, no_dynamic_capacity, ()),
    ("ADD_DC_RESPONSE", mb.ADD_DC_RESPONSE, (RAW,), E.DATA_IMMEDIATE, no_dynamic_capacity, ()),
    ("RELEASE_DC", mb.RELEASE_DC, (RAW,), E.DATA_IMMEDIATE, no_dynamic_capacity, ()),
)
#: the Dynamic Capacity commands, which no variant's CEL lists
DCD_OPS = frozenset({"GET_DC_CONFIG", "GET_DC_EXTENT_LIST", "ADD_DC_RESPONSE", "RELEASE_DC"})

U: Final = "uuid"
V = None  # CXL_VARIABLE_PAYLOAD
#: Payload layouts: (slots, size_in, size_out).  Sizes are the kernel's cxl_mem_commands[]
#: (drivers/cxl/core/mbox.c) where the command is in it, else the spec's struct
#: (drivers/cxl/cxlmem.h, include/cxl/features.h).  Slot names are argument names.
LAYOUTS: dict[str, Layout] = {
    "IDENTIFY": Layout(size=0, out=0x43),
    "GET_SUPPORTED_LOGS": Layout(size=0, out=V),
    "GET_LOG": Layout((Slot("log", 0, 16, U), Slot("offset", 16, 4), Slot("length", 20, 4)), size=0x18, out=V),
    "GET_LOG_CAPS": Layout((Slot("log", 0, 16, U),), size=0x10, out=0x4),
    "CLEAR_LOG": Layout((Slot("log", 0, 16, U),), size=0x10, out=0),
    "GET_SUP_LOG_SUBLIST": Layout((Slot("max_entries", 0, 1), Slot("start", 1, 1)), size=0x2, out=V),
    "GET_FW_INFO": Layout(size=0, out=0x50),
    "TRANSFER_FW": Layout((Slot("slot", 1, 1), Slot("revision", 0x80, 2, "text")), size=V, min=0x80, out=0),
    "ACTIVATE_FW": Layout((Slot("online", 0, 1), Slot("slot", 1, 1)), size=2, out=0),
    "GET_TIMESTAMP": Layout(size=0, out=0x8),
    "SET_TIMESTAMP": Layout((Slot("timestamp", 0, 8),), size=8, out=0),
    "GET_EVENT_RECORD": Layout((Slot("log", 0, 1),), size=1, out=V),
    "CLEAR_EVENT_RECORD": Layout((Slot("log", 0, 1), Slot("handle", 6, 2)), size=V, min=6, out=0),
    "GET_EVT_INT_POLICY": Layout(size=0, out=4),
    "SET_EVT_INT_POLICY": Layout(size=4, out=0),
    "GET_SUPPORTED_FEATURES": Layout(size=8, out=V),
    "GET_FEATURE": Layout((Slot("uuid", 0, 16, U), Slot("count", 18, 2)), size=0x15, out=V),
    "SET_FEATURE": Layout((Slot("uuid", 0, 16, U), Slot("value", 0x20, 4)), size=V, min=0x20, out=0),
    "GET_PARTITION_INFO": Layout(size=0, out=0x20),
    "SET_PARTITION_INFO": Layout((Slot("volatile", 0, 8), Slot("immediate", 8, 1)), size=0x0A, out=0),
    "GET_LSA": Layout((Slot("offset", 0, 4), Slot("length", 4, 4)), size=0x8, out=V),
    "SET_LSA": Layout((Slot("offset", 0, 4), Slot("data", 8, "length", "fill", source="byte")),
                      size=V, min=8, out=0),
    "GET_HEALTH_INFO": Layout(size=0, out=0x12),
    "GET_ALERT_CONFIG": Layout(size=0, out=0x10),
    "SET_ALERT_CONFIG": Layout((Slot("life_used_threshold", 2, 1), Slot("temperature_threshold", 4, 2)),
                               size=0xC, out=0),
    "GET_SHUTDOWN_STATE": Layout(size=0, out=0x1),
    "SET_SHUTDOWN_STATE": Layout((Slot("state", 0, 1),), size=0x1, out=0),
    "GET_POISON": Layout(size=0x10, out=V),
    "INJECT_POISON": Layout((Slot("dpa", 0, 8),), size=0x8, out=0),
    "CLEAR_POISON": Layout((Slot("dpa", 0, 8),), size=0x48, out=0),
    "GET_SCAN_MEDIA_CAPS": Layout(size=0x10, out=0x4),
    "SCAN_MEDIA": Layout(size=0x11, out=0),
    "GET_SCAN_MEDIA": Layout(size=0, out=V),
    "SANITIZE": Layout(size=0, out=0),
    "SECURE_ERASE": Layout(size=0, out=0),
    "GET_SECURITY_STATE": Layout(size=0, out=0x4),
    "SET_PASSPHRASE": Layout((Slot("old", 0x20, 32, "text"), Slot("new", 0x40, 32, "text")), size=0x60, out=0),
    "DISABLE_PASSPHRASE": Layout((Slot("passphrase", 0x20, 32, "text"),), size=0x40, out=0),
    "UNLOCK": Layout((Slot("passphrase", 0, 32, "text"),), size=0x20, out=0),
    "FREEZE_SECURITY": Layout(size=0, out=0),
    "PASSPHRASE_SECURE_ERASE": Layout((Slot("passphrase", 0x20, 32, "text"),), size=0x40, out=0),
    "DO_MAINTENANCE": Layout((Slot("op_class", 0, 1), Slot("op_subclass", 1, 1), Slot("dpa", 0x10, 8)),
                             size=V, min=0x10, out=0),
    # CXL r3.1 8.2.9.9.9: region count and start index; extent count and start index; the extent
    # count, flags and reserved bytes before a response's or a release's extent list
    "GET_DC_CONFIG": Layout(size=2, out=V),
    "GET_DC_EXTENT_LIST": Layout(size=8, out=V),
    "ADD_DC_RESPONSE": Layout(size=V, min=8, out=0),
    "RELEASE_DC": Layout(size=V, min=8, out=0),
    "ACME_RAS_RESTORE": Layout(size=0, out=0),
    "ACME_GET_DIAG": Layout(size=0, out=0x4),
}


COMMANDS = tuple(
    Command(op, opcode, channels, fn, effects=eff, params=params, layout=LAYOUTS[op])
    for op, opcode, channels, eff, fn, params in _TABLE
)

VENDOR_COMMANDS = (
    Command("ACME_RAS_RESTORE", 0xC000, (RAW,), acme_ras_restore, effects=E.NONE,
            doc="vendor opcode whose CEL entry declares no effect but rewrites scrub and ECS",
            layout=LAYOUTS["ACME_RAS_RESTORE"]),
    Command("ACME_GET_DIAG", 0xC001, (RAW,), acme_get_diag, effects=E.NONE,
            doc="honest vendor read-only diagnostic", layout=LAYOUTS["ACME_GET_DIAG"]),
)

# CEL effects for payload-dependent commands (one value per opcode in a CEL).
_STATIC_CEL = {
    "SET_FEATURE": int(E.CONFIG_IMMEDIATE | E.DATA_IMMEDIATE | E.POLICY_IMMEDIATE | E.LOG_IMMEDIATE | E.SECURITY),
    "SET_PARTITION_INFO": int(E.CONFIG_IMMEDIATE | E.CONFIG_COLD_RESET),
}


def build_cel(commands: tuple[Command, ...]) -> tuple[tuple[int, int], ...]:
    """The Command Effects Log, built from the handler table as QEMU's cxl_rebuild_cel() does."""
    return tuple(
        (c.opcode, _STATIC_CEL[c.op] if callable(c.effects) and not isinstance(c.effects, int) else int(c.effects))
        for c in sorted(commands, key=lambda c: c.opcode) if c.op not in DCD_OPS
    )


SPEC_FEATURES = {f.uuid: f for f in (PATROL_SCRUB, ECS, TEST_FEATURE)}
VENDOR_FEATURES = {**SPEC_FEATURES, **{f.uuid: f for f in (ACME_PERF, ACME_THERMAL)}}

SPEC = DeviceVariant(
    "spec",
    state=initial_state,
    info={"features": SPEC_FEATURES, "cel": build_cel(COMMANDS), "payload_size": mb.PAYLOAD_SIZE},
    doc="a type-3 device that declares its effects truthfully (QEMU-like)",
)
VENDOR = DeviceVariant(
    "vendor",
    state=initial_state,
    commands=VENDOR_COMMANDS,
    info={"features": VENDOR_FEATURES, "cel": build_cel(COMMANDS + VENDOR_COMMANDS),
          "payload_size": mb.PAYLOAD_SIZE, "clears_cel": True},
    doc="adds ACME vendor opcodes and features; two of them declare less than they change; "
        "Clear Log empties its CEL",
)


def _all_ram_state() -> dict[str, Any]:
    state = initial_state()
    state["partition.active_volatile"] = state["partition.next_volatile"] = mb.TOTAL_UNITS
    return state


ALL_RAM = DeviceVariant(
    "all-ram",
    state=_all_ram_state,
    info={"features": SPEC_FEATURES, "cel": build_cel(COMMANDS), "persistent_only": 0,
          "payload_size": mb.PAYLOAD_SIZE},
    doc="spec device shipped with all capacity volatile (no persistent-only capacity): "
        "persistent memory needs a partition change and a cold reset",
)


def complete_background(dev: Device) -> int:
    """Finish the running background operation (QEMU's bg_timercb); returns its opcode."""
    hook = dev.info.get("complete_background")
    if hook is not None:
        return int(hook(dev))
    st = dev.state
    op = st["bg.opcode"]
    if op == mb.TRANSFER_FW and st["fw.transfer"]:
        slot, rev = st["fw.transfer"]
        slots = list(st["fw.slots"])
        slots[slot - 1] = rev
        st["fw.slots"] = tuple(slots)
        st["fw.transfer"] = ()
    elif op in (mb.SANITIZE, mb.SECURE_ERASE):
        st["media.enabled"] = True
    elif op == mb.SCAN_MEDIA:
        st["scan.results"] = tuple(sorted(st["poison"]))
    st["bg.opcode"] = 0
    return int(op)


def cold_reset(dev: Device) -> None:
    """The device's half of a power cycle: next partitions and staged FW go live, the CEL is rebuilt."""
    hook = dev.info.get("cold_reset")
    if hook is not None:
        hook(dev)
        return
    st = dev.state
    st["partition.active_volatile"] = st["partition.next_volatile"]
    if st["fw.staged_slot"]:
        st["fw.active_slot"], st["fw.staged_slot"] = st["fw.staged_slot"], 0
    st["fw.transfer"] = ()
    st["bg.opcode"] = 0
    st["media.enabled"] = True
    st["log.cel"] = True  # the firmware builds its CEL at reset
    sec = st["security.state"] & ~mb.SEC_FROZEN
    st["security.state"] = sec | mb.SEC_LOCKED if sec & mb.SEC_USER_PASS_SET else sec


#: records a spec device's event log holds before it overflows
EVENT_LOG_DEPTH = 4


def log_event(dev: Device, log: int) -> Reply:
    """The device logs a General Media event in ``log``: the next handle, unless the log is full."""
    hook = dev.info.get("log_event")
    if hook is not None:
        reply: Reply = hook(dev, log)
        return reply
    st = dev.state
    in_log = [h for lg, h in st["event.records"] if lg == log]
    if len(in_log) >= EVENT_LOG_DEPTH:
        return Reply(errno=errno.ENOSPC, why="event log full (overflow)")
    st["event.records"] = st["event.records"] + ((log, max(in_log, default=0) + 1),)
    return Reply()
