"""The DEVX uverbs methods as commands on the ``rdma.devx`` channel.

Each method carries a firmware command and runs through kernel code
(``driver=``), not straight to the firmware.  Like syzkaller's
``ioctl$DEVX_OBJ_CREATE_QP``, a method comes in one variant per object kind
(``OBJ_MODIFY$general``): each variant draws its handle from its own bundle
and its opcode from its kind's, which keeps the odds of the interesting
combinations (a general object's handle, a general object command, another
type) high.  Opcodes devx.c must refuse are offered too (a destroy smuggled
through MODIFY, an EQ through CREATE), so that a policy missing a check has
something to let through.  Declared effects are the carried command's.

Methods (devx.c, 7.3.4): OTHER, OBJ_CREATE/MODIFY/QUERY/DESTROY, UMEM_REG and
QUERY_EQN are modelled, and verbs CQ/QP creation, whose handles the object methods
accept (devx_is_valid_obj_id()).  Left out, each for a stated reason:
OBJ_ASYNC_QUERY runs OBJ_QUERY's checks in the same order (vhca_tunnel_id,
devx_get_uid(), devx_is_obj_query_cmd(), devx_is_valid_obj_id()) and sends the same
query; what it adds, the event FD and its MAX_ASYNC_BYTES_IN_USE budget (-EAGAIN),
touches no device state.  SUBSCRIBE_EVENT sends no firmware command (the subscriptions
are the kernel's xarrays).  QUERY_UAR answers bfregn_to_uar_index() from the caller's
own bfregs, and devx.c's security note says a foreign UAR id in an object only lets
others ring its own doorbells; the model has no UARs or doorbells.  Verbs SRQ, WQ and
RWQ_IND_TBL handles, and a RAW_PACKET QP's four ids, are accepted by the same
comparison as the CQ's and QP's and are not drawn.
"""

from __future__ import annotations

from typing import Any

import attrs
from ptfuzz_mlx5 import ifc

from fuzzer import Args, Command, Device, Driver, Effect, Param

from . import kernel
from .device import DEVX, FWCTL_FD, GTYPE, OP_MOD, OTHER_FUNCTION, REG, UID, VALUE, fw_effects


@attrs.frozen
class DevxKind:
    """One object kind as DEVX userspace drives it."""

    name: str
    create: str
    modify: tuple[str, ...] = ()
    query: tuple[str, ...] = ()
    #: what the create carries besides the header (a CQ's EQ number)
    create_params: tuple[Param, ...] = ()


#: create_cq_in cq_context.c_eqn: the EQ a DEVX CQ reports to.  Drawn like a size (see
#: VHCA_TUNNEL_ID): mostly at what a correct caller writes, the eqn QUERY_EQN answers for
#: vector 0 (``kernel.FIRST_COMP_EQN``), left out of a stored step when it is that, else 0 (no
#: EQ), 1 (the kernel's async EQ, uid 0 and never shared) or 3 (vector 1's EQ once created,
#: or the caller's own).
EQN = Param("eqn", "size", 0, 3, natural=kernel.FIRST_COMP_EQN,
            doc="create_cq_in cq_context c_eqn: the EQ the CQ reports completions to")
VECTOR = Param("vector", "choice", choices=(0, 1, 2), doc="completion vector (2 is past max_comp_eqs)")

#: The kinds userspace creates through DEVX, and the opcodes it sends on their handles.
#: CREATE_EQ is not a DEVX create (devx_is_obj_create_cmd() refuses it).  Five of
#: the kinds the firmware has: each variant is a rule, and every rule added
#: divides the time Hypothesis spends on the others.  Simplification (issue 17 #7):
#: devx_is_obj_create_cmd() (7.3.4) passes 29 opcodes (27 always, SET_FLOW_TABLE_ENTRY
#: with op_mod 0, CREATE_PSV with num_psv 1); these five, with the verbs CQ and QP, cover the id shapes devx_get_created_obj_id() and devx_get_obj_id() have:
#: an id firmware allocates per kind (CQ, QP, PD; also MKEY, SQ, RQ, RQT, TIR, TIS,
#: RMP, SRQ, XRC_SRQ, DCT, XRQ, TD, XRCD, Q and flow counters, header and reformat
#: contexts, scheduling elements, flow tables and groups), an id unique per general
#: object type, and a create the kernel cannot undo.  The kernel's own objects of the
#: other kinds are uid 0 or MLX5_SHARED_RESOURCE_UID (Q counters, the RDMA flow table,
#: rate-limit scheduling elements), which firmware lets other uids reference, never
#: change, as it does a kernel CQ.  Four creates take their id from the caller
#: (SET_FLOW_TABLE_ENTRY flow_index, ADD_VXLAN_UDP_DPORT port, SET_L2_TABLE_ENTRY
#: table_index, ATTACH_TO_MCG qpn): there the firmware's answer to an id already in
#: use decides, and no public source says what it is, so they are not modelled.
KINDS = (
    DevxKind("pd", "ALLOC_PD"),
    DevxKind("cq", "CREATE_CQ", ("MODIFY_CQ",), ("QUERY_CQ",), (EQN,)),
    DevxKind("qp", "CREATE_QP", ("2ERR_QP", "RST2INIT_QP", "DESTROY_QP"), ("QUERY_QP", "2ERR_QP")),
    DevxKind("general", "CREATE_GENERAL_OBJECT", ("MODIFY_GENERAL_OBJECT", "DESTROY_GENERAL_OBJECT"),
             ("QUERY_GENERAL_OBJECT",)),
    DevxKind("eq", "CREATE_EQ"),
)
#: DEVX_OTHER, one variant per shape of command.  The general ones
#: (devx_is_general_cmd()) first; then some it must refuse.
OTHER_VARIANTS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    # variant: (opcodes, payload fields)
    "query": (("QUERY_HCA_CAP", "QUERY_HCA_VPORT_CONTEXT", "QUERY_ESW_VPORT_CONTEXT", "QUERY_ESW_FUNCTIONS",
               "QUERY_NIC_VPORT_CONTEXT", "NOP"), ()),
    "reg": (("ACCESS_REGISTER_USER", "ACCESS_REG"), ("reg", "op_mod", "value")),
    "config": (("POSTPONE_CONNECTED_QP_TIMEOUT", "SET_HCA_CAP", "MODIFY_NIC_VPORT_CONTEXT",
                "SET_DIAGNOSTIC_PARAMS"), ("other_function", "value")),
    "object": (("2ERR_QP", "DESTROY_QP", "DESTROY_GENERAL_OBJECT", "CREATE_MKEY"), ("type", "obj_id")),
}

UCONTEXT = Param("ucontext", "handle", bundle="ucontext")
# Ids as choices, the first id firmware hands out first: the shrinker and the
# generator's bias to the first choice both land on ids that exist.
OBJ_ID = Param("obj_id", "choice", choices=(1, 2, 3, 0), doc="the object id written into the command")
CAP = Param("cap", "choice", choices=(0, ifc.UCTX_CAP_RAW_TX, ifc.UCTX_CAP_INTERNAL_DEV_RES,
                                      ifc.UCTX_CAP_TOOLS_RESOURCES),
            doc="uctx capability bits asked for; the kernel decides what it grants")
#: general_obj_in_cmd_hdr's 16-bit vhca_tunnel_id, which every DEVX command header carries.  Like CXL's
#: ``flags``/``rsvd`` it is a "size" to the engine: a field a correct caller leaves 0, drawn mostly
#: at 0 (else 1 or 0xffff), left out of a stored step when 0, shrunk back to 0.  devx.c (7.3.4)
#: reads it in devx_is_general_cmd() and refuses it non-zero in the OBJ_CREATE/MODIFY/QUERY handlers.
VHCA_TUNNEL_ID = Param("vhca_tunnel_id", "size", 0, 0xFFFF, natural=0,
                       doc="general_obj_in_cmd_hdr vhca_tunnel_id: a command for another VHCA, tunnelled by FW")
ANY_OBJECT = "devx_obj"
FIELD_PARAMS = {"reg": REG, "op_mod": OP_MOD, "value": VALUE, "other_function": OTHER_FUNCTION,
                "type": GTYPE, "obj_id": OBJ_ID}


def _carried(args: Args, dev: Device) -> int:
    return fw_effects(args["opcode"], kernel.fw_args(args), dev)


def _method(op: str, opcode: int, driver: Driver, params: tuple[Param, ...],
            produces: str | tuple[str, ...] = "", effects: Any = Effect.CONFIG_IMMEDIATE,
            doc: str = "") -> Command:
    return Command(op, opcode, (DEVX,), driver=driver, params=params, produces=produces,
                   effects=effects, doc=doc)


def _opcode(ops: tuple[str, ...]) -> Param:
    return Param("opcode", "choice", choices=ops)


def _variants(k: DevxKind) -> list[Command]:
    typed = (GTYPE,) if k.name == "general" else ()
    bundle = f"devx_{k.name}"
    handle = Param("obj", "handle", bundle=bundle)
    out = [_method(f"OBJ_CREATE${k.name}", ifc.OPCODES[k.create], kernel.obj_create,
                   (UCONTEXT, _opcode((k.create,)), *typed, *k.create_params, UID, VHCA_TUNNEL_ID),
                   produces=(bundle, ANY_OBJECT),
                   effects=_carried)]
    if k.modify:
        out.append(_method(f"OBJ_MODIFY${k.name}", ifc.OPCODES[k.modify[0]], kernel.obj_modify,
                           (handle, _opcode(k.modify), *typed, OBJ_ID, VALUE, UID, VHCA_TUNNEL_ID), effects=_carried))
    if k.query:
        out.append(_method(f"OBJ_QUERY${k.name}", ifc.OPCODES[k.query[0]], kernel.obj_query,
                           (handle, _opcode(k.query), *typed, OBJ_ID, UID, VHCA_TUNNEL_ID), effects=_carried))
    return out


# ``opcode`` is the carried firmware opcode where there is one; ALLOC_UCONTEXT
# and CLOSE are the uverbs core's, listed with the firmware command they send.
METHODS = (
    _method("ALLOC_UCONTEXT", ifc.OPCODES["CREATE_UCTX"], kernel.alloc_ucontext,
            (Param("devx", "choice", choices=(True, False), doc="MLX5_IB_ALLOC_UCTX_DEVX"), CAP),
            produces="ucontext",
            doc="open /dev/infiniband/uverbsN and allocate a ucontext"),
    *(cmd for k in KINDS for cmd in _variants(k)),
    _method("UMEM_REG", ifc.OPCODES["CREATE_UMEM"], kernel.umem_reg, (UCONTEXT, UID), produces=ANY_OBJECT),
    # verbs objects: devx_is_valid_obj_id() accepts their handles too (a CQ's and an RC QP's here)
    _method("VERBS_CREATE$cq", ifc.OPCODES["CREATE_CQ"], kernel.verbs_create_cq, (UCONTEXT, VECTOR),
            produces=("devx_cq", ANY_OBJECT), doc="ibv_create_cq through mlx5_ib: a CQ with the context's uid"),
    _method("VERBS_CREATE$qp", ifc.OPCODES["CREATE_QP"], kernel.verbs_create_qp, (UCONTEXT,),
            produces=("devx_qp", ANY_OBJECT), doc="ibv_create_qp (RC) through mlx5_ib: a QP with the context's uid"),
    _method("QUERY_EQN", 0, kernel.query_eqn, (UCONTEXT, VECTOR),
            doc="MLX5_IB_METHOD_DEVX_QUERY_EQN: the EQ number of a completion vector (created on first use)"),
    _method("OBJ_DESTROY", 0, kernel.obj_destroy,
            (Param("obj", "handle", bundle=ANY_OBJECT, consumes=True),),
            doc="destroy a DEVX handle (or a verbs CQ/QP's): the kernel runs the destroy command it recorded"),
    *(_method(f"OTHER${name}", 0, kernel.other,
              (UCONTEXT, _opcode(ops), *(FIELD_PARAMS[f] for f in fields), UID, VHCA_TUNNEL_ID), effects=_carried)
      for name, (ops, fields) in OTHER_VARIANTS.items()),
    _method("CLOSE", ifc.OPCODES["DESTROY_UCTX"], kernel.close,
            (Param("ucontext", "handle", bundle="ucontext", consumes=True),),
            doc="close the uverbs file: destroy every DEVX object, then the uid"),
)
#: open(2)/close(2) of the mlx5 fwctl device; the opcode is the firmware command each sends
FWCTL_FDS = (
    Command("FWCTL_OPEN", ifc.OPCODES["CREATE_UCTX"], (FWCTL_FD,), driver=kernel.fwctl_open,
            effects=Effect.CONFIG_IMMEDIATE, doc="open /dev/fwctl/fwctlN: mlx5ctl_open_uctx() allocates a uid"),
    Command("FWCTL_CLOSE", ifc.OPCODES["DESTROY_UCTX"], (FWCTL_FD,), driver=kernel.fwctl_close,
            effects=Effect.CONFIG_IMMEDIATE, doc="close the newest fwctl FD: mlx5ctl_close_uctx() releases its uid"),
)


def method_ops(method: str) -> tuple[str, ...]:
    """All variants of one DEVX method: ``method_ops("OBJ_MODIFY")`` -> ``("OBJ_MODIFY$cq", ...)``."""
    return tuple(c.op for c in METHODS if c.op.partition("$")[0] == method)
