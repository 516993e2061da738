"""Linux's RDMA passthrough policies as rule tables, each rule citing its source.

DEVX: linux ``drivers/infiniband/hw/mlx5/devx.c`` (the METHOD handlers,
``devx_get_uid()``, ``devx_is_general_cmd()``, ``devx_is_obj_*_cmd()``,
``devx_is_valid_obj_id()``) and ``mlx5_ib_devx_create()``.  fwctl:
``drivers/fwctl/mlx5/main.c`` (``mlx5ctl_validate_rpc()``, ``mlx5ctl_fw_rpc()``)
behind the fwctl core rules of ``drivers/fwctl/main.c``.  The vhca_tunnel_id
checks are 7.3.4's (re-read for issue 17): the object handlers refuse a non-zero
tunnel id, and devx_is_general_cmd() passes any opcode that carries one when the
firmware has ``vhca_tunnel_commands``.

Versions: ``linux-devx`` is devx.c of 7.3.4 (Debian's linux-source-7.3), re-read whole
against every rule (it was "unversioned" before; the vhca_tunnel_id rules, issue 17, and
the uctx caps, #25, were already 7.3.4's); ``linux-devx-2019``'s
whitelist and general-command list are devx.c of v5.2 (read from the linux-yocto-5.2 copy,
WindRiver-Labs/linux-yocto-5.2 @256e39bf, which already has the type fix: the pull that
merged both 2019 DevX fixes, up to c191f93454bc, changed nothing else in devx.c);
the mlx5 fwctl table (``plugins/ptfuzz_mlx5/fwctl.py``) is ``drivers/fwctl/mlx5/main.c``
of 7.3.4 (re-read whole for issue 17), shared with the netdev plugin;
``linux-fwctl-mlx5-kfree-rpc-out`` is it before 7f059e473267 (its error path's free).
"""

from __future__ import annotations

import errno
from collections.abc import Callable

from ptfuzz_mlx5 import fwctl as mlx5_fwctl
from ptfuzz_mlx5 import ifc

from fuzzer import Deny, Policy, Request, Rewrite, Rule, Verdict, fwctl

from .device import DEVX, FWCTL, FWCTL_FD, KIND_OF
from .devx import method_ops
from .kernel import Ucontext, Uobject

CAP_NET_RAW = "CAP_NET_RAW"
Check = Callable[[Request], Verdict]
DEVX_C = "drivers/infiniband/hw/mlx5/devx.c"

# --------------------------------------------------------------------------- DEVX

#: devx_is_whitelist_cmd() (7.3.4): run under the device's no-caps uid when the context has none.
WHITELIST = frozenset({"QUERY_HCA_CAP", "QUERY_HCA_VPORT_CONTEXT", "QUERY_ESW_VPORT_CONTEXT",
                       "QUERY_ESW_FUNCTIONS"})
#: devx_is_whitelist_cmd() of v5.2 (2019): no QUERY_ESW_FUNCTIONS yet
WHITELIST_2019 = WHITELIST - {"QUERY_ESW_FUNCTIONS"}
#: devx_is_general_cmd() of v5.2 (2019): the fixed list; opcodes in GENERAL_START..END also pass
#: (the range was there; vhca_tunnel_id was not)
GENERAL_2019 = WHITELIST_2019 | frozenset({
    "QUERY_VPORT_STATE", "QUERY_ADAPTER", "QUERY_ISSI", "QUERY_NIC_VPORT_CONTEXT", "QUERY_ROCE_ADDRESS",
    "QUERY_VNIC_ENV", "QUERY_VPORT_COUNTER", "GET_DROPPED_PACKET_LOG", "NOP", "QUERY_CONG_STATUS",
    "QUERY_CONG_PARAMS", "QUERY_CONG_STATISTICS",
})
#: devx_is_general_cmd() (7.3.4): 2019's, plus QUERY_LAG and QUERY_ESW_FUNCTIONS
GENERAL = GENERAL_2019 | WHITELIST | frozenset({"QUERY_LAG"})
#: devx_is_obj_create_cmd() (7.3.4): these always; SET_FLOW_TABLE_ENTRY only with op_mod 0 and
#: CREATE_PSV only with num_psv 1 (``_create_cmd()``)
OBJ_CREATE = frozenset({
    "CREATE_GENERAL_OBJECT", "CREATE_MKEY", "CREATE_CQ", "ALLOC_PD", "ALLOC_TRANSPORT_DOMAIN", "CREATE_RMP",
    "CREATE_SQ", "CREATE_RQ", "CREATE_RQT", "CREATE_TIR", "CREATE_TIS", "ALLOC_Q_COUNTER",
    "CREATE_FLOW_TABLE", "CREATE_FLOW_GROUP", "ALLOC_FLOW_COUNTER", "ALLOC_PACKET_REFORMAT_CONTEXT",
    "ALLOC_MODIFY_HEADER_CONTEXT", "CREATE_SCHEDULING_ELEMENT", "ADD_VXLAN_UDP_DPORT", "SET_L2_TABLE_ENTRY",
    "CREATE_QP", "CREATE_SRQ", "CREATE_XRC_SRQ", "CREATE_DCT", "CREATE_XRQ", "ATTACH_TO_MCG", "ALLOC_XRCD",
})
#: devx_is_obj_modify_cmd() (7.3.4): these always; SET_FLOW_TABLE_ENTRY only with op_mod 1
OBJ_MODIFY = frozenset({
    "MODIFY_GENERAL_OBJECT", "MODIFY_CQ", "MODIFY_RMP", "MODIFY_SQ", "MODIFY_RQ", "MODIFY_RQT",
    "MODIFY_TIR", "MODIFY_TIS", "MODIFY_FLOW_TABLE", "MODIFY_SCHEDULING_ELEMENT", "ADD_VXLAN_UDP_DPORT",
    "SET_L2_TABLE_ENTRY", "RST2INIT_QP", "INIT2RTR_QP", "INIT2INIT_QP", "RTR2RTS_QP", "RTS2RTS_QP",
    "SQERR2RTS_QP", "2ERR_QP", "2RST_QP", "ARM_XRC_SRQ", "ARM_RQ", "ARM_DCT_FOR_KEY_VIOLATION", "ARM_XRQ",
    "SET_XRQ_DC_PARAMS_ENTRY", "RELEASE_XRQ_ERROR", "MODIFY_XRQ",
})
#: devx_is_obj_query_cmd() (7.3.4)
OBJ_QUERY = frozenset({
    "QUERY_GENERAL_OBJECT", "QUERY_MKEY", "QUERY_CQ", "QUERY_RMP", "QUERY_SQ", "QUERY_RQ", "QUERY_RQT",
    "QUERY_TIR", "QUERY_TIS", "QUERY_Q_COUNTER", "QUERY_FLOW_TABLE", "QUERY_FLOW_GROUP",
    "QUERY_FLOW_TABLE_ENTRY", "QUERY_FLOW_COUNTER", "QUERY_MODIFY_HEADER_CONTEXT",
    "QUERY_SCHEDULING_ELEMENT", "QUERY_L2_TABLE_ENTRY", "QUERY_QP", "QUERY_SRQ", "QUERY_XRC_SRQ", "QUERY_DCT",
    "QUERY_XRQ", "QUERY_XRQ_DC_PARAMS_ENTRY", "QUERY_XRQ_ERROR_PARAMS", "QUERY_PACKET_REFORMAT_CONTEXT",
})


def _create_cmd(r: Request) -> bool:
    """devx_is_obj_create_cmd(): the table, plus the two opcodes it passes only for one field value.

    A field the step does not carry is 0, as in the caller's zeroed command (op_mod and num_psv are
    not drawn: no modelled kind is a flow table entry or a PSV)."""
    op = r.args["opcode"]
    if op == "SET_FLOW_TABLE_ENTRY":
        return int(r.args.get("op_mod", 0)) == 0
    if op == "CREATE_PSV":
        return int(r.args.get("num_psv", 0)) == 1
    return op in OBJ_CREATE


def _modify_cmd(r: Request) -> bool:
    """devx_is_obj_modify_cmd(): the table, and SET_FLOW_TABLE_ENTRY with op_mod 1."""
    if r.args["opcode"] == "SET_FLOW_TABLE_ENTRY":
        return int(r.args.get("op_mod", 0)) == 1
    return r.args["opcode"] in OBJ_MODIFY


def _query_cmd(r: Request) -> bool:
    return r.args["opcode"] in OBJ_QUERY


def _is_general(op: str, general: frozenset[str]) -> bool:
    return op in general or ifc.GENERAL_START <= ifc.OPCODES.get(op, 0) < ifc.GENERAL_END


def _ucontext(r: Request) -> Ucontext | None:
    """The caller's context: named directly, or through the object handle."""
    k = r.kernel
    if "ucontext" in r.args:
        return k["ucontexts"].get(r.args["ucontext"])
    uobj = k["uobjects"].get(r.args.get("obj"))
    return None if uobj is None else k["ucontexts"].get(uobj.ucontext)


def _devx_uid(whitelist: frozenset[str]) -> Check:
    def check(r: Request) -> Verdict:
        ctx = _ucontext(r)
        if ctx is None or ctx.uid:
            return None  # an unknown handle fails in the uverbs lookup
        if r.args.get("opcode") not in whitelist:
            return Deny(errno.EINVAL, "no DEVX uid: the ucontext was allocated without MLX5_IB_ALLOC_UCTX_DEVX")
        if r.kernel["whitelist_uid"]:
            return None
        # 7.3.4: mlx5_ib_devx_init() got no uid (mlx5_ib_devx_create() failed), so no whitelist uid
        return Deny(errno.EOPNOTSUPP, "a whitelisted command from a context without DEVX, and the device "
                    "has no devx_whitelist_uid")

    return check


def _force_uid(whitelist: frozenset[str]) -> Check:
    def check(r: Request) -> Verdict:
        ctx = _ucontext(r)
        if ctx is None:
            return None
        uid = ctx.uid if ctx.uid or r.args.get("opcode") not in whitelist else r.kernel["whitelist_uid"]
        return Rewrite({"uid": uid}, "MLX5_SET(general_obj_in_cmd_hdr, cmd_in, uid, uid)")

    return check


def _general_cmd(r: Request) -> Verdict:
    if r.device.info.get("vhca_tunnel_commands") and r.args.get("vhca_tunnel_id", 0):
        return None  # "Pass all cmds for vhca_tunnel as general, tracking is done in FW"
    return None if _is_general(r.args["opcode"], GENERAL) else Deny(errno.EINVAL, "not a general command")


def _general_cmd_2019(r: Request) -> Verdict:
    return None if _is_general(r.args["opcode"], GENERAL_2019) else Deny(errno.EINVAL, "not a general command")


def _no_tunnel(r: Request) -> Verdict:
    if r.args.get("vhca_tunnel_id", 0):
        return Deny(errno.EINVAL, f"vhca_tunnel_id {r.args['vhca_tunnel_id']:#x} on a DEVX object command")
    return None


def _in(accepts: Callable[[Request], bool], what: str) -> Rule:
    def check(r: Request) -> Verdict:
        return None if accepts(r) else Deny(errno.EINVAL, f"not an object {what} command")

    return Rule(f"devx-obj-{what}-cmd", check, f"{DEVX_C} devx_is_obj_{what}_cmd()",
                channels=(DEVX,), ops=method_ops(f"OBJ_{what.upper()}"))


def _creator(op: str) -> str:
    kind = KIND_OF.get(op)
    return kind.create if kind is not None else ""


def _valid_obj_id(r: Request) -> Verdict:
    """Since 2019: the id *and* the general object type must be the handle's."""
    uobj: Uobject | None = r.kernel["uobjects"].get(r.args["obj"])
    if uobj is None:
        return None
    cmd_type = r.args["type"] if r.args["opcode"].endswith("_GENERAL_OBJECT") else ""
    if (_creator(r.args["opcode"]), cmd_type, r.args["obj_id"]) != (uobj.create_op, uobj.type, uobj.id):
        return Deny(errno.EINVAL, "object id/type does not match the handle")
    return None


def _valid_obj_id_2019(r: Request) -> Verdict:
    """Before the fix: get_enc_obj_id(CREATE_GENERAL_OBJECT, obj_id), the type ignored."""
    uobj: Uobject | None = r.kernel["uobjects"].get(r.args["obj"])
    if uobj is None:
        return None
    if (_creator(r.args["opcode"]), r.args["obj_id"]) != (uobj.create_op, uobj.id):
        return Deny(errno.EINVAL, "object id does not match the handle")
    return None


def _uctx_caps(r: Request) -> Verdict:
    """mlx5_ib_devx_create(): RAW_TX only with CAP_NET_RAW, INTERNAL_DEV_RES only with CAP_SYS_RAWIO.

    The check order has no observable here (the 2024 change, reference §6).  v5.2 tested
    ``capable(CAP_NET_RAW) && (MLX5_CAP_GEN(uctx_cap) & MLX5_UCTX_CAP_RAW_TX)``; 7.3.4 tests the
    firmware's uctx_cap bit first, then rdma_dev_has_raw_cap() (and likewise capable(CAP_SYS_RAWIO)
    for INTERNAL_DEV_RES).  Both grant the AND of the two and neither returns an error, so the caps,
    the errno and the firmware state are the same in either order; what the order changes is
    whether capable() runs at all on a device without the bit, and so an LSM audit record or
    PF_SUPERPRIV, which the model has no place for (inventing one would test the model, not the
    kernel).  UCAP (issue 17 #16, 7.3.4
    set_uctx_ucaps()): RDMA_CTRL and RDMA_CTRL_OTHER_VHCA come only from an fd of
    /dev/infiniband/mlx5_perm_ctrl_* (mode 0600) given at ALLOC_UCONTEXT, -EOPNOTSUPP without the
    firmware bit, and the uid is registered with mlx5_cmd_add_privileged_uid(); what firmware then
    lets such a uid do is not public, so no caller holds a UCAP here.
    """
    if not r.args.get("devx"):
        return None  # mlx5_ib_alloc_ucontext() calls mlx5_ib_devx_create() only for MLX5_IB_ALLOC_UCTX_DEVX
    # fidelity #25 (7.3.4): "0 means not supported": no log_max_uctx, no DEVX context at all; a cap is
    # granted only if the firmware's uctx_cap has its bit (device info; the modelled devices have both)
    if not int(r.device.info.get("log_max_uctx", 1)):
        return Deny(errno.EINVAL, "MLX5_CAP_GEN(log_max_uctx) is 0: the firmware has no DEVX contexts")
    fw = int(r.device.info.get("uctx_cap", ifc.UCTX_CAP_RAW_TX | ifc.UCTX_CAP_INTERNAL_DEV_RES))
    granted = 0
    if fw & ifc.UCTX_CAP_RAW_TX and CAP_NET_RAW in r.caller.caps:
        granted |= ifc.UCTX_CAP_RAW_TX
    if fw & ifc.UCTX_CAP_INTERNAL_DEV_RES and fwctl.CAP_SYS_RAWIO in r.caller.caps:
        granted |= ifc.UCTX_CAP_INTERNAL_DEV_RES
    return Rewrite({"cap": granted}, "the firmware's uctx_cap and capable() decide the uctx caps")


def _devx_supported(r: Request) -> Verdict:
    """devx_is_supported() (7.3.4): the DEVX uapi objects exist only if MLX5_CAP_GEN(log_max_uctx).

    Without it ``UAPI_DEF_IS_OBJ_SUPPORTED`` leaves them out of the uapi radix tree, and
    ib_uverbs_cmd_verbs() finds no method: -EPROTONOSUPPORT, before any DEVX code runs."""
    if int(r.device.info.get("log_max_uctx", 1)):
        return None
    return Deny(errno.EPROTONOSUPPORT, "no DEVX methods: MLX5_CAP_GEN(log_max_uctx) is 0 (devx_is_supported())")


_UID_METHODS = ("UMEM_REG", *method_ops("OTHER"), *method_ops("OBJ_CREATE"), *method_ops("OBJ_MODIFY"),
                *method_ops("OBJ_QUERY"))
_ON_OBJECT = (*method_ops("OBJ_MODIFY"), *method_ops("OBJ_QUERY"))
_OBJ_METHODS = (*method_ops("OBJ_CREATE"), *_ON_OBJECT)


def devx_rules(valid_obj_id: Rule, *, since_2019: bool = True) -> tuple[Rule, ...]:
    """The DEVX method handlers' checks, in the order devx.c runs them.

    ``since_2019=False`` gives v5.2's: no vhca_tunnel_id checks, 2019's whitelist and general list.
    """
    whitelist = WHITELIST if since_2019 else WHITELIST_2019
    general = (
        Rule("devx-general-cmd", _general_cmd,
             f"{DEVX_C} MLX5_IB_METHOD_DEVX_OTHER: devx_is_general_cmd() (7.3.4): with the firmware's "
             "vhca_tunnel_commands and a non-zero vhca_tunnel_id any opcode passes, the firmware then "
             "trusted to track it (\"tracking is done in FW\"); else the general list or range",
             channels=(DEVX,), ops=method_ops("OTHER"))
        if since_2019 else
        Rule("devx-general-cmd", _general_cmd_2019,
             f"{DEVX_C} MLX5_IB_METHOD_DEVX_OTHER: devx_is_general_cmd(in) (v5.2): the list (no QUERY_LAG, "
             "no QUERY_ESW_FUNCTIONS) or GENERAL_START..END", channels=(DEVX,), ops=method_ops("OTHER")))
    tunnel = (Rule("devx-obj-vhca-tunnel", _no_tunnel,
                   f"{DEVX_C} MLX5_IB_METHOD_DEVX_OBJ_CREATE/_MODIFY/_QUERY handlers: "
                   "if (MLX5_GET(general_obj_in_cmd_hdr, cmd_in, vhca_tunnel_id)) return -EINVAL; (7.3.4)",
                   channels=(DEVX,), ops=_OBJ_METHODS),) if since_2019 else ()
    supported = (Rule("devx-supported", _devx_supported,
                      f"{DEVX_C} devx_is_supported(), mlx5_ib_devx_defs[]: UAPI_DEF_IS_OBJ_SUPPORTED; "
                      "drivers/infiniband/core/uverbs_ioctl.c ib_uverbs_cmd_verbs(): no method, -EPROTONOSUPPORT "
                      "(7.3.4)", channels=(DEVX,), ops=(*_UID_METHODS, "QUERY_EQN")),) if since_2019 else ()
    version = "(7.3.4)" if since_2019 else "(v5.2: QUERY_HCA_CAP, QUERY_HCA_VPORT_CONTEXT, QUERY_ESW_VPORT_CONTEXT)"
    return (
        # the uverbs core: a DEVX method the device does not support has no handler (the verbs
        # CQ/QP, ALLOC_UCONTEXT, CLOSE and a handle's destroy are not DEVX methods here); not read
        # for v5.2, whose policy has no such rule
        *supported,
        Rule("uctx-caps", _uctx_caps, f"{DEVX_C} mlx5_ib_devx_create() (7.3.4), called by "
             "mlx5_ib_alloc_ucontext() only with MLX5_IB_ALLOC_UCTX_DEVX", channels=(DEVX,),
             ops=("ALLOC_UCONTEXT",)),
        # first in each object handler, before devx_get_uid() (OBJ_ASYNC_QUERY, which does the
        # same at line 1848, is not a modelled method)
        *tunnel,
        Rule("devx-uid", _devx_uid(whitelist),
             f"{DEVX_C} devx_get_uid(), devx_is_whitelist_cmd() {version}: no uid -EINVAL, a whitelisted "
             "command with no whitelist uid -EOPNOTSUPP; devx_umem_reg: c->devx_uid",
             channels=(DEVX,), ops=_UID_METHODS),
        general,
        _in(_create_cmd, "create"),
        _in(_modify_cmd, "modify"),
        _in(_query_cmd, "query"),
        valid_obj_id,
        Rule("devx-force-uid", _force_uid(whitelist),
             f"{DEVX_C} MLX5_SET(general_obj_in_cmd_hdr, cmd_in, uid, uid)",
             channels=(DEVX,), ops=_UID_METHODS),
    )


LINUX_DEVX = Policy(
    "linux-devx", "rdma", channels=(DEVX,),
    rules=devx_rules(Rule("devx-obj-id-valid", _valid_obj_id,
                          f"{DEVX_C} devx_is_valid_obj_id(), get_enc_obj_id(opcode | obj_type << 16, id) (7.3.4)",
                          channels=(DEVX,), ops=_ON_OBJECT)),
    kernel="7.3.4",
    doc="devx.c: uid forced, whitelist, general-command list, object id and type checked",
)
LINUX_DEVX_2019 = Policy(
    "linux-devx-2019", "rdma", channels=(DEVX,),
    rules=devx_rules(Rule("devx-obj-id-valid", _valid_obj_id_2019,
                          f"{DEVX_C} before \"IB/mlx5: Verify DEVX general object type correctly\" "
                          "(Fixes: 2351776e87a1): get_enc_obj_id(CREATE_GENERAL_OBJECT, obj_id)",
                          channels=(DEVX,), ops=_ON_OBJECT), since_2019=False),
    # eq.c create_map_eq() before c191f93454bc: completion EQs have uid 0 (kernel.comp_eq_uid())
    knobs={"comp_eq_uid": 0},
    predates='"IB/mlx5: Verify DEVX general object type correctly" and c191f93454bc "net/mlx5: Set '
             'completion EQs as shared resources" (both 2019-05, v5.2 merge window)',
    doc="v5.2-rc devx.c and eq.c before the two 2019 DevX fixes: a general object's id is checked, not its "
        "type; completion EQs have uid 0, so a DEVX CQ may not use one",
)

# --------------------------------------------------------------------------- fwctl

LINUX_FWCTL_MLX5 = Policy(
    "linux-fwctl-mlx5", "rdma", channels=(FWCTL, FWCTL_FD),
    rules=mlx5_fwctl.rules(FWCTL),
    promises=(mlx5_fwctl.promise(FWCTL),), kernel=mlx5_fwctl.KERNEL,
    doc="the mlx5 fwctl scope table, including ACCESS_REG writes (op_mod 0) at any scope",
)

#: 7.3.4's mlx5 fwctl before 7f059e473267 "fwctl/mlx5: Fix memory alloc/free in mlx5ctl_fw_rpc()"
#: (2025-08, Fixes: 52929c2142041 "fwctl/mlx5: Support for communicating with mlx5 fw"): the one line
#: it changed, ``kfree(rpc_out)`` on mlx5_cmd_do()'s error, for memory kvzalloc() may take from vmalloc
LINUX_FWCTL_MLX5_KFREE = Policy(
    "linux-fwctl-mlx5-kfree-rpc-out", "rdma", channels=LINUX_FWCTL_MLX5.channels,
    rules=LINUX_FWCTL_MLX5.rules, promises=LINUX_FWCTL_MLX5.promises,
    knobs={mlx5_fwctl.ERROR_FREE: "kfree"}, predates="7f059e473267",
    doc="linux-fwctl-mlx5 whose mlx5ctl_fw_rpc() frees its kvzalloc'd rpc_out with kfree() when mlx5_cmd_do() fails",
)

PERMISSIVE = Policy("permissive", "rdma", channels=(DEVX, FWCTL, FWCTL_FD),
                    doc="a blank cheque: every method, opcode and uid goes to firmware as sent")

POLICIES = (LINUX_DEVX, LINUX_DEVX_2019, LINUX_FWCTL_MLX5, LINUX_FWCTL_MLX5_KFREE, PERMISSIVE)
