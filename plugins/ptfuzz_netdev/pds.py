"""AMD/Pensando pds: firmware whose operations carry their own scope, pds_core, and pds fwctl's commands.

fwctl: ``drivers/fwctl/pds/main.c`` (7.3.4).  The firmware lists endpoints
(``PDS_FWCTL_CMD_QUERY``, entity ROOT; read once at probe,
``pdsfc_init_endpoints()``) and, per endpoint, operations with an attribute
each (entity ENDPOINT).  ``pdsfc_get_operations()`` turns the attribute into
the scope the operation needs; ``pdsfc_validate_rpc()`` fetches an endpoint's
list on its first use and keeps it until the device goes away.  The endpoint
and operation ids and what each operation does are the firmware's and appear
in no kernel source: the ones here are made up, stated once.  Simplified, once: an
RPC carries no payload buffers; ``pdsfc_fw_rpc()``'s ``memdup_user()`` of ``in.payload``,
``kzalloc()`` of ``out.len`` and ``copy_to_user()`` come after every check and are not
modelled (the lengths are: ``RPC_IN_LEN``/``RPC_OUT_LEN``).

Firmware variants: ``pds`` keeps every operation's attribute across a firmware
update; ``pds-scope-update``'s second image turns ``port.stage`` (staged
link settings, live at the next reset: attribute WRITE) into an immediate
link-speed change and honestly lists it as DEBUG_WRITE.  The model assumes
that ``devlink dev flash`` on pds_core installs and activates the image and
that the fwctl auxiliary device, and with it the cached list, survives the
restart (the reference notes' §4.4 item 3; unverified).

The netdev on the card belongs to ionic (``drivers/net/ethernet/pensando/ionic``),
which programs the LIF and port through its adminq: ``IONIC_CMD_LIF_SETATTR``
and ``IONIC_CMD_PORT_SETATTR`` here; their opcode values were not verified and
are given as 0.
"""

from __future__ import annotations

import errno
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from fuzzer import (
    Args,
    Caller,
    Command,
    Device,
    Effect,
    Firmware,
    Layout,
    Param,
    Reply,
    Slot,
    World,
    fwctl,
)

from .driver import NetDriver, recover
from .state import PDS

E = Effect

# include/linux/pds/pds_adminq.h
CMD_IDENT, CMD_RPC, CMD_QUERY = 70, 71, 72  # enum pds_fwctl_cmd_opcode
RPC_ROOT, RPC_ENDPOINT = 0, 1  # enum pds_fwctl_query_entity
ATTR_READ, ATTR_DEBUG_READ, ATTR_WRITE, ATTR_DEBUG_WRITE, ATTR_SYNC = 0x00, 0x02, 0x04, 0x08, 0x10
ATTR_OTHER = 0x20  # any other attribute: pdsfc_get_operations() maps it to DEBUG_WRITE_FULL
# include/linux/pds/pds_core_if.h enum pds_core_status_code (7.3.4)
STATUS_OK, STATUS_EINVAL = 0, 14
STATUS_NAMES = {STATUS_OK: "PDS_RC_SUCCESS", STATUS_EINVAL: "PDS_RC_EINVAL"}
#: pds_core dev.c pdsc_err_to_errno() (7.3.4), for the statuses the modelled firmware answers
STATUS_ERRNO = {STATUS_EINVAL: errno.EINVAL}


def scope_of(attr: int) -> str:
    """pdsfc_get_operations(): "Translate FW command attribute to fwctl scope"."""
    if attr in (ATTR_READ, ATTR_WRITE, ATTR_SYNC):
        return fwctl.CONFIGURATION
    if attr == ATTR_DEBUG_READ:
        return fwctl.DEBUG_READ_ONLY
    if attr == ATTR_DEBUG_WRITE:
        return fwctl.DEBUG_WRITE
    return fwctl.DEBUG_WRITE_FULL


@attrs.frozen
class Operation:
    """One firmware operation: where it lives, its attribute, and the field it writes (None: reads)."""

    name: str
    ep: int
    id: int
    attr: int
    field: str | None
    effect: int


PORT_EP, DEBUG_EP = 1, 2
ENDPOINTS = (PORT_EP, DEBUG_EP)
NO_SUCH_EP = 7
V1 = (
    Operation("port.get", PORT_EP, 0x1, ATTR_READ, None, E.NONE),
    Operation("port.stage", PORT_EP, 0x2, ATTR_WRITE, "nvm.config", E.CONFIG_COLD_RESET),
    Operation("port.phy_write", PORT_EP, 0x3, ATTR_DEBUG_WRITE, "phy.regs", E.CONFIG_IMMEDIATE),
    Operation("dbg.read", DEBUG_EP, 0x1, ATTR_DEBUG_READ, None, E.NONE),
    Operation("dbg.raw", DEBUG_EP, 0x2, ATTR_OTHER, "dbg.config", E.LOG_IMMEDIATE),
)
#: pds-scope-update's second image: port.stage now applies the speed at once, and says so
V2_RESCOPED = tuple(
    attrs.evolve(op, attr=ATTR_DEBUG_WRITE, field="link.speed", effect=E.CONFIG_IMMEDIATE)
    if op.name == "port.stage" else op for op in V1)


def operations(dev: Device) -> tuple[Operation, ...]:
    """The running image's operation table."""
    images: Mapping[int, tuple[Operation, ...]] = dev.info["images"]
    return images[min(dev.state["fw.running"], max(images))]


def _find(dev: Device, ep: int, op: int) -> Operation | None:
    return next((o for o in operations(dev) if (o.ep, o.id) == (ep, op)), None)


# ----------------------------------------------------------------------------- firmware


def _ident(dev: Device, args: Args) -> Reply:
    """PDS_FWCTL_CMD_IDENT: struct pds_fwctl_ident, of which the model keeps the two size limits."""
    return Reply(out={"max_req_sz": dev.info["max_req_sz"], "max_resp_sz": dev.info["max_resp_sz"]})


def _query(dev: Device, args: Args) -> Reply:
    """PDS_FWCTL_CMD_QUERY: the endpoint list, or one endpoint's (id, attribute) list."""
    if args["entity"] == RPC_ROOT:
        return Reply(out={"endpoints": ENDPOINTS})
    ops = tuple((o.id, o.attr) for o in operations(dev) if o.ep == args["ep"])
    return Reply(out={"operations": ops}) if ops else Reply(rc=STATUS_EINVAL, why=f"no endpoint {args['ep']}")


def _rpc(dev: Device, args: Args) -> Reply:
    """PDS_FWCTL_CMD_RPC (``id`` is pds_fwctl_cmd.op): the firmware runs the operation, whoever asks."""
    op = _find(dev, args["ep"], args["id"])
    if op is None:
        return Reply(rc=STATUS_EINVAL, why=f"no operation {args['id']:#x} on endpoint {args['ep']}")
    if op.field is not None:
        dev.state[op.field] = args.get("value", 0)
    return Reply()


def _setattr(dev: Device, args: Args) -> Reply:
    """ionic's LIF/PORT_SETATTR: one attribute, named by the field it sets."""
    dev.state[args["field"]] = args["value"]
    if args["field"] == "link.admin":
        dev.state["link.oper"] = args["value"]
    return Reply()


def _install(dev: Device, args: Args) -> Reply:
    """pds_core flash: download, install and activate; the firmware restarts on the new image."""
    st = dev.state
    st["fw.running"] = st["fw.running"] + 1
    st["rings"], st["link.oper"] = 0, 0
    st["func.resets"] = st["func.resets"] + 1
    return Reply()


FIRMWARE = (
    Firmware("PDS_FWCTL_CMD_IDENT", CMD_IDENT, _ident),
    Firmware("PDS_FWCTL_CMD_QUERY", CMD_QUERY, _query),
    Firmware("PDS_FWCTL_CMD_RPC", CMD_RPC, _rpc, effects=lambda args, dev: _declared(dev, args)),
    Firmware("IONIC_CMD_LIF_SETATTR", 0, _setattr, effects=E.CONFIG_IMMEDIATE),
    Firmware("IONIC_CMD_PORT_SETATTR", 0, _setattr, effects=E.CONFIG_IMMEDIATE),
    Firmware("PDS_CORE_CMD_FW_CONTROL", 0, _install, effects=E.CONFIG_IMMEDIATE),
)


def _declared(dev: Device, args: Args) -> int:
    op = _find(dev, args.get("ep", 0), args.get("id", 0))
    return 0 if op is None else op.effect


# ----------------------------------------------------------------------------- the driver (pds_core + ionic)

#: ionic programs the LIF (mtu, mac, rings) and the port (state, speed, pause)
_PORT_FIELDS = frozenset({"link.admin", "link.speed", "link.pause"})


def program(world: World, settings: Mapping[str, Any]) -> None:
    for field, value in settings.items():
        op = "IONIC_CMD_PORT_SETATTR" if field in _PORT_FIELDS else "IONIC_CMD_LIF_SETATTR"
        world.mailbox(op, field=field, value=value)


def probe(world: World) -> None:
    """pdsfc_probe(): pdsfc_identify() (kept as pdsfc->ident) and pdsfc_init_endpoints(); operations wait."""
    ident = world.mailbox("PDS_FWCTL_CMD_IDENT")
    world.kernel["pds_ident"] = dict(ident.out)
    reply = world.mailbox("PDS_FWCTL_CMD_QUERY", entity=RPC_ROOT)
    world.kernel["pds_endpoints"] = tuple(reply.out["endpoints"])
    world.kernel["pds_ops"] = {}


def flash(world: World) -> Reply:
    """pds_core devlink flash, then the firmware restart pds_core's health work recovers from."""
    world.mailbox("PDS_CORE_CMD_FW_CONTROL")
    recover(world, DRIVER)
    return Reply()


def fw_activate(world: World) -> Reply:
    return Reply(errno=errno.EOPNOTSUPP, why="pds_core has no devlink reload fw_activate")


def remove(world: World) -> None:
    """pdsfc_remove(): pdsfc_free_operations(), pdsfc_free_endpoints()."""
    world.kernel["pds_endpoints"] = ()
    world.kernel["pds_ops"] = {}


DRIVER = NetDriver("pds", "drivers/net/ethernet/amd/pds_core, drivers/net/ethernet/pensando/ionic",
                   program, flash, fw_activate, probe=probe, remove=remove)


def get_operations(dev: Device, ep: int) -> dict[int, str] | None:
    """pdsfc_get_operations(): ask the firmware for ``ep``'s operations and their scopes."""
    reply = dev.execute("PDS_FWCTL_CMD_QUERY", {"entity": RPC_ENDPOINT, "ep": ep})
    if reply.rc:
        return None
    return {op: scope_of(attr) for op, attr in reply.out["operations"]}


# ----------------------------------------------------------------------------- fwctl commands

VALUE = Param("value", "int", 0, 3)


def _pdsfc_fw_rpc(op: Operation) -> Callable[[World, Args, Caller], Reply]:
    def pdsfc_fw_rpc(world: World, args: Args, caller: Caller) -> Reply:
        """pdsfc_fw_rpc() (7.3.4): PDS_FWCTL_CMD_RPC with the endpoint and operation as given.

        A completion status is an error of the ioctl: pdsc_adminq_post() turns it into an errno
        (pdsc_err_to_errno()) and pdsfc_fw_rpc() returns ERR_PTR(err), so ``out.retval`` is set
        only on success, from the completion's own ``err`` field (0 on the modelled firmware).
        """
        if not world.kernel["bound"]:
            return Reply(errno=errno.ENODEV, why="fwctl_unregister(): the pds_core device is gone")
        reply = world.mailbox("PDS_FWCTL_CMD_RPC", ep=args["ep"], id=op.id, value=args.get("value", 0))
        if reply.rc:
            status = STATUS_NAMES.get(reply.rc, hex(reply.rc))
            return Reply(rc=reply.rc, errno=STATUS_ERRNO.get(reply.rc, errno.EIO),
                         why=f"{status}: {reply.why}" if reply.why else status)
        return Reply(out={"retval": 0}, why=reply.why)

    pdsfc_fw_rpc.__name__ = f"pdsfc_fw_rpc_{op.name.replace('.', '_')}"
    return pdsfc_fw_rpc


def _ep(op: Operation) -> Param:
    """fwctl_rpc_pds.in.ep: the operation's endpoint, or one the firmware does not have."""
    return Param("ep", "choice", choices=(op.ep, NO_SUCH_EP))


def _effects(op: Operation) -> Callable[[Args, Device], int]:
    def effects(args: Args, dev: Device) -> int:
        return _declared(dev, {"ep": args["ep"], "id": op.id})

    return effects


COMMANDS = tuple(
    Command(f"RPC${op.name}", op.id, (PDS,), driver=_pdsfc_fw_rpc(op), effects=_effects(op),
            params=(_ep(op), VALUE) if op.field else (_ep(op),))
    for op in V1
)


#: struct fwctl_rpc_pds (include/uapi/fwctl/pds.h): in {op, ep, rsvd, len, payload}, out {retval,
#: rsvd[2], len, payload}: 48 bytes the driver casts the request to.  ``in.len``/``out.len`` size
#: the caller's payload buffers, which pdsfc_validate_rpc() bounds by the firmware's ident
#: (``max_req_sz``/``max_resp_sz``, device info) before anything else.
RPC_PDS_SIZE = 48
RPC_IN_LEN = Param("rpc_in_len", "size", 0, 0xFFFFFFFF, natural=0, marks=("max_req_sz",),
                   doc="fwctl_rpc_pds in.len: the request payload's length (0: no payload)")
RPC_OUT_LEN = Param("rpc_out_len", "size", 0, 0xFFFFFFFF, natural=0, marks=("max_resp_sz",),
                    doc="fwctl_rpc_pds out.len: the result buffer's length (0: none)")
ENVELOPE = fwctl.envelope(Layout(
    (Slot("opcode", 0, 4), Slot("ep", 4, 4), Slot("rpc_in_len", 12, 4), Slot("rpc_out_len", 36, 4)),
    size=RPC_PDS_SIZE, out=0,
), out_natural="in", extra=(RPC_IN_LEN, RPC_OUT_LEN))  # pds answers in the request buffer

