"""The passthrough commands as userspace sends them, one row each.

``nvme.admin`` is NVME_IOCTL_ADMIN_CMD / NVME_IOCTL_ADMIN64_CMD on
``/dev/nvme0`` (or on a namespace's block device, which forwards it to the
controller: ``is_ctrl_ioctl()``); the command goes to the admin queue as
sent, its NSID whatever userspace wrote.  ``nvme.io`` is NVME_IOCTL_IO_CMD on
``/dev/nvme0nN``: the namespace is the block device's, a handle the kernel's
scan published.  Format NVM takes a handle too, as ``nvme format
/dev/nvme0nN`` does; the namespace-management commands take a raw NSID,
because they address namespaces the kernel does not (yet, or any more) expose.
"""

from __future__ import annotations

from fuzzer import Command, Handler, Param

from . import opcodes as op
from .device import (
    LBAF,
    MAX_NS,
    acme_ns_grow,
    declared,
    fw_commit,
    get_features,
    get_log_page,
    identify,
    ns_attach,
    ns_create,
    ns_delete,
    ns_detach,
    sanitize,
    set_features,
)
from .kernel import NAMESPACES, on_namespace

ADMIN = "nvme.admin"
IO = "nvme.io"

_NSID = Param("nsid", "int", 1, 4, doc="the command's NSID")
_NS = Param("ns", "handle", bundle=NAMESPACES, doc="the namespace block device the ioctl is sent on")
_LBAF = Param("lbaf", "choice", choices=tuple(range(len(LBAF))), doc="LBA format: 0 = 512 B, 1 = 4 KiB")
_UNITS = Param("units", "int", 1, 8, doc="capacity in 4 KiB units")


def _admin(name: str, opcode: int, handler: Handler, *params: Param, doc: str = "") -> Command:
    return Command(name, opcode, (ADMIN,), handler=handler, effects=declared("acs", opcode),
                   params=params, doc=doc)


def _io(name: str, opcode: int, doc: str) -> Command:
    return Command(name, opcode, (IO,), driver=on_namespace(name), effects=declared("iocs", opcode),
                   params=(_NS,), doc=doc)


COMMANDS = (
    _admin("IDENTIFY", op.IDENTIFY, identify,
           Param("cns", "choice", choices=(op.CNS_CTRL, op.CNS_NS, op.CNS_NS_ACTIVE_LIST)),
           Param("nsid", "int", 0, MAX_NS), doc="Identify controller / namespace / active NSID list"),
    _admin("GET_LOG_PAGE", op.GET_LOG_PAGE, get_log_page,
           Param("lid", "choice", choices=(op.LOG_SMART, op.LOG_FW_SLOT, op.LOG_CMD_EFFECTS))),
    _admin("GET_FEATURES", op.GET_FEATURES, get_features,
           Param("fid", "choice", choices=(op.FEAT_TEMP_THRESH, op.FEAT_NUM_QUEUES, op.FEAT_KATO))),
    _admin("SET_FEATURES", op.SET_FEATURES, set_features,
           Param("fid", "choice", choices=(op.FEAT_TEMP_THRESH, op.FEAT_NUM_QUEUES, op.FEAT_KATO)),
           Param("value", "choice", choices=(0, 2, 500, 5000, 15000), doc="CDW11 (KATO in ms)")),
    _admin("NS_MGMT$create", op.NS_MGMT, ns_create, _UNITS, _LBAF, doc="Namespace Management, create"),
    _admin("NS_MGMT$delete", op.NS_MGMT, ns_delete, _NSID, doc="Namespace Management, delete"),
    _admin("NS_ATTACH$attach", op.NS_ATTACH, ns_attach, _NSID, doc="Namespace Attachment, attach"),
    _admin("NS_ATTACH$detach", op.NS_ATTACH, ns_detach, _NSID, doc="Namespace Attachment, detach"),
    _admin("FW_COMMIT", op.FW_COMMIT, fw_commit, Param("slot", "choice", choices=(1, 2)),
           Param("action", "choice", choices=(op.FWACT_ACTV, op.FWACT_ACTIVATE_NOW)),
           doc="Firmware Commit: activate at the next reset (2) or now (3)"),
    Command("FORMAT_NVM", op.FORMAT_NVM, (ADMIN,), driver=on_namespace("FORMAT_NVM"),
            effects=declared("acs", op.FORMAT_NVM), params=(_NS, _LBAF), doc="Format NVM"),
    _admin("SANITIZE", op.SANITIZE_NVM, sanitize, doc="Sanitize, block erase"),
    _admin("ACME_NS_GROW", op.ACME_NS_GROW, acme_ns_grow, _NSID, _UNITS,
           doc="vendor-specific: grow a namespace in place"),
    _io("FLUSH", op.FLUSH, "Flush"),
    _io("READ", op.READ, "Read"),
    _io("WRITE", op.WRITE, "Write"),
    _io("WRITE_ZEROES", op.WRITE_ZEROES, "Write Zeroes"),
)
