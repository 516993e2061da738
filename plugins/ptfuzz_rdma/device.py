"""An mlx5 HCA's firmware as ptfuzz sees it: an object table, global state, commands.

Every firmware object (QP, CQ, PD, MKEY, TIR, ..., general objects, user
contexts) is one state key ``kind:id`` (``general:TYPE.id`` for general
objects, whose ids are unique only per type) holding ``Obj(uid, state)``:
the uid that created it and what ``MODIFY`` last set.  Global state (HCA
caps, vport contexts, port registers) is plain fields.

Firmware rules modelled (the spec device; the kernel relies on them, linux
``drivers/infiniband/hw/mlx5/devx.c`` says "FW isolates objects by uid" only in
comments): a command carries a uid; uid 0 is the kernel and may do anything;
another uid may modify, query or destroy only its own objects; global state
(SET_HCA_CAP of this function, vport contexts, port-control registers) is
uid 0's, except that a uid with TOOLS_RESOURCES may pre-configure other
functions and modify vport contexts ("allows commands to manipulate the
global device state", drivers/fwctl/mlx5/main.c).  The ``lax`` device finds
objects by id (and type) but never checks the owner.

Simplifications, once: payloads are a few abstract arguments (``id``,
``type``, ``value``, ``op_mod``, ``reg``, ``eqn``); ids are allocated as one more
than the largest live id of the kind.  One object reference is modelled, a CQ's
EQ (``create_cq_in`` ``cq_context.c_eqn``), because it is where firmware's uid
rule meets a kernel object userspace is meant to use: a uid may reference only
its own objects and those created with ``MLX5_SHARED_RESOURCE_UID`` (the rule
"net/mlx5: Set completion EQs as shared resources", c191f93454bc, 2019, was
written for: "so that they can be used by CQs with uid != 0"); uid 0 references
anything.  The other references (a QP's PD and CQs, an entry's table) are not:
a reference changes nothing in the referenced object here, so on the spec device
they could only refuse what the uid rule already refuses, and the model tracks
ownership, not topology.
MODIFY_CONG_STATUS and DELEGATE_VHCA_MANAGEMENT (which 7.3.4's fwctl lets through at any
scope) are minimal: each sets one global field nobody in the kernel owns (no 7.3.4 kernel
code sends either), congestion status for any live uid, delegation only for uid 0 or a
TOOLS_RESOURCES uid; what real firmware does with them beyond that is unknown.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import attrs
from ptfuzz_mlx5 import ifc

from fuzzer import ALWAYS, Args, Command, Device, DeviceVariant, Effect, Field, Firmware, Param, Reply

E = Effect


class Obj(NamedTuple):
    """One firmware object: the uid that created it, its state, and the uid that last set it.

    ``writer`` makes a modify visible even when it writes the value already
    there: the kernel's object was still written by someone else.
    """

    uid: int
    state: Any
    writer: int = 0


@attrs.frozen
class Kind:
    """One class of firmware object and its commands: a row of the device's table."""

    name: str
    create: str
    destroy: str
    query: str = ""
    modify: tuple[str, ...] = ()
    initial: Any = 0
    doc: str = ""
    #: objects a create names by id: (argument, kind), e.g. a CQ's ``eqn`` names an ``eq``
    refs: tuple[tuple[str, str], ...] = ()


KINDS = (
    Kind("pd", "ALLOC_PD", "DEALLOC_PD", doc="protection domain"),
    Kind("cq", "CREATE_CQ", "DESTROY_CQ", "QUERY_CQ", ("MODIFY_CQ",), doc="completion queue",
         refs=(("eqn", "eq"),)),
    Kind("qp", "CREATE_QP", "DESTROY_QP", "QUERY_QP",
         ("RST2INIT_QP", "INIT2RTR_QP", "RTR2RTS_QP", "2ERR_QP", "2RST_QP"), initial="RST",
         doc="queue pair; MODIFY is the state machine RST->INIT->RTR->RTS, any->ERR/RST"),
    Kind("srq", "CREATE_SRQ", "DESTROY_SRQ", "QUERY_SRQ", doc="shared receive queue"),
    Kind("mkey", "CREATE_MKEY", "DESTROY_MKEY", "QUERY_MKEY", doc="memory key"),
    Kind("tir", "CREATE_TIR", "DESTROY_TIR", "QUERY_TIR", ("MODIFY_TIR",), doc="transport interface receive"),
    Kind("tis", "CREATE_TIS", "DESTROY_TIS", "QUERY_TIS", ("MODIFY_TIS",), doc="transport interface send"),
    Kind("rqt", "CREATE_RQT", "DESTROY_RQT", "QUERY_RQT", ("MODIFY_RQT",), doc="RSS indirection table"),
    Kind("rq", "CREATE_RQ", "DESTROY_RQ", "QUERY_RQ", ("MODIFY_RQ",), doc="receive queue"),
    Kind("sq", "CREATE_SQ", "DESTROY_SQ", "QUERY_SQ", ("MODIFY_SQ",), doc="send queue"),
    Kind("ft", "CREATE_FLOW_TABLE", "DESTROY_FLOW_TABLE", "QUERY_FLOW_TABLE", ("MODIFY_FLOW_TABLE",),
         doc="steering flow table"),
    Kind("fg", "CREATE_FLOW_GROUP", "DESTROY_FLOW_GROUP", "QUERY_FLOW_GROUP", doc="flow group"),
    Kind("fte", "SET_FLOW_TABLE_ENTRY", "DELETE_FLOW_TABLE_ENTRY", "QUERY_FLOW_TABLE_ENTRY",
         doc="flow table entry (SET_FLOW_TABLE_ENTRY with op_mod 0 creates it)"),
    Kind("general", "CREATE_GENERAL_OBJECT", "DESTROY_GENERAL_OBJECT", "QUERY_GENERAL_OBJECT",
         ("MODIFY_GENERAL_OBJECT",), doc="general objects; ids unique per type"),
    Kind("eq", "CREATE_EQ", "DESTROY_EQ", "QUERY_EQ", doc="event queue (DEVX may not create one)"),
    Kind("umem", "CREATE_UMEM", "DESTROY_UMEM", doc="registered user memory"),
    Kind("uctx", "CREATE_UCTX", "DESTROY_UCTX", "QUERY_UCTX", doc="user context: a uid and its capability bits"),
)
KIND_OF: dict[str, Kind] = {}
for _k in KINDS:
    for _op in (_k.create, _k.destroy, _k.query, *_k.modify):
        if _op:
            KIND_OF[_op] = _k
CREATES = frozenset(k.create for k in KINDS)
DESTROYS = frozenset(k.destroy for k in KINDS)
QUERIES = frozenset(k.query for k in KINDS if k.query)
MODIFIES = frozenset(op for k in KINDS for op in k.modify)

QP_TRANSITIONS = {"RST2INIT_QP": ("RST", "INIT"), "INIT2RTR_QP": ("INIT", "RTR"), "RTR2RTS_QP": ("RTR", "RTS")}

# ----------------------------------------------------------------------------- fields


def _owned_family(name: str, doc: str) -> Field:
    # An object is the kernel's exactly when the kernel believes it (it is in the
    # shadow); user objects never are, so ALWAYS is right for the family.
    return Field(name, E.CONFIG_IMMEDIATE, ALWAYS, doc, family=True)


FIELDS = (
    *(_owned_family(k.name, k.doc) for k in KINDS),
    Field("hca.caps", E.CONFIG_IMMEDIATE, ALWAYS,
          "mlx5 core sets this function's caps at probe (handle_hca_cap() in mlx5/core/main.c)"),
    Field("vf.caps", E.CONFIG_COLD_RESET, None,
          "SET_HCA_CAP in other-function mode pre-configures a VF; live at its next reset"),
    Field("nic_vport.mtu", E.CONFIG_IMMEDIATE, ALWAYS,
          "the netdev's MTU (mlx5_modify_nic_vport_mtu() from mlx5e_set_mtu())"),
    Field("hca_vport.ctx", E.CONFIG_IMMEDIATE, ALWAYS, "IB port context the RDMA core caches"),
    Field("esw_vport.ctx", E.CONFIG_IMMEDIATE, ALWAYS, "eswitch vport VLAN settings (mlx5 eswitch)"),
    Field("reg.PMTU", E.CONFIG_IMMEDIATE, ALWAYS, "port MTU register (mlx5_set_port_mtu(), mlx5/core/port.c)"),
    Field("reg.PAOS", E.CONFIG_IMMEDIATE, ALWAYS,
          "port admin status (mlx5_set_port_admin_status(), mlx5/core/port.c)"),
    Field("diag.params", E.LOG_IMMEDIATE, None, "diagnostic counter sampling (SET_DIAGNOSTIC_PARAMS)"),
    Field("qp.postpone_timeout", E.CONFIG_IMMEDIATE, None, "POSTPONE_CONNECTED_QP_TIMEOUT, global"),
    Field("cong.status", E.CONFIG_IMMEDIATE, None,
          "RoCE congestion control enable (MODIFY_CONG_STATUS); no 7.3.4 kernel code sends it"),
    Field("vhca.delegated", E.CONFIG_IMMEDIATE, None,
          "which function's management is delegated (DELEGATE_VHCA_MANAGEMENT); no 7.3.4 kernel code sends it"),
)


#: Simplification: the firmware holds at most this many objects (real HCAs allow millions; the
#: limits are log_max_* HCA caps).  A fuzzed sequence never comes near it; it keeps a hostile
#: 100,000-step replay linear, since every step snapshots and scans the object table.
MAX_OBJECTS = 512


def initial_state() -> dict[str, Any]:
    return {
        "hca.caps": 0,
        "vf.caps": 0,
        "nic_vport.mtu": 0,
        "hca_vport.ctx": 0,
        "esw_vport.ctx": 0,
        "reg.PMTU": 0,
        "reg.PAOS": 0,
        "diag.params": 0,
        "qp.postpone_timeout": 0,
        "cong.status": 0,
        "vhca.delegated": 0,
    }


#: the global state keys; every other key is a firmware object
GLOBALS = frozenset(initial_state())


# ----------------------------------------------------------------------------- firmware helpers


def _ok(**out: Any) -> Reply:
    return Reply(rc=ifc.STAT_OK, out=out)


def _fail(status: int, why: str) -> Reply:
    return Reply(rc=status, why=why)


def obj_key(kind: str, ident: int, gtype: str = "") -> str:
    return f"general:{gtype}.{ident}" if kind == "general" else f"{kind}:{ident}"


def has_room(state: dict[str, Any], count: int = 1) -> bool:
    """Whether the firmware can create ``count`` more objects (O(1): every other key is global state)."""
    return len(state) - len(GLOBALS) + count <= MAX_OBJECTS


def _next_id(state: dict[str, Any], prefix: str) -> int:
    ids = [int(k[len(prefix):]) for k in state if k.startswith(prefix)]
    return max(ids, default=0) + 1


def uid_caps(state: dict[str, Any], uid: int) -> int | None:
    """The capability bits of a live uid; None if the uid does not exist."""
    obj = state.get(f"uctx:{uid}")
    return None if obj is None else int(obj.state)


def objects_of(state: dict[str, Any], uid: int) -> list[str]:
    """Every firmware object created by ``uid``, and its context."""
    keys = [k for k, v in state.items() if isinstance(v, Obj) and v.uid == uid]
    if f"uctx:{uid}" in state:
        keys.append(f"uctx:{uid}")
    return keys


def _valid_uid(dev: Device, uid: int) -> bool:
    return uid in (0, ifc.SHARED_UID) or uid_caps(dev.state, uid) is not None


def _tools(dev: Device, uid: int) -> bool:
    caps = uid_caps(dev.state, uid)
    return caps is not None and bool(caps & ifc.UCTX_CAP_TOOLS_RESOURCES)


def _may_touch(dev: Device, uid: int, obj: Obj) -> bool:
    if uid == 0 or not dev.info["uid_isolation"]:
        return True
    return obj.uid == uid  # SHARED_UID objects may be referenced, not changed


def _may_reference(dev: Device, uid: int, obj: Obj) -> bool:
    """Firmware's rule for naming another object in a create: the uid's own, or a shared one."""
    if uid == 0 or not dev.info["uid_isolation"]:
        return True
    return obj.uid in (uid, ifc.SHARED_UID)


def _references(dev: Device, kind: Kind, args: Args) -> Reply | None:
    """Check the objects a create names (a CQ's EQ), as the firmware does; None if all may be used."""
    uid = args.get("uid", 0)
    for name, target in kind.refs:
        if name not in args:
            continue
        key = obj_key(target, args[name])
        obj = dev.state.get(key)
        if obj is None:
            return _fail(ifc.BAD_RES, f"{name} {args[name]}: no {key}")
        if not _may_reference(dev, uid, obj):
            return _fail(ifc.BAD_PARAM, f"{name} {args[name]}: {key} belongs to uid {obj.uid}, not shared "
                                        f"(MLX5_SHARED_RESOURCE_UID); uid {uid} may not use it")
    return None


def _target(dev: Device, kind: Kind, args: Args) -> tuple[str, Obj] | Reply:
    """Find the object a modify/query/destroy names, as the firmware does."""
    uid = args.get("uid", 0)
    if not _valid_uid(dev, uid):
        return _fail(ifc.BAD_PARAM, f"uid {uid} does not exist")
    key = obj_key(kind.name, args.get("id", 0), args.get("type", ""))
    obj = dev.state.get(key)
    if obj is None:
        return _fail(ifc.BAD_RES, f"no {key}")
    if not _may_touch(dev, uid, obj):
        return _fail(ifc.BAD_PARAM, f"{key} belongs to uid {obj.uid}, command has uid {uid}")
    return key, obj


# ----------------------------------------------------------------------------- object handlers


def create(kind: Kind) -> Callable[[Device, Args], Reply]:
    def handler(dev: Device, args: Args) -> Reply:
        uid = args.get("uid", 0)
        if not _valid_uid(dev, uid):
            return _fail(ifc.BAD_PARAM, f"uid {uid} does not exist")
        st = dev.state
        if not has_room(st):
            return _fail(ifc.LIM_ERR, f"firmware object table full ({MAX_OBJECTS} objects, a model limit)")
        if kind.name == "general":
            gtype = args.get("type", "")
            if gtype not in ifc.GENERAL_TYPES:
                return _fail(ifc.BAD_PARAM, f"unsupported general object type {gtype!r}")
            ident = _next_id(st, f"general:{gtype}.")
        elif kind.name == "uctx":
            if uid != 0:
                return _fail(ifc.BAD_PARAM, "only the kernel creates user contexts")
            ident = _next_id(st, "uctx:")
            st[f"uctx:{ident}"] = Obj(0, args.get("value", 0), 0)
            return _ok(id=ident)
        else:
            ident = _next_id(st, f"{kind.name}:")
        refused = _references(dev, kind, args)
        if refused is not None:
            return refused
        # the create's object context (an SA's keys, a CQ's moderation) is its initial state
        st[obj_key(kind.name, ident, args.get("type", ""))] = Obj(uid, kind.initial or args.get("value", 0), uid)
        return _ok(id=ident)

    handler.__name__ = f"create_{kind.name}"
    return handler


def destroy(kind: Kind) -> Callable[[Device, Args], Reply]:
    def handler(dev: Device, args: Args) -> Reply:
        if kind.name == "uctx":
            uid = args.get("id", 0)
            if args.get("uid", 0) != 0:
                return _fail(ifc.BAD_PARAM, "only the kernel destroys user contexts")
            if f"uctx:{uid}" not in dev.state:
                return _fail(ifc.BAD_RES, f"no uctx:{uid}")
            left = [k for k in objects_of(dev.state, uid) if k != f"uctx:{uid}"]
            if left:
                return _fail(ifc.RES_BUSY, f"uid {uid} still owns {left}")
            del dev.state[f"uctx:{uid}"]
            return _ok()
        found = _target(dev, kind, args)
        if isinstance(found, Reply):
            return found
        del dev.state[found[0]]
        return _ok()

    handler.__name__ = f"destroy_{kind.name}"
    return handler


def query(kind: Kind) -> Callable[[Device, Args], Reply]:
    def handler(dev: Device, args: Args) -> Reply:
        found = _target(dev, kind, args)
        if isinstance(found, Reply):
            return found
        return _ok(uid=found[1].uid, state=found[1].state)

    handler.__name__ = f"query_{kind.name}"
    return handler


def modify(kind: Kind, op: str) -> Callable[[Device, Args], Reply]:
    def handler(dev: Device, args: Args) -> Reply:
        found = _target(dev, kind, args)
        if isinstance(found, Reply):
            return found
        key, obj = found
        if kind.name == "qp":
            if op in QP_TRANSITIONS:
                src, dst = QP_TRANSITIONS[op]
                if obj.state != src:
                    return _fail(ifc.BAD_QP_STATE, f"{key} is in {obj.state}, not {src}")
                new: Any = dst
            else:
                new = "ERR" if op == "2ERR_QP" else "RST"
        else:
            new = args.get("value", 0)
        dev.state[key] = Obj(obj.uid, new, args.get("uid", 0))
        return _ok()

    handler.__name__ = f"{op.lower()}"
    return handler


# ----------------------------------------------------------------------------- global handlers


def query_global(dev: Device, args: Args) -> Reply:
    return _ok() if _valid_uid(dev, args.get("uid", 0)) else _fail(ifc.BAD_PARAM, "no such uid")


def set_hca_cap(dev: Device, args: Args) -> Reply:
    """FW "limits SET_HCA_CAP on the tools UID to only the other function mode" (fwctl/mlx5/main.c)."""
    uid = args.get("uid", 0)
    if args.get("other_function", False):
        if uid != 0 and not _tools(dev, uid):
            return _fail(ifc.BAD_PARAM, "other-function caps need uid 0 or TOOLS_RESOURCES")
        dev.state["vf.caps"] = args.get("value", 0)
        return _ok()
    if uid != 0:
        return _fail(ifc.BAD_PARAM, "only uid 0 sets this function's caps")
    dev.state["hca.caps"] = args.get("value", 0)
    return _ok()


def modify_vport(field: str) -> Callable[[Device, Args], Reply]:
    def handler(dev: Device, args: Args) -> Reply:
        uid = args.get("uid", 0)
        if uid != 0 and not _tools(dev, uid):
            return _fail(ifc.BAD_PARAM, "vport contexts need uid 0 or TOOLS_RESOURCES")
        dev.state[field] = args.get("value", 0)
        return _ok()

    handler.__name__ = f"modify_{field.replace('.', '_')}"
    return handler


def access_reg(dev: Device, args: Args) -> Reply:
    """op_mod 0 writes, 1 reads (mlx5_core_access_reg() sets op_mod = !write)."""
    uid, reg = args.get("uid", 0), args.get("reg", ifc.PMTU)
    if not _valid_uid(dev, uid):
        return _fail(ifc.BAD_PARAM, "no such uid")
    if reg not in ifc.REGISTERS:
        return _fail(ifc.BAD_PARAM, f"unknown register {reg!r}")
    if args.get("op_mod", 1) != 0:
        return _ok(value=dev.state[f"reg.{reg}"])
    if uid != 0:
        return _fail(ifc.BAD_PARAM, f"{reg} is a port-control register; only uid 0 writes it")
    dev.state[f"reg.{reg}"] = args.get("value", 0)
    return _ok()


def set_global(field: str, tools_only: bool) -> Callable[[Device, Args], Reply]:
    def handler(dev: Device, args: Args) -> Reply:
        uid = args.get("uid", 0)
        if not _valid_uid(dev, uid) or (tools_only and uid != 0 and not _tools(dev, uid)):
            return _fail(ifc.BAD_PARAM, f"uid {uid} may not set {field}")
        dev.state[field] = args.get("value", 0)
        return _ok()

    handler.__name__ = f"set_{field.replace('.', '_')}"
    return handler


# ----------------------------------------------------------------------------- the command table

UID = Param("uid", "int", 0, 3, doc="the uid in the command header (the kernel overwrites it)")
ID = Param("id", "int", 0, 4, doc="object id")
GTYPE = Param("type", "choice", choices=tuple(ifc.GENERAL_TYPES), doc="general object type")
VALUE = Param("value", "int", 0, 3)
OP_MOD = Param("op_mod", "choice", choices=(1, 0), doc="ACCESS_REG: 1 reads, 0 writes")
REG = Param("reg", "choice", choices=tuple(ifc.REGISTERS))
OTHER_FUNCTION = Param("other_function", "bool")


def _set_hca_cap_effects(args: Args, dev: Device) -> int:
    return E.CONFIG_COLD_RESET if args.get("other_function") else E.CONFIG_IMMEDIATE


def _access_reg_effects(args: Args, dev: Device) -> int:
    return E.CONFIG_IMMEDIATE if args.get("op_mod", 1) == 0 else E.NONE


FWCTL = "rdma.fwctl"
#: open(2)/close(2) of /dev/fwctl/fwctlN: each open is a uctx of its own (mlx5ctl_open_uctx())
FWCTL_FD = "rdma.fwctl.fd"
DEVX = "rdma.devx"
#: FW commands an fwctl user may try (mlx5ctl_validate_rpc() decides which pass).
FWCTL_OPS = frozenset({
    "QUERY_HCA_CAP", "QUERY_ADAPTER", "SET_HCA_CAP", "QUERY_OTHER_HCA_CAP", "QUERY_NIC_VPORT_CONTEXT",
    "MODIFY_NIC_VPORT_CONTEXT", "QUERY_HCA_VPORT_CONTEXT", "MODIFY_HCA_VPORT_CONTEXT",
    "MODIFY_ESW_VPORT_CONTEXT", "ACCESS_REG", "ACCESS_REGISTER_USER", "NOP", "QUERY_DIAGNOSTIC_PARAMS",
    "SET_DIAGNOSTIC_PARAMS", "POSTPONE_CONNECTED_QP_TIMEOUT", "MODIFY_CONG_STATUS",
    "DELEGATE_VHCA_MANAGEMENT", "QUERY_QP", "2ERR_QP", "DESTROY_QP",
    "CREATE_MKEY", "MODIFY_GENERAL_OBJECT", "QUERY_UCTX",
})


def _fw(op: str, handler: Callable[[Device, Args], Reply], params: tuple[Param, ...],
        effects: Effect | Callable[[Args, Device], int]) -> Command | Firmware:
    """A firmware command: one fwctl users may send as is, or one only kernel code sends."""
    if op in FWCTL_OPS:
        return Command(op, ifc.OPCODES[op], (FWCTL,), handler, effects=effects, params=(UID, *params))
    return Firmware(op, ifc.OPCODES[op], handler, effects=effects, params=(UID, *params))


def _object_commands() -> list[Command | Firmware]:
    out = []
    for k in KINDS:
        typed = (GTYPE,) if k.name == "general" else ()
        out.append(_fw(k.create, create(k), (*typed, VALUE) if k.name == "uctx" else typed, E.CONFIG_IMMEDIATE))
        out.append(_fw(k.destroy, destroy(k), (ID, *typed), E.CONFIG_IMMEDIATE))
        if k.query:
            out.append(_fw(k.query, query(k), (ID, *typed), E.NONE))
        for op in k.modify:
            out.append(_fw(op, modify(k, op), (ID, *typed, VALUE), E.CONFIG_IMMEDIATE))
    return out


FIRMWARE = (
    *_object_commands(),
    *(_fw(op, query_global, (), E.NONE) for op in (
        "QUERY_HCA_CAP", "QUERY_ADAPTER", "QUERY_OTHER_HCA_CAP", "QUERY_ESW_FUNCTIONS",
        "QUERY_ESW_VPORT_CONTEXT", "QUERY_NIC_VPORT_CONTEXT", "QUERY_HCA_VPORT_CONTEXT", "NOP",
        "QUERY_DIAGNOSTIC_PARAMS", "QUERY_LAG", "SYNC_STEERING", "QUERY_VUID",
    )),
    _fw("SET_HCA_CAP", set_hca_cap, (OTHER_FUNCTION, VALUE), _set_hca_cap_effects),
    _fw("MODIFY_NIC_VPORT_CONTEXT", modify_vport("nic_vport.mtu"), (VALUE,), E.CONFIG_IMMEDIATE),
    _fw("MODIFY_HCA_VPORT_CONTEXT", modify_vport("hca_vport.ctx"), (VALUE,), E.CONFIG_IMMEDIATE),
    _fw("MODIFY_ESW_VPORT_CONTEXT", modify_vport("esw_vport.ctx"), (VALUE,), E.CONFIG_IMMEDIATE),
    _fw("ACCESS_REG", access_reg, (REG, OP_MOD, VALUE), _access_reg_effects),
    _fw("ACCESS_REGISTER_USER", access_reg, (REG, OP_MOD, VALUE), _access_reg_effects),
    _fw("SET_DIAGNOSTIC_PARAMS", set_global("diag.params", tools_only=True), (VALUE,), E.LOG_IMMEDIATE),
    _fw("POSTPONE_CONNECTED_QP_TIMEOUT", set_global("qp.postpone_timeout", tools_only=False), (VALUE,),
        E.CONFIG_IMMEDIATE),
    _fw("MODIFY_CONG_STATUS", set_global("cong.status", tools_only=False), (VALUE,), E.CONFIG_IMMEDIATE),
    _fw("DELEGATE_VHCA_MANAGEMENT", set_global("vhca.delegated", tools_only=True), (VALUE,), E.CONFIG_IMMEDIATE),
)
FW_BY_OP = {c.op: c for c in FIRMWARE}


def fw_effects(op: str, args: Args, dev: Device) -> int:
    """What the firmware declares for ``op`` with ``args`` (no effects log: the model's table)."""
    cmd = FW_BY_OP.get(op)
    return 0 if cmd is None else cmd.declared(args, dev)


#: ``vhca_tunnel_commands`` is the firmware's HCA capability bit devx.c reads with
#: MLX5_CAP_GEN_64(dev->mdev, vhca_tunnel_commands) (7.3.4); the driver never sets it, the
#: firmware reports it, so it is a fact of the device: off on spec and lax, on for ``tunnel``.
#: Simplification, once: the modelled firmware does nothing with a command's vhca_tunnel_id
#: (the kernel does not hand it on, see ``kernel.fw_args``): a tunnelled command runs on this
#: HCA's own objects under the DEVX uid, with the firmware's usual uid checks.  Real firmware
#: routes it to the VHCA named and "tracking is done in FW", which the model cannot check.
SPEC = DeviceVariant("spec", initial_state, info={"uid_isolation": True, "vhca_tunnel_commands": False},
                     doc="firmware enforces uid isolation on objects")
TUNNEL = DeviceVariant("tunnel", initial_state, info={"uid_isolation": True, "vhca_tunnel_commands": True},
                       doc="spec firmware with the vhca_tunnel_commands capability (DEVX_OTHER passes any "
                           "opcode with a non-zero vhca_tunnel_id)")
LAX = DeviceVariant("lax", initial_state, info={"uid_isolation": False, "vhca_tunnel_commands": False},
                    doc="firmware finds objects by id and type but never checks the owner")
