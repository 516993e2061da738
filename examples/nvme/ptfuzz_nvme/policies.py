"""Linux's NVMe passthrough policy: who may send what, and what the kernel does afterwards.

Sources (linux): ``drivers/nvme/host/ioctl.c`` (``nvme_cmd_allowed()``: its
checks in the kernel's order, each ending in ``goto admin``, i.e.
``capable(CAP_SYS_ADMIN)``), ``drivers/nvme/host/core.c``
(``nvme_command_effects()``, ``nvme_passthru_start()``,
``nvme_passthru_end()``, ``nvme_update_keep_alive()``) and ``block/bdev.c``
(``bdev_may_open()``, CONFIG_BLK_DEV_WRITE_MOUNTED).

The admission half is the rule table; the aftermath half is the reactions:
after a command reached the device, ``nvme_passthru_end()`` acts on the
effects the kernel has cached for its opcode (not on what the device would
say today): NIC or NCC rescan the namespaces (a new one's block device
appears: the reaction publishes it), CCC marks the controller's cached
capabilities dirty, and a successful Set Features of the Keep Alive Timeout
updates the driver's keep-alive interval.  The reactions' ``effects`` filters
test the kernel's cached entry (``Subsystem.kernel_effects``, i.e.
``kernel_effects()`` below), so a device that understates an effect skips
the reaction, unless the kernel patched that entry
(``nvme_init_known_nvm_effects()``).  ``nvme_passthru_start()``'s queue
freeze for CSE is not modelled: the model runs one command at a time.

Knobs: ``write_mounted`` (CONFIG_BLK_DEV_WRITE_MOUNTED, or the
``bdev_allow_write_mounted`` boot option) and ``known_effects`` (apply
``nvme_init_known_nvm_effects()`` at probe; off only for what-if runs).
"""

from __future__ import annotations

import errno

from fuzzer import Allow, Deny, Policy, Promise, Reaction, Reply, Request, Rule, Trust, Verdict, World

from . import opcodes as op
from .commands import ADMIN, IO
from .kernel import NAMESPACES, command_effects, nsid_of, scan
from .opcodes import NvmeEffect as E

CAP_SYS_ADMIN = "CAP_SYS_ADMIN"
#: the caller's file descriptor was opened for write (BLK_OPEN_WRITE / FMODE_WRITE)
OPEN_WRITE = "BLK_OPEN_WRITE"

IOCTL = "drivers/nvme/host/ioctl.c"
CORE = "drivers/nvme/host/core.c"
BDEV = "block/bdev.c"


def _effects(r: Request) -> int:
    return command_effects(r.kernel, r.channel == IO, r.command.opcode)


def _admin(r: Request, why: str) -> Verdict:
    """``goto admin``: the check failed, so only CAP_SYS_ADMIN lets the command through."""
    return None if CAP_SYS_ADMIN in r.caller.caps else Deny(errno.EACCES, why)


# --------------------------------------------------------------------------- admission


def _write_mounted(r: Request) -> Verdict:
    if OPEN_WRITE not in r.caller.switches or r.knobs["write_mounted"]:
        return None
    nsid = nsid_of(r.kernel, r.args["ns"])
    if nsid is not None and nsid in r.kernel["mounted"]:
        return Deny(errno.EBUSY, "opening a mounted block device for write")
    return None


def _vendor_or_fabrics(r: Request) -> Verdict:
    if r.command.opcode >= op.VENDOR_START or r.command.opcode == op.FABRICS:
        return _admin(r, "vendor-specific or fabrics opcode")
    return None


def _identify_only(r: Request) -> Verdict:
    if r.command.opcode == op.IDENTIFY and r.args["cns"] in op.UNPRIVILEGED_CNS:
        return Allow("an Identify needed to build I/O commands")
    return _admin(r, "admin command other than the unprivileged Identify subset")


def _csupp(r: Request) -> Verdict:
    if not _effects(r) & op.CSUPP:
        return _admin(r, "the effects log does not mark the command supported")
    return None


def _intrusive(r: Request) -> Verdict:
    if _effects(r) & ~(op.CSUPP | op.LBCC | op.UUID_SEL | op.SCOPE_MASK):
        return _admin(r, "the command has intrusive (or unknown) effects")
    return None


def _write_open(r: Request) -> Verdict:
    if (op.is_write(r.command.opcode) or _effects(r) & op.LBCC) and OPEN_WRITE not in r.caller.switches:
        return _admin(r, "writes data but the block device is not open for write")
    return None


_ALLOWED = f"{IOCTL} nvme_cmd_allowed()"
RULES = (
    Rule("bdev-write-mounted", _write_mounted,
         f"{BDEV} bdev_may_open(): bdev_writes_blocked() unless CONFIG_BLK_DEV_WRITE_MOUNTED", channels=(IO,)),
    Rule("vendor-or-fabrics", _vendor_or_fabrics,
         f"{_ALLOWED}: opcode >= nvme_cmd_vendor_start || nvme_fabrics_command -> admin"),
    Rule("admin-identify-only", _identify_only,
         f"{_ALLOWED}: !ns -> only Identify CNS NS/CS_NS/NS_CS_INDEP/CS_CTRL/CTRL, else admin",
         channels=(ADMIN,)),
    Rule("effects-csupp", _csupp,
         f"{_ALLOWED}: !(nvme_command_effects() & NVME_CMD_EFFECTS_CSUPP) -> admin", channels=(IO,)),
    Rule("effects-intrusive", _intrusive,
         f"{_ALLOWED}: effects & ~(CSUPP | LBCC | UUID_SEL | SCOPE_MASK) -> admin", channels=(IO,)),
    Rule("write-open", _write_open,
         f"{_ALLOWED}: (nvme_is_write() || LBCC) && !open_for_write -> admin", channels=(IO,)),
)

#: nvme_cmd_allowed() lets nobody but CAP_SYS_ADMIN send an admin command with an effect
PROMISES = (
    Promise(ADMIN, f"{_ALLOWED}: admin commands other than Identify need CAP_SYS_ADMIN",
            effects=int(E.LBCC | E.NCC | E.NIC | E.CCC), caps=frozenset({CAP_SYS_ADMIN})),
)

# --------------------------------------------------------------------------- aftermath


def kernel_effects(r: Request) -> int:
    """``Subsystem.kernel_effects``: the cached entry as the model's flags; the reactions filter on it.

    nvme_passthru_start() reads ``nvme_command_effects()`` before the command
    and nvme_passthru_end() acts on that value, so a controller that
    understates an entry the kernel did not patch skips the reaction.
    """
    return op.flags(_effects(r))



def _rescan(world: World, request: Request, reply: Reply) -> None:
    """nvme_queue_scan(); flush_work(&ctrl->scan_work): a namespace new to the kernel gets its block device."""
    before = set(world.kernel["namespaces"].values())
    world.publish(NAMESPACES, *(h for h in scan(world) if h not in before))


def _capabilities_dirty(world: World, request: Request, reply: Reply) -> None:
    """CCC: the kernel logs "reset may be required" and stops vouching for its identify data."""
    world.kernel["dirty_capability"] = True
    world.forget("ctrl.identify")


def _keep_alive(world: World, request: Request, reply: Reply) -> None:
    """nvme_update_keep_alive(): ctrl->kato = DIV_ROUND_UP(cdw11, 1000), from the command, on success."""
    if request.args["fid"] != op.FEAT_KATO or reply.rc:
        return
    kato = -(-int(request.args["value"]) // 1000)
    world.kernel["kato"] = kato
    world.shadow["feature.kato"] = kato * 1000


_END = f"{CORE} nvme_passthru_end()"
REACTIONS = (
    Reaction("passthru-scan", _rescan, f"{_END}: NIC | NCC -> nvme_queue_scan(), flush_work()",
             effects=int(E.NIC | E.NCC), produces=NAMESPACES),
    Reaction("ccc-dirty", _capabilities_dirty,
             f"{_END}: CCC -> set NVME_CTRL_DIRTY_CAPABILITY, \"reset may be required\"", effects=int(E.CCC)),
    Reaction("keep-alive-update", _keep_alive, f"{_END}: Set Features KATO -> nvme_update_keep_alive()",
             channels=(ADMIN,), ops=("SET_FEATURES",)),
)

#: Root may erase or overwrite what a mounted filesystem trusts: nvme_cmd_allowed()
#: answers capable(CAP_SYS_ADMIN) to everything, by design.  Only that: the data the
#: filesystem believes (``ns.data``).  A stale block size or a namespace list the
#: kernel failed to rescan after root's Format NVM is still a hole.
TRUSTS = (
    Trust(frozenset({CAP_SYS_ADMIN}), f"{_ALLOWED}: admin: return capable(CAP_SYS_ADMIN)",
          ops=("FORMAT_NVM", "SANITIZE", "WRITE", "WRITE_ZEROES"),
          invariants=("kernel-owned-integrity",), fields=("ns.data",),
          reason="root destroying data under a mounted filesystem is its own business"),
)

# --------------------------------------------------------------------------- policies

LINUX = Policy(
    "linux-nvme", "nvme", channels=(ADMIN, IO), rules=RULES, promises=PROMISES, reactions=REACTIONS,
    trusts=TRUSTS, knobs={"write_mounted": False, "known_effects": True}, kernel="unversioned",
    doc="nvme_cmd_allowed() and nvme_passthru_end() (6.5+), with CONFIG_BLK_DEV_WRITE_MOUNTED=n",
)
LINUX_WRITE_MOUNTED = Policy(
    "linux-nvme-write-mounted", "nvme", channels=(ADMIN, IO), rules=RULES, promises=PROMISES,
    reactions=REACTIONS, trusts=TRUSTS, knobs={"write_mounted": True, "known_effects": True},
    kernel="unversioned",
    doc="linux-nvme with the Kconfig default CONFIG_BLK_DEV_WRITE_MOUNTED=y",
)


def _allow(r: Request) -> Verdict:
    return Allow("blank cheque")


PERMISSIVE = Policy(
    "permissive", "nvme", channels=(ADMIN, IO),
    rules=(Rule("allow-everything", _allow, "none: the blank cheque"),),
    doc="every command passes and the kernel never reacts: a passthrough without policy",
)

POLICIES = (LINUX, LINUX_WRITE_MOUNTED, PERMISSIVE)
