"""The Linux NVMe host driver as a model: probe, the namespace scan, and what it caches.

Sources (linux): ``drivers/nvme/host/core.c`` (``nvme_init_ctrl_finish()``,
``nvme_init_identify()``, ``nvme_init_effects()``,
``nvme_init_known_nvm_effects()``, ``nvme_set_queue_count()``,
``nvme_scan_work()``, ``nvme_scan_ns_list()``, ``nvme_validate_ns()``,
``nvme_remove_invalid_namespaces()``), ``drivers/nvme/host/pci.c``
(``nvme_reset_work()``), ``drivers/nvme/host/ioctl.c`` (the ioctls on a
namespace's block device).

The kernel's bookkeeping (``world.kernel``):

* ``acs``/``iocs``: the effects log as the driver caches it (``ctrl->effects``),
  read once at the first probe and patched with the effects the kernel knows
  better than any device (unless the policy's ``known_effects`` knob is off);
  ``policies.kernel_effects()`` hands it to the engine, whose reactions filter on it;
* ``namespaces``: NSID -> the handle of its block device (``nvme0nN``);
* ``mounted``: NSIDs a filesystem has mounted (it then believes their data);
* ``dirty_capability``: ``NVME_CTRL_DIRTY_CAPABILITY`` (set by a CCC command);
* ``kato``: ``ctrl->kato``, in seconds.

Simplification, once: the filesystem is a belief about the namespace's data
and nothing more (no superblock, no writeback).
"""

from __future__ import annotations

import errno
from collections.abc import Mapping
from typing import Any

from fuzzer import Args, Caller, Driver, KernelAction, Param, Reply, World

from . import opcodes as op
from .device import IMAGES, NS_FIELDS, QUEUES, ns_keys

NAMESPACES = "namespaces"  # the bundle the scan publishes namespace handles into


def boot() -> dict[str, Any]:
    return {
        "acs": {},
        "iocs": {},
        "namespaces": {},
        "mounted": frozenset(),
        "dirty_capability": False,
        "kato": 0,
    }


def knob(world: World, name: str, default: Any) -> Any:
    """A setting of the policy under test (None outside a run: the default)."""
    return world.policy.knobs.get(name, default) if world.policy is not None else default


def handle(nsid: int) -> str:
    """The block device of namespace ``nsid`` (one controller, so ``nvme0nN``)."""
    return f"nvme0n{nsid}"


def nsid_of(kernel: Mapping[str, Any], ns: str) -> int | None:
    """The NSID behind a namespace handle, if the kernel still exposes that namespace."""
    for nsid, name in kernel["namespaces"].items():
        if name == ns:
            return int(nsid)
    return None


# --------------------------------------------------------------------------- effects


#: nvme_init_known_nvm_effects(): bits the kernel ORs into the device's log, whatever
#: the device says (the Security Receive CSE mask-off is not modelled)
KNOWN_ACS = {
    op.FORMAT_NVM: op.LBCC | op.NCC | op.CSE_MASK,
    op.SANITIZE_NVM: op.LBCC | op.CSE_MASK,
}
KNOWN_IOCS = {op.WRITE: op.LBCC, op.WRITE_ZEROES: op.LBCC, op.WRITE_UNCOR: op.LBCC}


def _patched(log: dict[int, int], known: dict[int, int]) -> dict[int, int]:
    out = dict(log)
    for opcode, bits in known.items():
        out[opcode] = out.get(opcode, 0) | bits
    return out


def command_effects(kernel: Mapping[str, Any], io: bool, opcode: int) -> int:
    """nvme_command_effects(): the cached log entry, as the kernel acts on it.

    An I/O command never freezes the queues (its CSE bits are masked off);
    an admin command's CSE bits are ignored when the entry sets a CSER
    relaxation bit.
    """
    if io:
        return int(kernel["iocs"].get(opcode, 0)) & ~op.CSE_MASK
    effects = int(kernel["acs"].get(opcode, 0))
    if effects & op.CSER_MASK:
        effects &= ~op.CSE_MASK
    return effects


# --------------------------------------------------------------------------- probe and scan


def init_controller(world: World, *, first: bool) -> None:
    """nvme_init_ctrl_finish() and the queue setup of nvme_reset_work()."""
    k = world.kernel
    world.mailbox("IDENTIFY", cns=op.CNS_CTRL, nsid=0)  # nvme_init_identify()
    world.believe("ctrl.identify")
    k["dirty_capability"] = False
    if first:  # nvme_init_effects() runs only while !ctrl->identified
        log = world.mailbox("GET_LOG_PAGE", lid=op.LOG_CMD_EFFECTS).out
        acs, iocs = dict(log.get("acs", {})), dict(log.get("iocs", {}))
        if knob(world, "known_effects", True):
            acs, iocs = _patched(acs, KNOWN_ACS), _patched(iocs, KNOWN_IOCS)
        k["acs"], k["iocs"] = acs, iocs
    world.mailbox("SET_FEATURES", fid=op.FEAT_NUM_QUEUES, value=QUEUES)  # nvme_set_queue_count()
    world.believe("feature.nq")
    world.mailbox("CREATE_IO_QUEUES")
    # ctrl->kato is the driver's own (0 on PCIe unless a passthrough set it); what it
    # believes the device holds is that many seconds.
    world.shadow["feature.kato"] = k["kato"] * 1000


def scan(world: World) -> tuple[str, ...]:
    """nvme_scan_work(): the active NSID list, Identify Namespace for each, drop the rest.

    A namespace in the list is (re)validated: the kernel reads its size and
    LBA format and believes them (nvme_validate_ns() -> nvme_update_ns_info()).
    One no longer in the list, or identifying with NCAP 0, is removed
    (nvme_remove_invalid_namespaces() -> nvme_ns_remove()): its disk goes,
    and a filesystem on it with it.  Returns the handles of the disks.
    """
    k = world.kernel
    listed = world.mailbox("IDENTIFY", cns=op.CNS_NS_ACTIVE_LIST, nsid=0).out.get("nsids", ())
    found: dict[int, str] = {}
    for nsid in listed:
        info = world.mailbox("IDENTIFY", cns=op.CNS_NS, nsid=nsid).out
        if not info.get("ncap"):
            continue  # "namespace not allocated or attached"
        found[nsid] = handle(nsid)
        world.believe(*(f"{name}:{nsid}" for name in NS_FIELDS if name != "ns.data"))
    for nsid in set(k["namespaces"]) - set(found):
        world.forget(*ns_keys(nsid))
    k["namespaces"] = found
    k["mounted"] = frozenset(n for n in k["mounted"] if n in found)
    return tuple(found.values())


def probe(world: World) -> None:
    """nvme_probe() -> nvme_reset_work(): initialise the controller, then scan.

    The scan's block devices exist from the start: the probe publishes them.
    """
    init_controller(world, first=True)
    world.publish(NAMESPACES, *scan(world))


# --------------------------------------------------------------------------- kernel actions


def _err(code: int, why: str) -> Reply:
    return Reply(errno=code, why=why)


def rescan(world: World, args: Args) -> Reply:
    """echo 1 > /sys/class/nvme/nvme0/rescan_controller (nvme_queue_scan()); publishes the disks."""
    return Reply(handles=scan(world))


def mount(world: World, args: Args) -> Reply:
    """A filesystem on the namespace's block device: from now on it trusts the blocks it wrote."""
    k = world.kernel
    nsid = nsid_of(world.kernel, args["ns"])
    if nsid is None:
        return _err(errno.ENXIO, f"{args['ns']} is gone")
    if nsid in k["mounted"]:
        return _err(errno.EBUSY, f"{args['ns']} is already mounted")
    k["mounted"] = k["mounted"] | {nsid}
    world.believe(f"ns.data:{nsid}")
    return Reply()


def umount(world: World, args: Args) -> Reply:
    k = world.kernel
    nsid = nsid_of(world.kernel, args["ns"])
    if nsid is None or nsid not in k["mounted"]:
        return _err(errno.EINVAL, f"{args['ns']} is not mounted")
    k["mounted"] = k["mounted"] - {nsid}
    world.forget(f"ns.data:{nsid}")
    return Reply()


def reset_controller(world: World, args: Args) -> Reply:
    """echo 1 > /sys/class/nvme/nvme0/reset_controller: nvme_reset_work().

    The controller drops its I/O queues and activates a staged firmware slot;
    the driver re-identifies (clearing NVME_CTRL_DIRTY_CAPABILITY), sets the
    queue count again, recreates the queues and rescans.
    """
    st = world.device.state
    st["ctrl.ioq"] = False
    if st["fw.next"]:
        st["ctrl.identify"], st["fw.next"] = IMAGES[st["fw.next"]], 0
    init_controller(world, first=False)
    scan(world)  # the same disks come back: nothing new to publish
    return Reply()


_NS = Param("ns", "handle", bundle=NAMESPACES, doc="a namespace block device the scan published")

ACTIONS = (
    KernelAction("rescan", rescan, produces=NAMESPACES, doc="sysfs rescan_controller: scan namespaces"),
    KernelAction("mount", mount, (_NS,), doc="mount a filesystem on the namespace"),
    KernelAction("umount", umount, (_NS,), doc="unmount it"),
    KernelAction("reset_controller", reset_controller,
                 doc="sysfs reset_controller: reset, re-identify, rescan"),
)

# --------------------------------------------------------------------------- ioctl side


def on_namespace(fw_op: str, **fixed: Any) -> Driver:
    """The kernel side of a command sent on a namespace's block device.

    For I/O (NVME_IOCTL_IO_CMD) the NSID is the block device's own
    (nvme_validate_passthru_nsid() rejects any other); for Format NVM it is
    what ``nvme format /dev/nvme0nN`` read with NVME_IOCTL_ID.  A removed
    namespace's queue is dying: the request cannot be allocated.
    """

    def driver(world: World, args: Args, caller: Caller) -> Reply:
        nsid = nsid_of(world.kernel, args["ns"])
        if nsid is None:
            return _err(errno.ENODEV, f"{args['ns']} was removed; its request queue is dying")
        rest = {k: v for k, v in args.items() if k != "ns"}
        reply = world.mailbox(fw_op, nsid=nsid, **rest, **fixed)
        if reply.rc:
            return Reply(rc=reply.rc, why=reply.why or op.STATUS_NAMES.get(reply.rc, hex(reply.rc)))
        return reply

    driver.__doc__ = f"{fw_op} on the namespace's block device"
    return driver
