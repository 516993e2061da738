"""An NVMe controller with its namespaces and its Commands Supported and Effects log.

State, one key per field (``ns.*:<nsid>`` for each allocated namespace):

* ``ns.size:N`` (NSZE, in logical blocks), ``ns.lbaf:N`` (the LBA format:
  512 B or 4 KiB blocks), ``ns.attached:N`` (attached to this controller,
  so in its active namespace list), ``ns.data:N`` (the blocks' content, as a
  generation count that every write or erase bumps);
* ``ctrl.identify`` (the Identify Controller data the driver caches: the
  firmware revision and MDTS), ``fw.next`` (the slot a Firmware Commit
  staged for the next reset), ``ctrl.ioq`` (the I/O queues exist);
* the features ``feature.nq`` (Number of Queues), ``feature.kato`` (Keep
  Alive Timeout, in ms) and ``feature.temp`` (temperature threshold).

Simplifications, once: one controller, one command set (NVM), no
multipath or ANA, no partitions; data is a counter per namespace, not blocks;
commands take a few abstract arguments instead of 16 dwords; Format NVM and
Namespace Management act on one namespace (no broadcast NSID); a controller
reset keeps the feature values (as if saved) except the queue count.
Firmware images are already downloaded to slots 1 and 2.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fuzzer import BELIEVED, Args, Device, DeviceVariant, Effect, Field, Firmware, Reply

from . import opcodes as op
from .opcodes import NvmeEffect as E

# --------------------------------------------------------------------------- geometry

#: LBA formats: index -> LBADS (log2 of the block size)
LBAF = (9, 12)
#: capacity unit of Namespace Management and ACME_NS_GROW: 4 KiB
UNIT = 4096
#: total NVM capacity (TNVMCAP), in units
TOTAL_UNITS = 32
#: highest NSID the controller supports (NN)
MAX_NS = 4
#: firmware slots: slot -> (firmware revision, MDTS)
IMAGES = {1: ("1.0", 5), 2: ("2.0", 3)}
#: Keep Alive granularity (KAS = 10: units of 100 ms); the controller rounds KATO up to it
KATO_GRANULARITY_MS = 1000
#: the queue count the driver asks for at probe
QUEUES = 4

NS_FIELDS = ("ns.size", "ns.lbaf", "ns.attached", "ns.data")


def ns_keys(nsid: int) -> tuple[str, ...]:
    """The state keys of namespace ``nsid``."""
    return tuple(f"{name}:{nsid}" for name in NS_FIELDS)


def allocated(state: dict[str, Any]) -> list[int]:
    """NSIDs of the allocated namespaces, in order."""
    return sorted(int(k.partition(":")[2]) for k in state if k.startswith("ns.size:"))


def active(state: dict[str, Any]) -> list[int]:
    """NSIDs of the namespaces attached to this controller (the active namespace list)."""
    return [n for n in allocated(state) if state[f"ns.attached:{n}"]]


def _bytes(state: dict[str, Any], nsid: int) -> int:
    return int(state[f"ns.size:{nsid}"]) << LBAF[state[f"ns.lbaf:{nsid}"]]


# --------------------------------------------------------------------------- fields

FIELDS = (
    Field("ns.attached", E.NIC, BELIEVED, family=True,
          doc="the kernel exposes /dev/nvme0nN while the namespace is in the active list (nvme_scan_ns_list())"),
    Field("ns.size", E.NCC, BELIEVED, family=True,
          doc="NSZE: the disk capacity the kernel set (set_capacity() in nvme_update_ns_info_block())"),
    Field("ns.lbaf", E.NCC, BELIEVED, family=True,
          doc="the LBA format: the kernel's logical block size (head->lba_shift, nvme_update_disk_info())"),
    Field("ns.data", E.LBCC, BELIEVED, family=True,
          doc="the blocks under a mounted filesystem, which caches and trusts them"),
    Field("ctrl.identify", E.CCC, BELIEVED,
          doc="Identify Controller data the driver caches: firmware_rev, MDTS -> max_hw_sectors "
              "(drivers/nvme/host/core.c nvme_init_identify())"),
    Field("fw.next", E.CCC, None, doc="the firmware slot staged for activation at the next reset"),
    Field("ctrl.ioq", Effect.NONE, None, doc="the I/O submission and completion queues exist"),
    # The effects log has no bit for "changes a feature value", so changing one needs no
    # declaration; kernel-owned-integrity still judges the features the kernel caches.
    Field("feature.nq", Effect.NONE, BELIEVED,
          doc="Number of Queues, set once by the driver (nvme_set_queue_count())"),
    Field("feature.kato", Effect.NONE, BELIEVED,
          doc="Keep Alive Timeout: the driver sends keep-alives every ctrl->kato / 2 (nvme_start_keep_alive())"),
    Field("feature.temp", Effect.NONE, None,
          doc="temperature threshold: nvme hwmon reads it from the device each time, caching nothing"),
)


def initial_state() -> dict[str, Any]:
    """Namespace 1 attached (the disk the kernel finds), namespace 2 allocated but detached."""
    return {
        "ns.size:1": 8 * UNIT >> LBAF[0], "ns.lbaf:1": 0, "ns.attached:1": True, "ns.data:1": 0,
        "ns.size:2": 4 * UNIT >> LBAF[1], "ns.lbaf:2": 1, "ns.attached:2": False, "ns.data:2": 0,
        "ctrl.identify": IMAGES[1],
        "fw.next": 0,
        "ctrl.ioq": False,
        "feature.nq": 1,
        "feature.kato": 0,
        "feature.temp": 343,
    }


# --------------------------------------------------------------------------- handlers


def _ok(**out: Any) -> Reply:
    return Reply(rc=op.SC_SUCCESS, out=out)


def _status(sc: int, why: str) -> Reply:
    return Reply(rc=sc, why=why)


def _active_ns(dev: Device, nsid: int) -> Reply | None:
    """INVALID_NS unless ``nsid`` is attached (commands on an inactive NSID fail)."""
    if f"ns.attached:{nsid}" not in dev.state or not dev.state[f"ns.attached:{nsid}"]:
        return _status(op.SC_INVALID_NS, f"nsid {nsid} is not an active namespace")
    return None


def identify(dev: Device, args: Args) -> Reply:
    """Identify: the controller, one namespace (zeroes if inactive), or the active NSID list."""
    st, cns = dev.state, args["cns"]
    if cns == op.CNS_CTRL:
        fr, mdts = st["ctrl.identify"]
        return _ok(fr=fr, mdts=mdts)
    if cns == op.CNS_NS_ACTIVE_LIST:
        return _ok(nsids=tuple(active(st)))
    if cns == op.CNS_NS:
        nsid = args["nsid"]
        if nsid not in active(st):
            return _ok(nsze=0, ncap=0, flbas=0)  # an inactive NSID identifies as all zeroes
        size = st[f"ns.size:{nsid}"]
        return _ok(nsze=size, ncap=size, flbas=st[f"ns.lbaf:{nsid}"])
    return _status(op.SC_INVALID_FIELD, f"CNS {cns:#x} not supported")


def get_log_page(dev: Device, args: Args) -> Reply:
    lid = args["lid"]
    if lid == op.LOG_CMD_EFFECTS:
        return _ok(acs=dict(dev.info["acs"]), iocs=dict(dev.info["iocs"]))
    if lid == op.LOG_FW_SLOT:
        return _ok(active=dev.state["ctrl.identify"][0], next=dev.state["fw.next"])
    if lid == op.LOG_SMART:
        return _ok(temperature=310)
    return _status(op.SC_INVALID_FIELD, f"log page {lid:#x} not supported")


FEATURE_FIELD = {op.FEAT_NUM_QUEUES: "feature.nq", op.FEAT_KATO: "feature.kato",
                 op.FEAT_TEMP_THRESH: "feature.temp"}


def get_features(dev: Device, args: Args) -> Reply:
    field = FEATURE_FIELD.get(args["fid"])
    if field is None:
        return _status(op.SC_INVALID_FIELD, f"feature {args['fid']:#x} not supported")
    return _ok(value=dev.state[field])


def set_features(dev: Device, args: Args) -> Reply:
    """Set Features; Number of Queues only before the I/O queues exist (a spec rule the device keeps)."""
    fid, value = args["fid"], args["value"]
    st = dev.state
    if fid == op.FEAT_NUM_QUEUES:
        if st["ctrl.ioq"]:
            return _status(op.SC_CMD_SEQ_ERROR, "Number of Queues after the I/O queues were created")
        st["feature.nq"] = max(int(value), 1)
    elif fid == op.FEAT_KATO:
        g = KATO_GRANULARITY_MS
        st["feature.kato"] = -(-int(value) // g) * g  # rounded up to the Keep Alive granularity
    elif fid == op.FEAT_TEMP_THRESH:
        st["feature.temp"] = int(value)
    else:
        return _status(op.SC_INVALID_FIELD, f"feature {fid:#x} not supported")
    return _ok()


def _used_units(st: dict[str, Any]) -> int:
    return sum(-(-_bytes(st, n) // UNIT) for n in allocated(st))


def ns_create(dev: Device, args: Args) -> Reply:
    """Namespace Management, create: the lowest free NSID, allocated but not yet attached."""
    st = dev.state
    free = [n for n in range(1, MAX_NS + 1) if f"ns.size:{n}" not in st]
    if not free:
        return _status(op.SC_NS_ID_UNAVAILABLE, f"all {MAX_NS} namespaces are allocated")
    if _used_units(st) + args["units"] > TOTAL_UNITS:
        return _status(op.SC_NS_INSUFFICIENT_CAP, "not enough unallocated capacity")
    nsid, lbaf = free[0], args["lbaf"]
    st.update({f"ns.size:{nsid}": args["units"] * UNIT >> LBAF[lbaf], f"ns.lbaf:{nsid}": lbaf,
               f"ns.attached:{nsid}": False, f"ns.data:{nsid}": 0})
    return _ok(nsid=nsid)


def ns_delete(dev: Device, args: Args) -> Reply:
    """Namespace Management, delete: the namespace (attached or not) and its data are gone."""
    nsid = args["nsid"]
    if f"ns.size:{nsid}" not in dev.state:
        return _status(op.SC_INVALID_FIELD, f"nsid {nsid} is not allocated")
    for key in ns_keys(nsid):
        del dev.state[key]
    return _ok()


def ns_attach(dev: Device, args: Args) -> Reply:
    nsid = args["nsid"]
    if f"ns.size:{nsid}" not in dev.state:
        return _status(op.SC_INVALID_FIELD, f"nsid {nsid} is not allocated")
    if dev.state[f"ns.attached:{nsid}"]:
        return _status(op.SC_NS_ALREADY_ATTACHED, f"nsid {nsid} is already attached")
    dev.state[f"ns.attached:{nsid}"] = True
    return _ok()


def ns_detach(dev: Device, args: Args) -> Reply:
    nsid = args["nsid"]
    if not dev.state.get(f"ns.attached:{nsid}"):
        return _status(op.SC_NS_NOT_ATTACHED, f"nsid {nsid} is not attached")
    dev.state[f"ns.attached:{nsid}"] = False
    return _ok()


def fw_commit(dev: Device, args: Args) -> Reply:
    """Firmware Commit: stage a slot for the next reset, or activate it now (new identify data)."""
    slot, action = args["slot"], args["action"]
    if slot not in IMAGES:
        return _status(op.SC_INVALID_FIELD, f"no image in slot {slot}")
    if action == op.FWACT_ACTV:
        dev.state["fw.next"] = slot
    elif action == op.FWACT_ACTIVATE_NOW:
        dev.state["ctrl.identify"] = IMAGES[slot]
        dev.state["fw.next"] = 0
    else:
        return _status(op.SC_INVALID_FIELD, f"commit action {action} not supported")
    return _ok()


def format_nvm(dev: Device, args: Args) -> Reply:
    """Format NVM: a new LBA format (so a new NSZE in blocks) and erased data."""
    nsid, lbaf = args["nsid"], args["lbaf"]
    bad = _active_ns(dev, nsid)
    if bad:
        return bad
    if lbaf >= len(LBAF):
        return _status(op.SC_INVALID_FORMAT, f"no LBA format {lbaf}")
    st = dev.state
    size = _bytes(st, nsid)
    st[f"ns.lbaf:{nsid}"] = lbaf
    st[f"ns.size:{nsid}"] = size >> LBAF[lbaf]
    st[f"ns.data:{nsid}"] += 1
    return _ok()


def sanitize(dev: Device, args: Args) -> Reply:
    """Sanitize (block erase): every namespace's data, attached or not."""
    for nsid in allocated(dev.state):
        dev.state[f"ns.data:{nsid}"] += 1
    return _ok()


def acme_ns_grow(dev: Device, args: Args) -> Reply:
    """ACME's vendor command: grow a namespace in place (thin provisioning)."""
    st, nsid = dev.state, args["nsid"]
    if f"ns.size:{nsid}" not in st:
        return _status(op.SC_INVALID_FIELD, f"nsid {nsid} is not allocated")
    if _used_units(st) + args["units"] > TOTAL_UNITS:
        return _status(op.SC_NS_INSUFFICIENT_CAP, "not enough unallocated capacity")
    st[f"ns.size:{nsid}"] += args["units"] * UNIT >> LBAF[st[f"ns.lbaf:{nsid}"]]
    return _ok()


def create_io_queues(dev: Device, args: Args) -> Reply:
    """Create I/O Completion and Submission Queues (the driver's, at probe and after a reset)."""
    dev.state["ctrl.ioq"] = True
    return _ok()


def nvm_read(dev: Device, args: Args) -> Reply:
    """Read, Flush: nothing the model tracks changes (Flush commits a cache it has none of)."""
    return _active_ns(dev, args["nsid"]) or _ok()


def nvm_write(dev: Device, args: Args) -> Reply:
    """Write, Write Zeroes: new content in the namespace's blocks."""
    bad = _active_ns(dev, args["nsid"])
    if bad:
        return bad
    dev.state[f"ns.data:{args['nsid']}"] += 1
    return _ok()


# --------------------------------------------------------------------------- effects log


def declared(table: str, opcode: int) -> Callable[[Args, Device], int]:
    """What the device declares for ``opcode``: its effects log entry, as the model's flags."""

    def effects(args: Args, dev: Device) -> int:
        return op.flags(dev.info[table].get(opcode, 0))

    return effects


#: An honest effects log: every command declares what its handler changes.
HONEST_ACS = {
    op.GET_LOG_PAGE: op.CSUPP,
    op.IDENTIFY: op.CSUPP,
    op.SET_FEATURES: op.CSUPP,
    op.GET_FEATURES: op.CSUPP,
    op.NS_MGMT: op.CSUPP | op.LBCC | op.NCC | op.NIC,
    op.FW_COMMIT: op.CSUPP | op.CCC,
    op.CREATE_IO_SQ: op.CSUPP,
    op.CREATE_IO_CQ: op.CSUPP,
    op.NS_ATTACH: op.CSUPP | op.NIC,
    op.FORMAT_NVM: op.CSUPP | op.LBCC | op.NCC | op.CSE_SINGLE_NS,
    op.SANITIZE_NVM: op.CSUPP | op.LBCC | op.CSE_SINGLE_NS,
    op.ACME_NS_GROW: op.CSUPP | op.NCC,
}
HONEST_IOCS = {
    op.FLUSH: op.CSUPP,
    op.WRITE: op.CSUPP | op.LBCC,
    op.READ: op.CSUPP,
    op.WRITE_ZEROES: op.CSUPP | op.LBCC,
}
#: The understating controller: four entries say "supported" and nothing more.
UNDERSTATED_ACS = {**HONEST_ACS, op.NS_ATTACH: op.CSUPP, op.FORMAT_NVM: op.CSUPP, op.ACME_NS_GROW: op.CSUPP}
UNDERSTATED_IOCS = {**HONEST_IOCS, op.WRITE_ZEROES: op.CSUPP}

# --------------------------------------------------------------------------- firmware

_A, _IO = "acs", "iocs"

#: What only kernel code sends (the driver's queue setup), and the firmware behind the
#: commands whose user-facing form goes through kernel code first (commands.py).
FIRMWARE = (
    Firmware("CREATE_IO_QUEUES", op.CREATE_IO_SQ, create_io_queues, declared(_A, op.CREATE_IO_SQ),
             doc="Create I/O CQ + SQ (nvme_create_io_queues())"),
    Firmware("FORMAT_NVM", op.FORMAT_NVM, format_nvm, declared(_A, op.FORMAT_NVM)),
    Firmware("FLUSH", op.FLUSH, nvm_read, declared(_IO, op.FLUSH)),
    Firmware("READ", op.READ, nvm_read, declared(_IO, op.READ)),
    Firmware("WRITE", op.WRITE, nvm_write, declared(_IO, op.WRITE)),
    Firmware("WRITE_ZEROES", op.WRITE_ZEROES, nvm_write, declared(_IO, op.WRITE_ZEROES)),
)

# --------------------------------------------------------------------------- variants

HONEST = DeviceVariant(
    "honest", state=initial_state, info={"acs": HONEST_ACS, "iocs": HONEST_IOCS},
    doc="a controller whose effects log declares everything each command changes",
)
UNDERSTATING = DeviceVariant(
    "understating", state=initial_state, info={"acs": UNDERSTATED_ACS, "iocs": UNDERSTATED_IOCS},
    doc="effects log says only CSUPP for Namespace Attachment, Format NVM, ACME_NS_GROW and Write Zeroes",
)
DEVICES = (HONEST, UNDERSTATING)
