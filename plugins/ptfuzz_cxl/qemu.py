"""The ``qemu`` device: QEMU 10.0.2's emulated CXL type-3 device, as a live kernel meets it.

The live target runs a Linux kernel under QEMU 10.0.2 with one
``-device cxl-type3,...,memdev=...,lsa=...`` (256 MiB of persistent memory, a
1 MiB LSA, no volatile memory, no dynamic capacity).  This variant answers what
that device answers, so a disagreement between the model and a live run is the
kernel's (or the kernel model's), not the emulator's.  Sources, QEMU 10.0.2
(Debian's ``qemu_10.0.2+ds.orig.tar.xz``, the upstream tree; the Debian patch
series of ``1:10.0.2+ds-2+deb13u1~bpo12+1`` could not be fetched and is unread):

* ``hw/cxl/cxl-mailbox-utils.c``: ``cxl_cmd_set[][]`` (the commands, their
  input lengths and the CEL effects; ``cxl_rebuild_cel()`` builds the CEL from
  it, ``cxl_initialize_mailbox_t3()`` installs it), ``cxl_process_cci_message()``
  (no handler: UNSUPPORTED; then the exact input length; then one background
  command at a time; then the commands refused while the media is disabled),
  ``bg_timercb()`` with ``__do_firmware_xfer()``, ``__do_sanitization()`` and
  ``__do_scan_media()``, ``cxl_init_cci()``, and one ``cmd_*()`` per command
  (named in each handler below);
* ``hw/cxl/cxl-events.c``: ``cxl_event_insert()``, ``cxl_event_get_records()``,
  ``cxl_event_clear_records()``;
* ``hw/cxl/cxl-device-utils.c``: ``cxl_device_register_init_t3()`` (the payload
  is 2048 bytes; a reset re-runs ``cxl_init_cci()`` and marks the media ready);
* ``hw/mem/cxl_type3.c``: ``ct3_realize()`` (patrol scrub and ECS defaults),
  ``ct3d_reset()``, ``get_lsa_size()``/``get_lsa()``/``set_lsa()``;
* ``include/hw/cxl/cxl_device.h``: the feature attribute structs.

The commands QEMU lacks stay in the table (the kernel's ioctl table and the
fuzzer still name them) but answer UNSUPPORTED and are absent from the CEL, so
the kernel's ``enabled_cmds`` lacks them and the ioctl path answers ``-ENOTTY``.

Simplifications, once.  The bytes a request carries are those of the C
exporter (``export_c.ENCODERS``, the kernel's structs): at a step's natural
input size the device receives exactly that struct (so Set Feature carries
2 bytes of patrol scrub data, 7 of ECS data, version 1, a FULL transfer);
at any other size it receives the struct cut or zero-padded to that size,
as the exported program sends it.  A request without a size comes from the
kernel's own code, which sends its structs whole and writes back what it read
into fields it does not mean to change (``cxl_scrub_set_attrbs()`` keeps the
scrub flags; the ECS log capability is kept).  EDAC's ECS threshold is one
value for all three media FRUs.  Event records are (log, handle) pairs; poison
entries are 64-byte lines at ``dpa * 64``; Clear Poison's 64 bytes of write
data and the memory contents are not modelled; the timestamp does not advance.
An input size above the payload (reachable only when no policy checks it) is
taken as it is, not cut to the 21-bit LENGTH field of the command register.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import attrs

from fuzzer import Args, Command, Device, DeviceVariant, Effect, Param, Reply

from . import device as dv
from . import mailbox as mb
from .export_c import ENCODERS

E = Effect
Handler = Callable[[Device, Args], Reply]

#: the memory backend of the live target: 256 MiB of persistent memory, nothing volatile
TOTAL_UNITS = 1
#: the LSA backend's size (get_lsa_size(): the memory region's size)
LSA_SIZE = 1 << 20
#: CXL_MAILBOX_MAX_PAYLOAD_SIZE (cci->payload_max)
PAYLOAD_MAX = 2048
#: sizeof(cci->cel_log): Get Log's offset + length must stay below it (not below the CEL's size)
CEL_LOG_BYTES = 4 * (1 << 16)
#: CXL_TEST_EVENT_OVERFLOW: records a log holds before cxl_event_insert() counts an overflow
EVENT_LOG_DEPTH = 8
#: CXL_EVENT_TYPE_MAX: informational, warning, failure, fatal, dynamic capacity
EVENT_LOGS = 5
#: CXL_POISON_LIST_LIMIT
POISON_LIST_LIMIT = 256
RC_INVALID_PA = 0x0F
RC_INJECT_POISON_LIMIT = 0x10
SET_FEAT_HDR = 32  # CXLSetFeatureInHeader
TRANSFER_FW_HDR = 0x80  # Transfer FW's header before the data

BG = E.BACKGROUND
SET_FEATURE_CEL = E.CONFIG_IMMEDIATE | E.DATA_IMMEDIATE | E.POLICY_IMMEDIATE | E.LOG_IMMEDIATE | E.SECURITY

#: cxl_cmd_set[][] (hw/cxl/cxl-mailbox-utils.c lines 2717-2778), in its order:
#: (op, opcode, input length: exact, or None for ~0 (the handler checks), CEL effects)
CXL_CMD_SET: tuple[tuple[str, int, int | None, int], ...] = (
    ("GET_EVENT_RECORD", mb.GET_EVENT_RECORD, 1, E.NONE),
    ("CLEAR_EVENT_RECORD", mb.CLEAR_EVENT_RECORD, None, E.LOG_IMMEDIATE),
    ("GET_EVT_INT_POLICY", mb.GET_EVT_INT_POLICY, 0, E.NONE),
    ("SET_EVT_INT_POLICY", mb.SET_EVT_INT_POLICY, None, E.CONFIG_IMMEDIATE),
    ("GET_FW_INFO", mb.GET_FW_INFO, 0, E.NONE),
    ("TRANSFER_FW", mb.TRANSFER_FW, None, BG),
    ("ACTIVATE_FW", mb.ACTIVATE_FW, 2, BG),
    ("GET_TIMESTAMP", mb.GET_TIMESTAMP, 0, E.NONE),
    ("SET_TIMESTAMP", mb.SET_TIMESTAMP, 8, E.POLICY_IMMEDIATE),
    ("GET_SUPPORTED_LOGS", mb.GET_SUPPORTED_LOGS, 0, E.NONE),
    ("GET_LOG", mb.GET_LOG, 0x18, E.NONE),
    ("GET_SUPPORTED_FEATURES", mb.GET_SUPPORTED_FEATURES, 0x8, E.NONE),
    ("GET_FEATURE", mb.GET_FEATURE, 0x15, E.NONE),
    ("SET_FEATURE", mb.SET_FEATURE, None, SET_FEATURE_CEL),
    ("IDENTIFY", mb.IDENTIFY, 0, E.NONE),
    ("GET_PARTITION_INFO", mb.GET_PARTITION_INFO, 0, E.NONE),
    ("GET_LSA", mb.GET_LSA, 8, E.NONE),
    ("SET_LSA", mb.SET_LSA, None, E.CONFIG_IMMEDIATE | E.DATA_IMMEDIATE),
    ("SANITIZE", mb.SANITIZE, 0, E.DATA_IMMEDIATE | E.SECURITY | BG),
    ("GET_SECURITY_STATE", mb.GET_SECURITY_STATE, 0, E.NONE),
    ("GET_POISON", mb.GET_POISON, 16, E.NONE),
    ("INJECT_POISON", mb.INJECT_POISON, 8, E.NONE),
    ("CLEAR_POISON", mb.CLEAR_POISON, 72, E.NONE),
    ("GET_SCAN_MEDIA_CAPS", mb.GET_SCAN_MEDIA_CAPS, 16, E.NONE),
    ("SCAN_MEDIA", mb.SCAN_MEDIA, 17, BG),
    ("GET_SCAN_MEDIA", mb.GET_SCAN_MEDIA, 0, E.NONE),
)
CEL_EFFECTS = {op: int(eff) for op, _, _, eff in CXL_CMD_SET}
#: what cxl_process_cci_message() compares the input length with
PAYLOAD_IN = {op: length for op, _, length, _ in CXL_CMD_SET}
#: cxl_rebuild_cel(): every command with a handler, set by set, command by command
CEL = tuple(sorted((opcode, int(eff)) for _, opcode, _, eff in CXL_CMD_SET))
#: the handlers cxl_process_cci_message() refuses with MEDIA_DISABLED while the media is disabled
MEDIA_GATED = frozenset({
    "GET_EVENT_RECORD", "GET_PARTITION_INFO", "SET_LSA", "GET_LSA", "GET_LOG", "GET_POISON",
    "INJECT_POISON", "CLEAR_POISON", "SANITIZE", "TRANSFER_FW", "ACTIVATE_FW",
})


def _ok(data: bytes = b"", **out: Any) -> Reply:
    return Reply(rc=mb.RC_SUCCESS, out=out, data=data)


def _rc(rc: int, why: str) -> Reply:
    return Reply(rc=rc, why=why)


def _request(op: str, args: Args) -> tuple[int, bytes]:
    """The input length the device sees and the bytes it can read (zeros past them)."""
    data = ENCODERS[op][1](dict(args))
    size = args.get("in_size", args.get("op_size"))
    if size is None or size == dv.LAYOUTS[op].natural(args):
        return len(data), data
    return int(size), data[:size]


def _from_kernel(args: Args) -> bool:
    """A request the kernel's own code sent (``world.mailbox``): user requests carry their sizes."""
    return "in_size" not in args and "op_size" not in args


# ----------------------------------------------------------------------------- features


@attrs.frozen
class Feature:
    """One Get Supported Features entry of cmd_features_get_supported() and the data behind it."""

    uuid: str
    name: str
    get_size: int
    set_size: int
    #: CXL_FEAT_ENTRY_ATTR_FLAG_CHANGABLE
    changeable: bool
    #: set_feat_effects, CEL-valid bit included
    set_effects: int
    read: Callable[[Mapping[str, Any]], bytes]


def _scrub_read(st: Mapping[str, Any]) -> bytes:
    """CXLMemPatrolScrubReadAttrs: scrub_cycle_cap (change | realtime report), scrub_cycle (min 1 << 8), flags."""
    cycle = (st["scrub.cycle_hours"] & 0xFF) | (1 << 8)
    return bytes([0x3]) + cycle.to_bytes(2, "little") + bytes([int(st["scrub.enabled"])])


def _ecs_read(st: Mapping[str, Any]) -> bytes:
    """CXLMemECSReadAttrs: ecs_log_cap, then per FRU ecs_cap (realtime report), ecs_config, ecs_flags."""
    log_cap, *configs = st["ecs.threshold"]
    return bytes([log_cap]) + b"".join(bytes([1]) + c.to_bytes(2, "little") + b"\0" for c in configs)


_EFFECTS = int(E.CONFIG_IMMEDIATE) | mb.EFFECTS_VALID
#: CXL_FEATURE_PATROL_SCRUB, CXL_FEATURE_ECS; sizes are sizeof() of the read and write attribute structs
FEATURES = {f.uuid: f for f in (
    Feature(mb.PATROL_SCRUB_UUID, "patrol-scrub", 4, 2, True, _EFFECTS, _scrub_read),
    Feature(mb.ECS_UUID, "ecs", 13, 7, True, _EFFECTS, _ecs_read),
)}
SUPPORTED_FEATURE_ENTRY = 48  # CXLSupportedFeatureEntry


def set_feature_effects(args: Args, dev: Device) -> int:
    feat = FEATURES.get(args["uuid"])
    return (feat.set_effects & ~mb.EFFECTS_VALID) if feat else 0


def get_supported_features(dev: Device, args: Args) -> Reply:
    """cmd_features_get_supported(): the request asks for 2048 bytes from index 0, so both entries."""
    feats = tuple(FEATURES.values())
    return _ok(bytes(8 + SUPPORTED_FEATURE_ENTRY * len(feats)),
               features=tuple((f.uuid, f.changeable, f.set_effects) for f in feats))


def get_feature(dev: Device, args: Args) -> Reply:
    """cmd_features_get_feature(): offset + count within the payload first, then the UUID."""
    feat = FEATURES.get(args["uuid"])
    count = int(args.get("count", feat.get_size if feat else 0))
    if count > PAYLOAD_MAX:  # offset 0
        return _rc(mb.RC_INPUT, "offset + count above the payload")
    if feat is None:
        return _rc(mb.RC_UNSUPPORTED, "not patrol scrub nor ECS")
    data = feat.read(dev.state)[:count]
    return _ok(data)


def set_feature(dev: Device, args: Args) -> Reply:
    """cmd_features_set_feature(): a FULL transfer of at most the feature's write attributes."""
    n, data = _request("SET_FEATURE", args)
    if n < SET_FEAT_HDR:
        return _rc(mb.RC_PAYLOADLEN, "shorter than the Set Feature header")
    size = n - SET_FEAT_HDR
    if size == 0:
        return _rc(mb.RC_PAYLOADLEN, "no feature data")
    feat = FEATURES.get(args["uuid"])
    if feat is None:
        return _rc(mb.RC_UNSUPPORTED, "not patrol scrub nor ECS")
    if size > feat.set_size:  # offset 0
        return _rc(mb.RC_PAYLOADLEN, f"{size} bytes of data for {feat.set_size}-byte attributes")
    wr = data[SET_FEAT_HDR:SET_FEAT_HDR + size].ljust(feat.set_size, b"\0")  # the rest: zeroed after the last
    st, kernel = dev.state, _from_kernel(args)
    if feat.uuid == mb.PATROL_SCRUB_UUID:
        st["scrub.cycle_hours"] = wr[0]  # no minimum: the kernel checks the 1-hour minimum itself
        st["scrub.enabled"] = st["scrub.enabled"] if kernel else bool(wr[1] & 1)
    else:
        log_cap = st["ecs.threshold"][0] if kernel else wr[0]
        st["ecs.threshold"] = (log_cap, *(int.from_bytes(wr[1 + 2 * i: 3 + 2 * i], "little") & 0x1F
                                          for i in range(3)))
    return _ok()


# ----------------------------------------------------------------------------- handlers


def identify(dev: Device, args: Args) -> Reply:
    """cmd_identify_memory_device(): capacities in 256 MiB units, the LSA size; 0x45 bytes."""
    return _ok(bytes(0x45), total_units=TOTAL_UNITS, volatile_only=0, persistent_only=TOTAL_UNITS,
               lsa_size=LSA_SIZE)


def get_supported_logs(dev: Device, args: Args) -> Reply:
    """cmd_logs_get_supported(): the CEL is the one log."""
    return _ok(bytes(0x1C), logs=((mb.CEL_UUID, dv.CEL_ENTRY * len(CEL)),))


def get_log(dev: Device, args: Args) -> Reply:
    """cmd_logs_get_log(): length against the payload, then the UUID, then the CEL array (not the CEL)."""
    offset, length = int(args.get("offset", 0)), int(args.get("length", 0))
    if length > PAYLOAD_MAX:
        return _rc(mb.RC_INPUT, "length above the payload")
    if args["log"] != mb.CEL_UUID:
        return _rc(mb.RC_LOG, "the CEL is the only log")
    if offset + length >= CEL_LOG_BYTES:
        return _rc(mb.RC_INPUT, "offset + length past cci->cel_log")
    return _ok(bytes(length), cel=CEL)


def get_event_record(dev: Device, args: Args) -> Reply:
    """cmd_events_get_records(), cxl_event_get_records(): up to 15 records of 128 bytes."""
    log = args["log"]
    if log >= EVENT_LOGS:
        return _rc(mb.RC_INPUT, "no such event log")
    records = tuple(r for r in dev.state["event.records"] if r[0] == log)[:15]
    return _ok(bytes(0x20 + 0x80 * len(records)), records=records)


def clear_event_record(dev: Device, args: Args) -> Reply:
    """cmd_events_clear_records(), cxl_event_clear_records(): the handles must be the oldest, in order."""
    n, data = _request("CLEAR_EVENT_RECORD", args)
    nr_recs = data[2] if len(data) > 2 else 0
    if n < 6 or n < 6 + 2 * nr_recs:
        return _rc(mb.RC_PAYLOADLEN, "shorter than its nr_recs handles")
    log = args["log"]
    if log >= EVENT_LOGS:
        return _rc(mb.RC_INPUT, "no such event log")
    st = dev.state
    in_log = [r for r in st["event.records"] if r[0] == log]
    if not in_log or not nr_recs:
        return _ok()  # nothing to compare: nothing cleared
    handle = args["handle"]
    if handle == 0 or in_log[0][1] != handle:
        return _rc(mb.RC_INPUT, "not the oldest record's handle")
    st["event.records"] = tuple(r for r in st["event.records"] if r != in_log[0])
    return _ok()


def get_evt_int_policy(dev: Device, args: Args) -> Reply:
    """cmd_events_get_interrupt_policy(): 5 bytes, MSI/MSI-X where the log's interrupt is enabled."""
    return _ok(bytes(5), policy=dev.state["event.int_policy"])


def set_evt_int_policy(dev: Device, args: Args) -> Reply:
    """cmd_events_set_interrupt_policy(): at least 4 bytes; a log's interrupt is on iff its mode is MSI/MSI-X.

    The request carries all four settings (the kernel's struct): the others ask for MSI/MSI-X.
    """
    n, data = _request("SET_EVT_INT_POLICY", args)
    if n < 4:
        return _rc(mb.RC_PAYLOADLEN, "shorter than CXL_EVENT_INT_SETTING_MIN_LEN")
    dev.state["event.int_policy"] = tuple(int(b & 0x3 == 1) for b in data[:4].ljust(4, b"\0"))
    return _ok()


def transfer_fw(dev: Device, args: Args) -> Reply:
    """cmd_firmware_update_transfer(): a FULL transfer to a slot that is neither 0, active nor past 2."""
    n, _ = _request("TRANSFER_FW", args)
    if n < TRANSFER_FW_HDR:
        return _rc(mb.RC_PAYLOADLEN, "shorter than the Transfer FW header")
    st, slot = dev.state, args["slot"]
    if slot == 0 or slot == st["fw.active_slot"] or slot > mb.FW_SLOTS:
        return _rc(mb.RC_FWSLOT, "slot 0, the active slot, or past the 2 slots")
    st["fw.transfer"] = (slot, args["revision"])
    st["bg.opcode"] = mb.TRANSFER_FW
    return Reply(rc=mb.RC_BACKGROUND)


def activate_fw(dev: Device, args: Args) -> Reply:
    """cmd_firmware_update_activate(): a slot other than the active one, holding a package."""
    st, slot = dev.state, args["slot"]
    if slot == 0 or slot == st["fw.active_slot"] or slot > mb.FW_SLOTS:
        return _rc(mb.RC_FWSLOT, "slot 0, the active slot, or past the 2 slots")
    if not st["fw.slots"][slot - 1]:
        return _rc(mb.RC_FWSLOT, "no firmware package in the slot")
    if args["online"]:
        st["fw.active_slot"] = slot
    else:
        st["fw.staged_slot"] = slot
    return _ok()


def get_fw_info(dev: Device, args: Args) -> Reply:
    """cmd_firmware_update_get_info(): 0x50 bytes."""
    return attrs.evolve(dv.get_fw_info(dev, args), data=bytes(0x50))


def get_timestamp(dev: Device, args: Args) -> Reply:
    """cmd_timestamp_get()."""
    return attrs.evolve(dv.get_timestamp(dev, args), data=bytes(8))


def get_partition_info(dev: Device, args: Args) -> Reply:
    """cmd_ccls_get_partition_info(): the static capacities, no pending change."""
    st = dev.state
    return _ok(bytes(0x20), active_volatile=st["partition.active_volatile"],
               next_volatile=st["partition.next_volatile"])


def _lsa_read(lsa: tuple[tuple[int, int], ...], offset: int, length: int) -> bytes:
    out = bytearray(length)
    for at, byte in lsa:
        if offset <= at < offset + length:
            out[at - offset] = byte
    return bytes(out)


def _lsa_write(lsa: tuple[tuple[int, int], ...], offset: int, length: int, data: bytes) -> tuple[tuple[int, int], ...]:
    """``length`` bytes at ``offset``: ``data``, then zeros (the LSA as its non-zero bytes, in order)."""
    kept = {at: b for at, b in lsa if not offset <= at < offset + length}
    kept.update({offset + i: b for i, b in enumerate(data[:length]) if b})
    return tuple(sorted(kept.items()))


def get_lsa(dev: Device, args: Args) -> Reply:
    """cmd_ccls_get_lsa(): offset + length within the LSA."""
    offset, length = args["offset"], args["length"]
    if offset + length > LSA_SIZE:
        return _rc(mb.RC_INPUT, "offset + length past the LSA")
    return _ok(_lsa_read(dev.state["lsa"], offset, length))


def set_lsa(dev: Device, args: Args) -> Reply:
    """cmd_ccls_set_lsa(): an 8-byte header, then every byte of the payload goes to the LSA."""
    n, data = _request("SET_LSA", args)
    if n < 8:
        return _rc(mb.RC_PAYLOADLEN, "shorter than the Set LSA header")
    offset = args["offset"]
    if offset + n > LSA_SIZE + 8:
        return _rc(mb.RC_INPUT, "offset + data past the LSA")
    dev.state["lsa"] = _lsa_write(dev.state["lsa"], offset, n - 8, data[8:])
    return _ok()


def sanitize(dev: Device, args: Args) -> Reply:
    """cmd_sanitize_overwrite(): no security check; the media is disabled until it completes."""
    st = dev.state
    st["bg.opcode"] = mb.SANITIZE
    st["media.enabled"] = False
    st["media.generation"] = st["media.generation"] + 1
    return Reply(rc=mb.RC_BACKGROUND)


def get_security_state(dev: Device, args: Args) -> Reply:
    """cmd_get_security_state(): always 0."""
    return _ok(bytes(4), state=0)


def _scan_running(dev: Device) -> bool:
    return bool(dev.state["bg.opcode"] == mb.SCAN_MEDIA)


def get_poison(dev: Device, args: Args) -> Reply:
    """cmd_media_get_poison_list(): every entry the query (the whole device) overlaps."""
    dpas = tuple(sorted(dev.state["poison"]))
    return _ok(bytes(0x20 + 0x10 * len(dpas)), dpas=dpas)


def inject_poison(dev: Device, args: Args) -> Reply:
    """cmd_media_inject_poison(): already poisoned or a scan running: success, nothing added."""
    st, dpa = dev.state, args["dpa"]
    if dpa in st["poison"] or _scan_running(dev):
        return _ok()
    if len(st["poison"]) >= POISON_LIST_LIMIT:
        return _rc(RC_INJECT_POISON_LIMIT, "poison list full")
    st["poison"] = st["poison"] | {dpa}
    return _ok()


def clear_poison(dev: Device, args: Args) -> Reply:
    """cmd_media_clear_poison(): within the device, else INVALID_PA; a scan running freezes the list."""
    st, dpa = dev.state, args["dpa"]
    if (dpa + 1) * 64 > TOTAL_UNITS * mb.CAPACITY_MULTIPLIER:
        return _rc(RC_INVALID_PA, "past the device's capacity")
    if not _scan_running(dev):
        st["poison"] = st["poison"] - {dpa}
    return _ok()


def get_scan_media_caps(dev: Device, args: Args) -> Reply:
    """cmd_media_get_scan_media_capabilities(): one 64-byte line from 0, at least 1 ms."""
    return _ok(bytes(4), estimated_runtime_ms=1)


def scan_media(dev: Device, args: Args) -> Reply:
    """cmd_media_scan_media(): drops earlier results; new ones come from the overflow list, which stays empty."""
    st = dev.state
    st["scan.results"] = (st["scan.results"][0], ())
    st["bg.opcode"] = mb.SCAN_MEDIA
    return Reply(rc=mb.RC_BACKGROUND)


def get_scan_media(dev: Device, args: Args) -> Reply:
    """cmd_media_get_scan_media_results(): UNSUPPORTED until a scan has run; results are consumed."""
    st = dev.state
    ran, results = st["scan.results"]
    if not ran:
        return _rc(mb.RC_UNSUPPORTED, "no Scan Media has completed")
    st["scan.results"] = (True, ())
    return _ok(bytes(0x20 + 0x10 * len(results)), results=results)


def unsupported(dev: Device, args: Args) -> Reply:
    """cxl_process_cci_message(): no handler in cxl_cmd_set[][]."""
    return _rc(mb.RC_UNSUPPORTED, "not in QEMU 10.0.2's cxl_cmd_set[]")


HANDLERS: dict[str, Handler] = {
    "GET_EVENT_RECORD": get_event_record,
    "CLEAR_EVENT_RECORD": clear_event_record,
    "GET_EVT_INT_POLICY": get_evt_int_policy,
    "SET_EVT_INT_POLICY": set_evt_int_policy,
    "GET_FW_INFO": get_fw_info,
    "TRANSFER_FW": transfer_fw,
    "ACTIVATE_FW": activate_fw,
    "GET_TIMESTAMP": get_timestamp,
    "SET_TIMESTAMP": dv.set_timestamp,
    "GET_SUPPORTED_LOGS": get_supported_logs,
    "GET_LOG": get_log,
    "GET_SUPPORTED_FEATURES": get_supported_features,
    "GET_FEATURE": get_feature,
    "SET_FEATURE": set_feature,
    "IDENTIFY": identify,
    "GET_PARTITION_INFO": get_partition_info,
    "GET_LSA": get_lsa,
    "SET_LSA": set_lsa,
    "SANITIZE": sanitize,
    "GET_SECURITY_STATE": get_security_state,
    "GET_POISON": get_poison,
    "INJECT_POISON": inject_poison,
    "CLEAR_POISON": clear_poison,
    "GET_SCAN_MEDIA_CAPS": get_scan_media_caps,
    "SCAN_MEDIA": scan_media,
    "GET_SCAN_MEDIA": get_scan_media,
}


def _cci(op: str, fn: Handler) -> Handler:
    """cxl_process_cci_message() after its length check: one background command, then media disabled."""
    background = bool(CEL_EFFECTS[op] & BG)
    gated = op in MEDIA_GATED

    def handler(dev: Device, args: Args) -> Reply:
        st = dev.state
        if background and st["bg.opcode"]:
            return _rc(mb.RC_BUSY, "a background command is running")
        if gated and not st["media.enabled"]:
            return _rc(mb.RC_MEDIADISABLED, "media disabled until the sanitize completes")
        return fn(dev, args)

    handler.__name__ = fn.__name__
    return handler


# ----------------------------------------------------------------------------- what the device does on its own


def complete_background(dev: Device) -> int:
    """bg_timercb(): __do_firmware_xfer() marks the slot, __do_sanitization() zeroes the memory and the
    LSA and discards every event record, __do_scan_media() records that a scan has run."""
    st = dev.state
    op = st["bg.opcode"]
    if op == mb.TRANSFER_FW and st["fw.transfer"]:
        slot, rev = st["fw.transfer"]
        st["fw.slots"] = tuple(rev if i == slot - 1 else s for i, s in enumerate(st["fw.slots"]))
        st["fw.transfer"] = ()
    elif op == mb.SANITIZE:
        st["lsa"] = ()
        st["event.records"] = ()
        st["media.enabled"] = True
    elif op == mb.SCAN_MEDIA:
        st["scan.results"] = (True, st["scan.results"][1])
    st["bg.opcode"] = 0
    return int(op)


def cold_reset(dev: Device) -> None:
    """ct3d_reset(): cxl_init_cci() forgets every firmware slot but the first (no staged activation
    happens) and any background command; the media is ready.  The LSA, poison, events, timestamp and
    feature settings stay.  (A reset while a background command runs leaves its old timer armed, and
    bg_timercb() asserts cci->bg.runtime > 0: read, not run.)"""
    st = dev.state
    st["fw.slots"] = ("v1", "")
    st["fw.active_slot"], st["fw.staged_slot"] = 1, 0
    st["fw.transfer"] = ()
    st["bg.opcode"] = 0
    st["media.enabled"] = True


def log_event(dev: Device, log: int) -> Reply:
    """cxl_event_insert(): handles count up per log and are never reused; a full log drops the record."""
    st = dev.state
    if sum(1 for lg, _ in st["event.records"] if lg == log) >= EVENT_LOG_DEPTH:
        return Reply(why="log full: cxl_event_insert() counts an overflow and drops the record")
    handles = list(st["event.next_handle"])
    handle = handles[log]
    handles[log] = handle + 1 if handle < 0xFFFF else 1
    st["event.next_handle"] = tuple(handles)
    st["event.records"] = st["event.records"] + ((log, handle),)
    return Reply()


# ----------------------------------------------------------------------------- the variant

def initial_state() -> dict[str, Any]:
    """The spec device's fields; those QEMU has no command for (alert, shutdown state, passphrase,
    vendor logs and features) keep their initial values."""
    st = dv.initial_state()
    st.update({
        "partition.active_volatile": 0,
        "partition.next_volatile": 0,
        "lsa": (),  # the LSA's non-zero bytes: a fresh memory backend is zero
        "event.int_policy": (0, 0, 0, 0),  # cxl_event_init(): no interrupts until the host asks
        "scrub.cycle_hours": 12,  # CXL_MEMDEV_PS_CUR_SCRUB_CYCLE_DEFAULT
        "scrub.enabled": False,  # CXL_MEMDEV_PS_ENABLE_DEFAULT
        "ecs.threshold": (1, 3, 3, 3),  # log entry type 1; per FRU threshold count 3, mode 0
        "scan.results": (False, ()),  # (a scan has run, its results)
    })
    return st


_LSA_OFFSET = Param("offset", "int", 0, LSA_SIZE - 1, doc="byte offset into the 1 MiB LSA")
_PARAMS = {
    "GET_LSA": (_LSA_OFFSET, Param("length", "int", 1, 16)),
    "SET_LSA": (_LSA_OFFSET, Param("length", "int", 1, 16), Param("byte", "int", 0, 255)),
}


def _command(c: Command) -> Command:
    if c.op not in HANDLERS:
        return attrs.evolve(c, handler=unsupported, effects=E.NONE,
                            doc="not in QEMU 10.0.2's cxl_cmd_set[]: UNSUPPORTED, absent from the CEL")
    effects: Any = set_feature_effects if c.op == "SET_FEATURE" else E(CEL_EFFECTS[c.op])
    return attrs.evolve(c, handler=_cci(c.op, HANDLERS[c.op]), effects=effects,
                        params=_PARAMS.get(c.op, c.params))


COMMANDS = tuple(_command(c) for c in dv.COMMANDS)

QEMU = DeviceVariant(
    "qemu",
    state=initial_state,
    commands=COMMANDS,
    info={
        "features": FEATURES,
        "cel": CEL,
        "payload_size": PAYLOAD_MAX,
        "payload_in": PAYLOAD_IN,
        "total_units": TOTAL_UNITS,
        "persistent_only": TOTAL_UNITS,
        "complete_background": complete_background,
        "cold_reset": cold_reset,
        "log_event": log_event,
    },
    doc="QEMU 10.0.2's cxl-type3 with 256 MiB persistent memory and a 1 MiB LSA, as the live target runs it",
)
