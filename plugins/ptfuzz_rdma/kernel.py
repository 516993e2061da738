"""The mlx5 drivers as a model: probe, the kernel's own objects, and DEVX's kernel side.

The kernel creates its objects with uid 0 (mlx5e's SQ/RQ/TIR/TIS/RQT and
steering, mlx5_ib's PD/CQ/QP/MKEY, completion EQs as shared resources) and
believes each of them: the shadow holds every object it created and the
global state it set.  DEVX is kernel code between userspace and firmware:
``drivers/infiniband/hw/mlx5/devx.c`` looks up the ucontext's uid, sends the
command, records a destroy command built from the create
(``devx_obj_build_destroy_cmd()``) and runs it when the handle or the file
goes away.  What the policies decide (which opcodes, which uid, whether the
handle matches) is in ``policies.py``; this is the part every policy shares.

Completion EQs (``drivers/net/ethernet/mellanox/mlx5/core/eq.c``, 7.3.4): the async EQ
has an event mask and uid 0; a completion EQ is created on first use of its vector
(``mlx5_comp_eqn_get()`` -> ``create_comp_eq()``, by mlx5e's channels at probe, by a verbs
CQ or by DEVX ``QUERY_EQN``) with ``MLX5_SHARED_RESOURCE_UID`` (``create_map_eq()``:
``if (!param->mask[0] && MLX5_CAP_GEN(dev, log_max_uctx))``), so that CQs of DEVX uids may
use it.  Before c191f93454bc ("net/mlx5: Set completion EQs as shared resources", 2019)
it had uid 0: the policy knob ``comp_eq_uid`` says which.  Simplified, once: the HCA
has ``MAX_COMP_EQS`` vectors, and 2019's kernel, which created every completion EQ at
probe (``mlx5_vector2eqn()``), creates them on first use as 7.3.4 does (the EQ and its
uid are the same either way).

mlx5 fwctl (``drivers/fwctl/mlx5/main.c``, 7.3.4): every open of the fwctl
device allocates a uid of its own (``mlx5ctl_open_uctx()``, TOOLS_RESOURCES
when the firmware has it, as the modelled firmware always does) and its
release destroys it (``mlx5ctl_close_uctx()``, errors ignored).  Simplified,
once: the probe opens the first FD; ``FWCTL_OPEN``/``FWCTL_CLOSE`` open and
close more, last in first out, and an RPC goes to the newest FD still open
(``kernel["fwctl_uid"]``, None when every FD is closed).  That is enough to
give two FDs two uids and to release one while another is in use.
"""

from __future__ import annotations

import errno
from typing import Any, NamedTuple

from ptfuzz_mlx5 import ifc

from fuzzer import Args, Caller, KernelAction, Param, Reply, World

from .device import KIND_OF, has_room, obj_key

#: devx_obj_build_destroy_cmd(): the destroy each DEVX create is undone with.
#: CREATE_EQ (and anything else) has no entry: the kernel WARNs and cannot undo it.
DESTROY_OF = {
    "CREATE_GENERAL_OBJECT": "DESTROY_GENERAL_OBJECT",
    "CREATE_UMEM": "DESTROY_UMEM",
    "CREATE_MKEY": "DESTROY_MKEY",
    "CREATE_CQ": "DESTROY_CQ",
    "ALLOC_PD": "DEALLOC_PD",
    "CREATE_SQ": "DESTROY_SQ",
    "CREATE_RQ": "DESTROY_RQ",
    "CREATE_RQT": "DESTROY_RQT",
    "CREATE_TIR": "DESTROY_TIR",
    "CREATE_TIS": "DESTROY_TIS",
    "CREATE_FLOW_TABLE": "DESTROY_FLOW_TABLE",
    "CREATE_FLOW_GROUP": "DESTROY_FLOW_GROUP",
    "SET_FLOW_TABLE_ENTRY": "DELETE_FLOW_TABLE_ENTRY",
    "CREATE_QP": "DESTROY_QP",
    "CREATE_SRQ": "DESTROY_SRQ",
}


class Ucontext(NamedTuple):
    """A uverbs file's mlx5 context: ``uid`` 0 when allocated without DEVX."""

    uid: int
    devx: bool


class Uobject(NamedTuple):
    """A uverbs object handle DEVX methods accept: what the kernel recorded when it was created.

    ``verbs`` marks a CQ or QP created through the verbs methods (mlx5_ib), whose handle
    devx_is_valid_obj_id() accepts as well as a DEVX object's.
    """

    ucontext: str
    create_op: str
    type: str  # general object type, "" for other objects
    id: int
    destroy: tuple[str, tuple[tuple[str, Any], ...]] | None
    verbs: bool = False


def boot() -> dict[str, Any]:
    return {
        "ucontexts": {},
        "uobjects": {},
        "whitelist_uid": 0,
        "fwctl_uid": 0,
        "fwctl_fds": (),
        "ipsec": (),
        "comp_eqs": {},  # completion vector -> eqn (eq_table->comp_eqs)
        "eqns_given": frozenset(),  # (ucontext, eqn) pairs DEVX QUERY_EQN answered
        # dev->state == MLX5_DEVICE_STATE_INTERNAL_ERROR: mlx5_cmd_is_down() (fw_fatal_error)
        "cmd_down": False,
    }


def _fw_failed(reply: Reply) -> Reply:
    """A firmware status as the driver returns it (cmd_status_to_err())."""
    status = ifc.STATUS_NAMES.get(reply.rc, hex(reply.rc))
    return Reply(rc=reply.rc, errno=ifc.STATUS_ERRNO.get(reply.rc, errno.EIO), out=reply.out,
                 why=f"{status}: {reply.why}" if reply.why else status)


def _create(world: World, op: str, **args: Any) -> str:
    """Create a kernel object and believe it; returns its state key."""
    kind = KIND_OF[op].name
    reply = world.mailbox(op, **{"value": 1, **args})  # the kernel configures what it creates
    assert reply.rc == 0, f"kernel {op} failed: {reply.out}"
    key = obj_key(kind, reply.out["id"], args.get("type", ""))
    world.believe(key)
    return key


def _set(world: World, op: str, field: str, **args: Any) -> None:
    reply = world.mailbox(op, uid=0, **args)
    assert reply.rc == 0, f"kernel {op} failed: {reply.out}"
    world.believe(field)


def probe(world: World) -> None:
    """mlx5_core init, mlx5e netdev open, mlx5_ib registration, fwctl open."""
    k = world.kernel
    world.mailbox("QUERY_HCA_CAP", uid=0)
    _set(world, "SET_HCA_CAP", "hca.caps", other_function=False, value=1)  # handle_hca_cap()
    # mlx5_eq_table_create(): the async EQ (it has an event mask, so uid 0 even today) ...
    _create(world, "CREATE_EQ", uid=0)
    # ... and mlx5e's first channel asks for vector 0's completion EQ (mlx5e_open_cq())
    eqn = comp_eqn_get(world, 0)
    assert isinstance(eqn, int) and eqn == FIRST_COMP_EQN, eqn
    # mlx5e: PD, TIS, CQ, SQ, RQ, RQT, TIR, steering; then MTU and link up
    _create(world, "ALLOC_PD", uid=0)
    _create(world, "CREATE_TIS", uid=0)
    _create(world, "CREATE_CQ", uid=0, eqn=eqn)
    sq = _create(world, "CREATE_SQ", uid=0)
    rq = _create(world, "CREATE_RQ", uid=0)
    for key, op in ((sq, "MODIFY_SQ"), (rq, "MODIFY_RQ")):  # RST -> RDY
        world.mailbox(op, uid=0, id=int(key.split(":")[1]), value=1)
        world.believe(key)
    _create(world, "CREATE_RQT", uid=0)
    _create(world, "CREATE_TIR", uid=0)
    _create(world, "CREATE_FLOW_TABLE", uid=0)
    _create(world, "CREATE_FLOW_GROUP", uid=0)
    _create(world, "SET_FLOW_TABLE_ENTRY", uid=0)
    _set(world, "MODIFY_NIC_VPORT_CONTEXT", "nic_vport.mtu", value=1)
    _set(world, "MODIFY_HCA_VPORT_CONTEXT", "hca_vport.ctx", value=1)
    _set(world, "MODIFY_ESW_VPORT_CONTEXT", "esw_vport.ctx", value=1)
    _set(world, "ACCESS_REG", "reg.PMTU", reg=ifc.PMTU, op_mod=0, value=1)
    _set(world, "ACCESS_REG", "reg.PAOS", reg=ifc.PAOS, op_mod=0, value=1)
    # mlx5_ib: its PD and CQ, the GSI QP taken to RTS, the UMR mkey
    _create(world, "ALLOC_PD", uid=0)
    _create(world, "CREATE_CQ", uid=0, eqn=eqn)
    _ulp_qp(world)
    _create(world, "CREATE_MKEY", uid=0)
    # the DEVX whitelist uid (no caps): mlx5_ib_devx_init() (devx.c, 7.3.4) keeps the uid
    # mlx5_ib_devx_create(dev, false, 0) returns, which is -EINVAL without log_max_uctx: then none
    if int(world.device.info.get("log_max_uctx", 1)):
        k["whitelist_uid"] = _uctx(world, 0)
    # and the fwctl FD's uid (TOOLS_RESOURCES)
    k["fwctl_uid"] = _uctx(world, ifc.UCTX_CAP_TOOLS_RESOURCES)
    k["fwctl_fds"] = (k["fwctl_uid"],)


#: Simplification: the HCA has two completion vectors (eq_table->max_comp_eqs)
MAX_COMP_EQS = 2
#: the eqn vector 0's completion EQ gets at probe (the async EQ is eq 1): what a correct
#: DEVX caller puts in a CQ after QUERY_EQN(0)
FIRST_COMP_EQN = 2


def comp_eq_uid(world: World) -> int:
    """The uid create_map_eq() gives a completion EQ: shared since c191f93454bc, 0 before (knob)."""
    return int(world.policy.knobs["comp_eq_uid"]) if world.policy is not None else ifc.SHARED_UID


def comp_eqn_get(world: World, vector: int) -> int | Reply:
    """mlx5_comp_eqn_get() (eq.c, 7.3.4): the vector's EQ number, creating the EQ on first use.

    Returns the eqn, or the error Reply (-EINVAL past max_comp_eqs, the firmware's refusal).
    """
    k = world.kernel
    if not 0 <= vector < MAX_COMP_EQS:
        return _no(errno.EINVAL, f"vector {vector} >= max_comp_eqs {MAX_COMP_EQS}")
    if vector in k["comp_eqs"]:
        return int(k["comp_eqs"][vector])
    if not has_room(world.device.state):
        return _no(errno.ENOMEM, "firmware object table full (a model limit)")
    reply = world.mailbox("CREATE_EQ", uid=comp_eq_uid(world), value=1)  # create_comp_eq() -> create_map_eq()
    if reply.rc:
        return _fw_failed(reply)
    eqn = int(reply.out["id"])
    world.believe(f"eq:{eqn}")
    k["comp_eqs"] = {**k["comp_eqs"], vector: eqn}
    return eqn


def _uctx(world: World, caps: int) -> int:
    reply = world.mailbox("CREATE_UCTX", uid=0, value=caps)
    assert reply.rc == 0
    world.believe(f"uctx:{reply.out['id']}")
    return int(reply.out["id"])


def _ulp_qp(world: World) -> str:
    key = _create(world, "CREATE_QP", uid=0)
    ident = int(key.split(":")[1])
    for op in ("RST2INIT_QP", "INIT2RTR_QP", "RTR2RTS_QP"):
        world.mailbox(op, uid=0, id=ident)
    world.believe(key)
    return key


# ----------------------------------------------------------------------------- kernel actions


def ipsec_offload(world: World, args: Args) -> Reply:
    """mlx5e xfrm state add with crypto offload: a DEK and an IPsec general object, uid 0."""
    if not has_room(world.device.state, 2):
        return Reply(errno=errno.ENOMEM)
    dek = _create(world, "CREATE_GENERAL_OBJECT", uid=0, type="ENCRYPTION_KEY")
    sa = _create(world, "CREATE_GENERAL_OBJECT", uid=0, type="IPSEC")
    world.kernel["ipsec"] = (*world.kernel["ipsec"], (dek, sa))
    return Reply()


def ipsec_remove(world: World, args: Args) -> Reply:
    """The oldest offloaded SA is removed: its objects destroyed and forgotten."""
    if not world.kernel["ipsec"]:
        return Reply(errno=errno.ENOENT)
    keys = world.kernel["ipsec"][0]
    world.kernel["ipsec"] = world.kernel["ipsec"][1:]
    for key in reversed(keys):
        gtype, _, ident = key.partition(":")[2].partition(".")
        world.mailbox("DESTROY_GENERAL_OBJECT", uid=0, type=gtype, id=int(ident))
        world.believe(key)
    return Reply()


def ulp_qp_create(world: World, args: Args) -> Reply:
    """A kernel ULP (IPoIB, an NVMe-oF target) creates a QP and takes it to RTS."""
    if not has_room(world.device.state):
        return Reply(errno=errno.ENOMEM)
    _ulp_qp(world)
    return Reply()


def netdev_reconfigure(world: World, args: Args) -> Reply:
    """ip link set mtu/up/down: mlx5e_change_mtu() (PMTU and the NIC vport) and PAOS (1 up, 2 down)."""
    _set(world, "ACCESS_REG", "reg.PMTU", reg=ifc.PMTU, op_mod=0, value=args["mtu"])
    _set(world, "MODIFY_NIC_VPORT_CONTEXT", "nic_vport.mtu", value=args["mtu"])
    _set(world, "ACCESS_REG", "reg.PAOS", reg=ifc.PAOS, op_mod=0, value=1 if args["up"] else 2)
    return Reply()


def fw_fatal_error(world: World, args: Args) -> Reply:
    """The health poller finds a fatal firmware syndrome, and the fw_fatal reporter does not recover.

    mlx5_fw_fatal_reporter_err_work() (drivers/net/ethernet/mellanox/mlx5/core/health.c, 7.3.4)
    enters the error state (``dev->state = MLX5_DEVICE_STATE_INTERNAL_ERROR``) and reports to devlink;
    with the reporter's ``auto_recover`` off (``devlink health set ... reporter fw_fatal auto_recover
    false``) devlink_health_report() recovers nothing, so the device stays there with its auxiliary
    devices, fwctl among them, bound.  From then on cmd_exec() (cmd.c) answers every command -ENXIO
    (mlx5_cmd_is_down()).  Simplified, once: only the fwctl path (``mlx5.fwctl.fw_rpc``) sees it;
    DEVX and the kernel's own commands go on reaching the modelled firmware, and nothing recovers.
    """
    world.kernel["cmd_down"] = True
    return Reply()


ACTIONS = (
    KernelAction("ipsec_offload", ipsec_offload,
                 doc="offload an IPsec SA: DEK + IPSEC general objects (mlx5e ipsec)"),
    KernelAction("ipsec_remove", ipsec_remove, doc="remove the oldest offloaded SA"),
    KernelAction("ulp_qp_create", ulp_qp_create, doc="a kernel ULP creates a QP and takes it to RTS"),
    KernelAction("netdev_reconfigure", netdev_reconfigure, (Param("mtu", "int", 1, 3), Param("up", "bool")),
                 doc="ip link set mtu N up|down"),
    KernelAction("fw_fatal_error", fw_fatal_error,
                 doc="a fatal firmware error with devlink's fw_fatal auto_recover off: commands fail -ENXIO"),
)



# ----------------------------------------------------------------------------- DEVX, the kernel side


#: Simplification: open user contexts are bounded (each is an open file; RLIMIT_NOFILE).
MAX_UCONTEXTS = 256


def _no(code: int, why: str) -> Reply:
    return Reply(errno=code, why=why)


def fw_args(args: Args) -> dict[str, Any]:
    """The command as DEVX hands it to firmware: header uid plus the payload fields.

    ``vhca_tunnel_id`` is not handed on: the modelled firmware has no other VHCA to run a
    tunnelled command on (the simplification stated in ``device.py``)."""
    out = {"uid": args.get("uid", 0)}
    if "obj_id" in args:
        out["id"] = args["obj_id"]
    for name in ("type", "value", "op_mod", "reg", "other_function", "eqn"):
        if name in args:
            out[name] = args[name]
    return out


def alloc_ucontext(world: World, args: Args, caller: Caller) -> Reply:
    """mlx5_ib_alloc_ucontext(): with MLX5_IB_ALLOC_UCTX_DEVX, a uid of its own."""
    if len(world.kernel["ucontexts"]) >= MAX_UCONTEXTS:
        return _no(errno.EMFILE, f"{MAX_UCONTEXTS} open contexts (a model limit, like MAX_OBJECTS)")
    uid = 0
    if args["devx"]:
        reply = world.mailbox("CREATE_UCTX", uid=0, value=args["cap"])
        if reply.rc:
            return _fw_failed(reply)
        uid = int(reply.out["id"])
    handle = world.new_handle("ucontext")
    world.kernel["ucontexts"] = {**world.kernel["ucontexts"], handle: Ucontext(uid, args["devx"])}
    return Reply(handle=handle, out={"uid": uid})


def obj_create(world: World, args: Args, caller: Caller) -> Reply:
    """MLX5_IB_METHOD_DEVX_OBJ_CREATE: send, then record how to destroy it."""
    if args["ucontext"] not in world.kernel["ucontexts"]:
        return _no(errno.EINVAL, "no such ucontext")
    return _create_uobject(world, args["ucontext"], args["opcode"], fw_args(args))


def umem_reg(world: World, args: Args, caller: Caller) -> Reply:
    """MLX5_IB_METHOD_DEVX_UMEM_REG: CREATE_UMEM, undone by DESTROY_UMEM."""
    if args["ucontext"] not in world.kernel["ucontexts"]:
        return _no(errno.EINVAL, "no such ucontext")
    return _create_uobject(world, args["ucontext"], "CREATE_UMEM", {"uid": args["uid"]})


def _create_uobject(world: World, ucontext: str, op: str, fw: dict[str, Any], verbs: bool = False) -> Reply:
    reply = world.mailbox(op, **fw)
    if reply.rc:
        return _fw_failed(reply)
    ident = int(reply.out.get("id", 0))
    general = op == "CREATE_GENERAL_OBJECT"
    destroy_op = DESTROY_OF.get(op)
    destroy = None
    if destroy_op is not None:  # the destroy carries the create's (forced) uid
        dargs = {"uid": fw["uid"], "id": ident, **({"type": fw["type"]} if general else {})}
        destroy = (destroy_op, tuple(sorted(dargs.items())))
    handle = world.new_handle("devx_obj")
    uobj = Uobject(ucontext, op, fw.get("type", "") if general else "", ident, destroy, verbs)
    world.kernel["uobjects"] = {**world.kernel["uobjects"], handle: uobj}
    return Reply(handle=handle, out={"id": ident})


def _on_object(world: World, args: Args) -> Reply:
    if args["obj"] not in world.kernel["uobjects"]:
        return _no(errno.EINVAL, "no such DEVX object")
    reply = world.mailbox(args["opcode"], **fw_args(args))
    return _fw_failed(reply) if reply.rc else Reply(out=dict(reply.out))


def obj_modify(world: World, args: Args, caller: Caller) -> Reply:
    """MLX5_IB_METHOD_DEVX_OBJ_MODIFY."""
    return _on_object(world, args)


def obj_query(world: World, args: Args, caller: Caller) -> Reply:
    """MLX5_IB_METHOD_DEVX_OBJ_QUERY."""
    return _on_object(world, args)


def _destroy_uobject(world: World, handle: str) -> Reply:
    uobj: Uobject = world.kernel["uobjects"][handle]
    if uobj.destroy is not None:
        op, dargs = uobj.destroy
        reply = world.mailbox(op, **dict(dargs))
        if reply.rc:
            return _fw_failed(reply)  # devx_obj_cleanup(): the object is kept
    world.kernel["uobjects"] = {h: u for h, u in world.kernel["uobjects"].items() if h != handle}
    return Reply()


def obj_destroy(world: World, args: Args, caller: Caller) -> Reply:
    """uverbs destroy of a DEVX object: runs the recorded destroy command."""
    if args["obj"] not in world.kernel["uobjects"]:
        return _no(errno.EINVAL, "no such DEVX object")
    return _destroy_uobject(world, args["obj"])


def other(world: World, args: Args, caller: Caller) -> Reply:
    """MLX5_IB_METHOD_DEVX_OTHER: a command on no object."""
    if args["ucontext"] not in world.kernel["ucontexts"]:
        return _no(errno.EINVAL, "no such ucontext")
    reply = world.mailbox(args["opcode"], **fw_args(args))
    return _fw_failed(reply) if reply.rc else Reply(out=dict(reply.out))


def query_eqn(world: World, args: Args, caller: Caller) -> Reply:
    """MLX5_IB_METHOD_DEVX_QUERY_EQN (devx.c, 7.3.4): mlx5_comp_eqn_get() for the user's vector.

    Any context may ask (no devx_get_uid()); the answer is the EQ number userspace then
    writes into a DEVX CREATE_CQ.  The kernel remembers what it told whom, for the
    shared-eq invariant.
    """
    k = world.kernel
    if args["ucontext"] not in k["ucontexts"]:
        return _no(errno.EINVAL, "no such ucontext")
    eqn = comp_eqn_get(world, args["vector"])
    if isinstance(eqn, Reply):
        return eqn
    k["eqns_given"] = k["eqns_given"] | {(args["ucontext"], eqn)}
    return Reply(out={"eqn": eqn})


def verbs_create_cq(world: World, args: Args, caller: Caller) -> Reply:
    """ibv_create_cq: mlx5_ib_create_cq() -> create_cq_user() (cq.c, 7.3.4).

    ``MLX5_SET(create_cq_in, *cqb, uid, context->devx_uid)``: a DEVX context's verbs CQ has
    its uid (a context without DEVX: 0); its EQ is the vector's, from mlx5_comp_eqn_get().
    The handle is one devx_is_valid_obj_id() accepts (UVERBS_OBJECT_CQ: the cqn).  Under the
    2019 knob (completion EQs uid 0) a DEVX context's verbs CQ is refused like its DEVX CQ;
    whether v5.2's create_cq_user() already set the devx uid was not read.
    """
    ctx: Ucontext | None = world.kernel["ucontexts"].get(args["ucontext"])
    if ctx is None:
        return _no(errno.EINVAL, "no such ucontext")
    eqn = comp_eqn_get(world, args["vector"])
    if isinstance(eqn, Reply):
        return eqn
    return _create_uobject(world, args["ucontext"], "CREATE_CQ", {"uid": ctx.uid, "eqn": eqn}, verbs=True)


def verbs_create_qp(world: World, args: Args, caller: Caller) -> Reply:
    """ibv_create_qp: mlx5_ib's create_qp (qp.c, 7.3.4) sets the uid of the QP's PD, the context's devx_uid.

    An RC QP: devx_is_valid_obj_id() compares its qpn with CREATE_QP's (a RAW_PACKET QP's four
    ids, RQ/SQ/TIR/TIS, are not modelled).
    """
    ctx: Ucontext | None = world.kernel["ucontexts"].get(args["ucontext"])
    if ctx is None:
        return _no(errno.EINVAL, "no such ucontext")
    return _create_uobject(world, args["ucontext"], "CREATE_QP", {"uid": ctx.uid}, verbs=True)


def fwctl_open(world: World, args: Args, caller: Caller) -> Reply:
    """fwctl_fops_open() -> mlx5ctl_open_uctx() (7.3.4): CREATE_UCTX with TOOLS_RESOURCES, a uid per FD."""
    k = world.kernel
    if len(k["fwctl_fds"]) >= MAX_UCONTEXTS:
        return _no(errno.EMFILE, f"{MAX_UCONTEXTS} open fwctl FDs (a model limit)")
    reply = world.mailbox("CREATE_UCTX", uid=0, value=ifc.UCTX_CAP_TOOLS_RESOURCES)
    if reply.rc:
        return _fw_failed(reply)  # mlx5ctl_alloc_uid() fails: so does open(2)
    uid = int(reply.out["id"])
    world.believe(f"uctx:{uid}")
    k["fwctl_fds"] = (*k["fwctl_fds"], uid)
    k["fwctl_uid"] = uid
    return Reply(out={"uid": uid})


def fwctl_close(world: World, args: Args, caller: Caller) -> Reply:
    """fwctl_fops_release() -> mlx5ctl_close_uctx() (7.3.4): DESTROY_UCTX of the FD's uid, result ignored."""
    k = world.kernel
    if not k["fwctl_fds"]:
        return _no(errno.EBADF, "no open fwctl FD")
    uid = k["fwctl_fds"][-1]
    k["fwctl_fds"] = k["fwctl_fds"][:-1]
    k["fwctl_uid"] = k["fwctl_fds"][-1] if k["fwctl_fds"] else None
    world.mailbox("DESTROY_UCTX", uid=0, id=uid)  # mlx5ctl_release_uid(): only logged if it fails
    world.forget(f"uctx:{uid}")
    return Reply(out={"uid": uid})


def close(world: World, args: Args, caller: Caller) -> Reply:
    """Closing the uverbs file: every DEVX object goes (newest first), then the uid.

    RDMA_REMOVE_CLOSE ignores destroy failures, so whatever firmware refused
    to destroy stays behind; the leak invariant sees it.  Simplified, once: 7.3.4 first
    destroys the file's DEVX QPs, oldest first and asynchronously (devx.c
    mlx5_ib_ufile_hw_cleanup(), marking each DEVX_OBJ_FLAGS_HW_FREED), then the uverbs core
    the rest; here all go newest first.  Each destroy is the one devx_obj_build_destroy_cmd()
    recorded with the create's uid either way, and the modelled firmware has no references
    between objects that would make one destroy's outcome depend on another's.
    """
    k = world.kernel
    ctx: Ucontext | None = k["ucontexts"].get(args["ucontext"])
    if ctx is None:
        return _no(errno.EBADF, "no such ucontext")
    mine = [h for h, u in k["uobjects"].items() if u.ucontext == args["ucontext"]]
    for handle in reversed(mine):
        _destroy_uobject(world, handle)  # a failure keeps the handle; the file drops it below
    k["uobjects"] = {h: u for h, u in k["uobjects"].items() if u.ucontext != args["ucontext"]}
    if ctx.devx:
        world.mailbox("DESTROY_UCTX", uid=0, id=ctx.uid)  # mlx5_ib_devx_destroy()
    k["ucontexts"] = {h: c for h, c in k["ucontexts"].items() if h != args["ucontext"]}
    return Reply(out={"uid": ctx.uid})
