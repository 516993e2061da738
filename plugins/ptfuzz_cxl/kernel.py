"""The CXL driver as a model: what it does at probe and on its own, and what it believes.

Every action drives the device through ``world.mailbox`` (the driver's
``cxl_internal_send_cmd()``) and then records in the shadow what the driver
now believes.  Sources: linux ``drivers/cxl/pci.c`` (probe), ``core/mbox.c``,
``core/region.c``, ``pmem.c``, ``core/edac.c``, ``core/memdev.c``.
"""

from __future__ import annotations

import errno
from typing import Any

from fuzzer import Args, KernelAction, Param, Reply, World

from . import device
from . import mailbox as mb
from .device import COMMANDS, complete_background, total_units

#: uapi cxl_mem.h ___DEPRECATED(GET_POISON ...): ids a 2022 kernel's cxl_mem_commands[] had and 7.3.4's
#: leaves zero-filled, so info->id is 0, never in enabled_cmds, and cxl_to_mem_cmd() answers -ENOTTY
DEPRECATED_IOCTL_OPS = frozenset({"GET_POISON", "INJECT_POISON", "CLEAR_POISON"})
#: Commands in the CXL_MEM_SEND_COMMAND table (mbox.c cxl_mem_commands[], 7.3.4),
#: enabled at probe when the device's CEL lists their opcode (cxl_walk_cel()).
IOCTL_OPS = frozenset(c.op for c in COMMANDS if "cxl.ioctl" in c.channels) - DEPRECATED_IOCTL_OPS
#: CXL_CMD_FLAG_FORCE_ENABLE entries.
FORCE_ENABLE = frozenset({"IDENTIFY", "GET_SUPPORTED_LOGS", "GET_LOG"})
#: drivers/cxl/pmem.c cxl_pmem_init(): exclusive while the nvdimm is bound.
NVDIMM_EXCLUSIVE = frozenset({"SET_LSA", "SET_SHUTDOWN_STATE"})

BOOT_TIME = 1_700_000_000

#: include/cxl/features.h enum cxl_features_capability (7.3.4)
FEATURES_NONE, FEATURES_RO, FEATURES_RW = 0, 1, 2


def features_cap(opcodes: set[int] | frozenset[int]) -> int:
    """mbox.c cxl_walk_cel() -> check_features_opcodes(), set_features_cap() (7.3.4): read-only when
    the CEL has both Get Supported Features and Get Feature, read-write when it also has Set Feature."""
    if {mb.GET_SUPPORTED_FEATURES, mb.GET_FEATURE} <= opcodes:
        return FEATURES_RW if mb.SET_FEATURE in opcodes else FEATURES_RO
    return FEATURES_NONE


def boot() -> dict[str, Any]:
    """Kernel bookkeeping before the driver binds."""
    return {
        "boot": 0,
        "regions": {},
        "nvdimm_bound": False,
        "exclusive": frozenset(),
        "enabled": frozenset(),
        "features": {},
        "cel": frozenset(),
        # cxl_mbox->feat_cap (set_features_cap()) and whether devm_cxl_setup_fwctl() made a fwctl device
        "feat_cap": FEATURES_NONE,
        "fwctl": False,
        # pci.c: mds->security.poll_tmo_secs > 0 while the sanitize poller runs
        "sanitize_active": False,
    }


def probe(world: World) -> None:
    """cxl_pci_probe(): identify, partitions, CEL, timestamp, events, features, EDAC."""
    k = world.kernel
    world.mailbox("IDENTIFY")
    world.mailbox("GET_PARTITION_INFO")  # cxl_mem_dpa_fetch()
    world.believe("partition.active_volatile")
    logs = dict(world.mailbox("GET_SUPPORTED_LOGS").out.get("logs", ()))  # cxl_enumerate_cmds()
    cel = world.mailbox("GET_LOG", log=mb.CEL_UUID, offset=0,
                        length=logs.get(mb.CEL_UUID, 0)).out.get("cel", ())
    world.believe("log.cel")
    opcodes = {op for op, _ in cel}
    by_op = {c.op: c.opcode for c in COMMANDS}
    k["enabled"] = frozenset(op for op in IOCTL_OPS if by_op[op] in opcodes) | FORCE_ENABLE
    # cxl_walk_cel() -> cxl_set_security_cmd(): security/sanitize and security/erase exist only for a
    # device whose CEL has the command (7.3.4 memdev.c cxl_security_visible())
    k["cel"] = frozenset(opcodes)
    k["feat_cap"] = features_cap(opcodes)
    world.mailbox("SET_TIMESTAMP", timestamp=BOOT_TIME + 1000 * k["boot"])  # cxl_set_timestamp()
    world.believe("timestamp")
    for log in range(4):  # cxl_event_config(): MSI/MSI-X for every log
        world.mailbox("SET_EVT_INT_POLICY", log=log, setting=1)
    world.believe("event.int_policy")
    _drain_events(world)
    # devm_cxl_setup_features(): no Features state below CXL_FEATURES_RO (nor a Get Supported Features)
    feats = world.mailbox("GET_SUPPORTED_FEATURES").out.get("features", ()) if k["feat_cap"] >= FEATURES_RO else ()
    k["features"] = {uuid: (changeable, effects) for uuid, changeable, effects in feats}
    # devm_cxl_setup_fwctl(): "No need to setup FWCTL if there are no user allowed features found"
    k["fwctl"] = any(uuid not in exclusive_features(world) for uuid in k["features"])
    world.believe("scrub.cycle_hours", "scrub.enabled", "ecs.threshold")  # EDAC registration
    world.mailbox("GET_FW_INFO")
    world.believe("fw.active_slot")
    # 7.3.4 reads no poison list at probe (cxl_poison_state_init() only allocates the Get Poison List
    # buffer) and keeps none: "poison" is believed in the sense of cxl_disabled_raw_commands[]'s
    # "require kernel driver orchestration" (fidelity #22): it changes only through the driver's
    # debugfs inject/clear, which trace each change with its region (cxl_inject_poison()).
    world.believe("poison")


def exclusive_features(world: World) -> frozenset[str]:
    """cxl_exclusive_feats[] of the kernel under test (a policy knob: the live target's kernel is patched)."""
    return frozenset(world.policy.knobs["exclusive_features"]) if world.policy is not None else mb.EXCLUSIVE_FEATURES


def _drain_events(world: World) -> None:
    """cxl_mem_get_event_records(): read and clear every log."""
    for log in range(4):
        for _log, handle in world.mailbox("GET_EVENT_RECORD", log=log).out.get("records", ()):
            world.mailbox("CLEAR_EVENT_RECORD", log=log, handle=handle)
    world.believe("event.records")


def _err(code: int, why: str) -> Reply:
    return Reply(errno=code, why=why)


def _mbox_failed(reply: Reply, code: int = errno.EIO) -> Reply:
    """A mailbox error as the driver returns it: an errno, naming the device status."""
    return _err(code, mb.RC_NAMES.get(reply.rc, str(reply.rc)))


# ----------------------------------------------------------------------------- actions


def region_create(world: World, args: Args) -> Reply:
    """cxl_region create + commit: the decoder maps DPA from the kernel's partition view.

    A mode without capacity has no partition at all (``cxl_mem_dpa_fetch()``'s ``add_part()``
    skips an empty one), so the endpoint decoder's ``mode`` write fails in ``cxl_dpa_set_part()``
    with EINVAL before any size is checked; a partition too small fails ``__cxl_dpa_alloc()`` with
    ENOSPC.  (Both seen on 7.3.4 under QEMU: ``tests/test_live.py``.)
    """
    k, st = world.kernel, world.device.state
    if not st["media.enabled"]:
        return _err(errno.EBUSY, "media not ready")
    vol = world.shadow["partition.active_volatile"]
    cap = vol if args["mode"] == "ram" else total_units(world.device) - vol
    if not cap:
        # knob "region_no_capacity_errno": 6.12's cxl_dpa_set_mode() answers -ENXIO here
        code = world.policy.knobs["region_no_capacity_errno"] if world.policy else errno.EINVAL
        return _err(code, f"no {args['mode']} partition: cxl_dpa_set_part()")
    used = sum(size for mode, size in k["regions"].values() if mode == args["mode"])
    if used + args["size"] > cap:
        return _err(errno.ENOSPC, f"{args['mode']} partition has {cap - used} units free")
    handle = world.new_handle("region")
    first = not k["regions"]
    k["regions"] = {**k["regions"], handle: (args["mode"], args["size"])}
    if first:
        world.believe("media.enabled", "media.generation")
    return Reply(handle=handle)


def region_destroy(world: World, args: Args) -> Reply:
    k = world.kernel
    if args["region"] not in k["regions"]:
        return _err(errno.ENOENT, "no such region")
    k["regions"] = {h: r for h, r in k["regions"].items() if h != args["region"]}
    return Reply()


def nvdimm_bind(world: World, args: Args) -> Reply:
    """cxl_nvdimm_probe(): arm dirty shutdown, claim SET_LSA/SET_SHUTDOWN_STATE, read labels.

    There is an nvdimm to bind only if the device had persistent capacity when
    the driver probed it: cxl_mem_probe() (drivers/cxl/mem.c) calls
    devm_cxl_add_nvdimm() only when resource_size(&cxlds->pmem_res) is non-zero.

    Simplification (fidelity row N7): no key is loaded, so libnvdimm never unlocks through
    cxl_pmem_security_unlock() (drivers/cxl/security.c) at bind; a locked device stays locked,
    which the deep UNLOCK hole relies on.  With a key the kernel would unlock it itself.
    """
    k = world.kernel
    if k["nvdimm_bound"]:
        return _err(errno.EBUSY, "already bound")
    if world.shadow["partition.active_volatile"] >= total_units(world.device):
        return _err(errno.ENODEV, "no persistent capacity at probe: cxl_mem_probe() added no cxl_nvdimm")
    # cxl_nvdimm_arm_dirty_shutdown_tracking(): a device that refuses is a dev_warn(), not an error
    armed = world.mailbox("SET_SHUTDOWN_STATE", state=1).rc == mb.RC_SUCCESS
    k["nvdimm_bound"] = True
    k["exclusive"] = k["exclusive"] | NVDIMM_EXCLUSIVE
    world.believe("shutdown_state", "lsa", "security.state", "security.passphrase")
    return Reply() if armed else Reply(why="GPF: could not set dirty shutdown state (dev_warn)")


def nvdimm_unbind(world: World, args: Args) -> Reply:
    """The cxl_nvdimm device loses its driver, so its devm action clear_exclusive() runs (7.3.4).

    cxl_nvdimm_driver has ``suppress_bind_attrs`` (drivers/cxl/pmem.c: no sysfs unbind of it), but three
    paths get there: unloading cxl_pmem; unbinding memN from cxl_mem, whose probe registered
    cxlmd_release_nvdimm() -> device_unregister(&cxl_nvd->dev) as a devm action of memN
    (drivers/cxl/mem.c cxl_mem_probe() -> core/pmem.c devm_cxl_add_nvdimm(dev, ...); cxl_mem_driver
    has no suppress_bind_attrs); and the bridge's teardown (unregister_nvdimm_bus() -> detach_nvdimm()).
    Unbinding memN also takes the memdev's other devm state with it; the model keeps that bound.
    """
    k = world.kernel
    if not k["nvdimm_bound"]:
        return _err(errno.ENODEV, "not bound")
    k["nvdimm_bound"] = False
    k["exclusive"] = k["exclusive"] - NVDIMM_EXCLUSIVE  # clear_exclusive_cxl_commands()
    return Reply()


def nvdimm_write_label(world: World, args: Args) -> Reply:
    """libnvdimm label update through cxl_pmem_set_config_data() -> SET_LSA."""
    if not world.kernel["nvdimm_bound"]:
        return _err(errno.ENXIO, "nvdimm not bound")
    reply = world.mailbox("SET_LSA", offset=args["offset"], length=8, byte=args["byte"])
    if reply.rc:
        return _mbox_failed(reply)
    world.believe("lsa")
    return Reply()


def edac_set_scrub(world: World, args: Args) -> Reply:
    """cxl_patrol_scrub_set_scrub_cycle(): min-cycle check, Set Feature, cache the cycle."""
    if args["cycle_hours"] < 1:
        return _err(errno.EINVAL, "below the device minimum")
    reply = world.mailbox("SET_FEATURE", uuid=mb.PATROL_SCRUB_UUID, value=args["cycle_hours"])
    if reply.rc:
        return _mbox_failed(reply)
    world.believe("scrub.cycle_hours")
    return Reply()


#: 7.3.4 drivers/cxl/core/edac.c cxl_set_ecs_threshold(): the counts EDAC takes, and the index the
#: feature's config field stores for each (ECS_THRESHOLD_IDX_*); any other count is -EINVAL there
ECS_THRESHOLDS = {256: 3, 1024: 4, 4096: 5}


def edac_set_ecs(world: World, args: Args) -> Reply:
    reply = world.mailbox("SET_FEATURE", uuid=mb.ECS_UUID, value=ECS_THRESHOLDS[args["threshold"]])
    if reply.rc:
        return _mbox_failed(reply)
    world.believe("ecs.threshold")
    return Reply()


def fw_upload(world: World, args: Args) -> Reply:
    """cxl_fw_write()/cxl_fw_poll_complete(): next slot, transfer, wait, activate offline.

    The fw_upload class has no errno to give: a failed upload shows in its ``error`` attribute,
    ``read-write-error`` when Transfer FW failed, ``hw-error`` when Activate FW did; both are EIO
    here (and in the live target's reading of them).
    """
    active = world.mailbox("GET_FW_INFO").out["active"]
    slot = active % mb.FW_SLOTS + 1
    reply = world.mailbox("TRANSFER_FW", slot=slot, revision=args["revision"])
    if reply.rc != mb.RC_BACKGROUND:
        return _mbox_failed(reply)
    complete_background(world.device)  # the kernel polls until the transfer is done
    if world.mailbox("ACTIVATE_FW", slot=slot, online=False).rc:  # CXL_FW_ACTIVATE_OFFLINE
        return _err(errno.EIO, "activate failed")
    return Reply()


def background_complete(world: World, args: Args) -> Reply:
    """Time passes: the running background operation finishes (the driver's poll sees it).

    The sanitize poller (pci.c cxl_mbox_sanitize_work()) then clears ``poll_tmo_secs``, which
    ends the mailbox's busy gate (``sanitize_active`` here).
    """
    world.kernel["sanitize_active"] = False
    op = complete_background(world.device)
    return Reply(out={"completed": hex(op)})


def cold_reset(world: World, args: Args) -> Reply:
    """Power cycle the device (``device.cold_reset()``) and let the driver re-probe."""
    device.cold_reset(world.device)
    old = world.kernel
    world.kernel = boot()  # kernel taint is engine state: it survives a device reset
    world.kernel["boot"] = old["boot"] + 1
    world.shadow = {}
    probe(world)
    return Reply()


def edac_repair(world: World, args: Args) -> Reply:
    """EDAC memory repair (drivers/cxl/core/edac.c): PPR or sparing through Do Maintenance.

    Simplified: EDAC refuses while the memory is online in a region (the
    driver then also requires the DPA to be in a recent event record).
    """
    if world.kernel["regions"]:
        return _err(errno.EBUSY, "memory online: repair needs an offline DPA or a matching event record")
    reply = world.mailbox("DO_MAINTENANCE", op_class=1, op_subclass=0, dpa=args["dpa"])
    if reply.rc:
        return _mbox_failed(reply)
    return Reply()


def debugfs_inject_poison(world: World, args: Args) -> Reply:
    """cxl_inject_poison() (debugfs): the driver orchestrates poison and keeps the list."""
    if world.mailbox("INJECT_POISON", dpa=args["dpa"]).rc:
        return _err(errno.ENXIO, "inject failed")
    world.believe("poison")
    return Reply()


def debugfs_clear_poison(world: World, args: Args) -> Reply:
    if world.mailbox("CLEAR_POISON", dpa=args["dpa"]).rc:
        return _err(errno.ENXIO, "clear failed")
    world.believe("poison")
    return Reply()


def media_error_event(world: World, args: Args) -> Reply:
    """The device logs a General Media event (``device.log_event()``); its interrupt hands it to the driver."""
    reply = device.log_event(world.device, args["log"])
    if reply.errno:
        return reply
    world.believe("event.records")
    return reply


def event_irq(world: World, args: Args) -> Reply:
    """cxl_event_thread(): read and clear all event logs."""
    _drain_events(world)
    return Reply()


ACTIONS = (
    KernelAction("region_create", region_create, (
        Param("mode", "choice", choices=("ram", "pmem")), Param("size", "int", 1, 4),
    ), produces="regions", doc="create and commit a region (HDM decoder)"),
    KernelAction("region_destroy", region_destroy, (
        Param("region", "handle", bundle="regions", consumes=True),
    ), doc="decommit and destroy a region"),
    KernelAction("nvdimm_bind", nvdimm_bind, doc="cxl_nvdimm_probe()"),
    KernelAction("nvdimm_unbind", nvdimm_unbind,
                 doc="cxl_nvdimm unbound: clear_exclusive() runs (unloading cxl_pmem, or unbinding memN from "
                     "cxl_mem: cxlmd_release_nvdimm(); cxl_nvdimm itself has suppress_bind_attrs)"),
    KernelAction("nvdimm_write_label", nvdimm_write_label, (
        Param("offset", "choice", choices=(0, 8, 16, 64)), Param("byte", "int", 0, 255),
    ), doc="libnvdimm writes a label"),
    KernelAction("edac_set_scrub", edac_set_scrub, (Param("cycle_hours", "int", 1, 255),),
                 doc="EDAC scrub cycle (root with CAP_SYS_RAWIO)"),
    KernelAction("edac_set_ecs", edac_set_ecs, (Param("threshold", "choice", choices=tuple(ECS_THRESHOLDS)),),
                 doc="EDAC ECS threshold: the error count, 256, 1024 or 4096"),
    KernelAction("fw_upload", fw_upload, (Param("revision", "choice", choices=("v2", "v3")),),
                 doc="firmware upload through the fw_upload class"),
    KernelAction("background_complete", background_complete, doc="the background operation finishes"),
    KernelAction("cold_reset", cold_reset, doc="device cold reset and driver re-probe"),
    KernelAction("edac_repair", edac_repair, (Param("dpa", "int", 0, mb.POISON_DPAS - 1),),
                 doc="EDAC post-package repair of a DPA"),
    KernelAction("debugfs_inject_poison", debugfs_inject_poison, (
        Param("dpa", "int", 0, mb.POISON_DPAS - 1),), doc="debugfs inject_poison"),
    KernelAction("debugfs_clear_poison", debugfs_clear_poison, (
        Param("dpa", "int", 0, mb.POISON_DPAS - 1),), doc="debugfs clear_poison"),
    KernelAction("media_error_event", media_error_event, (Param("log", "int", 0, 3),),
                 doc="the device reports a General Media event"),
    KernelAction("event_irq", event_irq, doc="the driver drains the event logs"),
)
