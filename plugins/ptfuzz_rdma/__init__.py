"""The RDMA plugin: an mlx5 HCA, the mlx5 drivers, DEVX and mlx5 fwctl, and their policies.

Loaded through the ``ptfuzz`` entry-point group like any third-party plugin,
and using only ptfuzz's public records.
"""

from __future__ import annotations

from collections.abc import Iterator

from ptfuzz_mlx5 import fwctl as mlx5_fwctl
from ptfuzz_mlx5 import ifc

from fuzzer import (
    CallerSpace,
    Channel,
    Command,
    Firmware,
    Invariant,
    Knob,
    Policy,
    StepContext,
    Subsystem,
    Violation,
    fwctl,
    hookimpl,
)

from . import kernel
from .device import DEVX, FIELDS, FIRMWARE, FWCTL, FWCTL_FD, LAX, SPEC, TUNNEL, objects_of, uid_caps
from .devx import FWCTL_FDS, METHODS
from .policies import CAP_NET_RAW, POLICIES

__version__ = "0.1.0"

CHANNELS = (
    Channel(DEVX, "uverbs DEVX methods on /dev/infiniband/uverbsN (drivers/infiniband/hw/mlx5/devx.c)",
            callers=CallerSpace(caps=(frozenset(), frozenset({CAP_NET_RAW}), frozenset({fwctl.CAP_SYS_RAWIO}),
                                      frozenset({CAP_NET_RAW, fwctl.CAP_SYS_RAWIO}))),
            opener="ALLOC_UCONTEXT", closer="CLOSE"),
    Channel(FWCTL, "FWCTL_RPC to the mlx5 fwctl device (drivers/fwctl/mlx5/main.c)", scopes=fwctl.DRAWN_SCOPES,
            callers=CallerSpace(caps=(frozenset(), frozenset({fwctl.CAP_SYS_RAWIO}))),
            envelope=mlx5_fwctl.ENVELOPE, transport=mlx5_fwctl.transport),
    Channel(FWCTL_FD, "open(2)/close(2) of the mlx5 fwctl device (drivers/fwctl/main.c fwctl_fops_open(), 7.3.4: "
            "no capability check)", callers=CallerSpace(caps=(frozenset(),))),
)

SUBSYSTEM = Subsystem(
    "rdma",
    fields=FIELDS,
    channels=CHANNELS,
    commands=(*(c for c in FIRMWARE if isinstance(c, Command)), *METHODS, *FWCTL_FDS),
    firmware=tuple(f for f in FIRMWARE if isinstance(f, Firmware)),
    unsupported=ifc.BAD_OP,
    devices=(SPEC, LAX, TUNNEL),
    actions=kernel.ACTIONS,
    kernel=kernel.boot,
    probe=kernel.probe,
    status_names=ifc.STATUS_NAMES,
    steps=50,  # a DEVX bug needs a context and an object before the misuse
    knobs=(
        Knob("comp_eq_uid", ifc.SHARED_UID, cite="drivers/net/ethernet/mellanox/mlx5/core/eq.c create_map_eq()",
             doc="the uid a completion EQ gets: shared (0xffff) since c191f93454bc, 0 before (kernel.comp_eq_uid())"),
        mlx5_fwctl.ERROR_FREE_KNOB,
    ),
    doc="mlx5 HCA: DEVX object passthrough and mlx5 fwctl",
)


def _no_leak_on_close(ctx: StepContext) -> Iterator[Violation]:
    """Closing a user context leaves no firmware object of its uid behind (fwctl.rst, devx.c)."""
    if ctx.step.op not in ("CLOSE", "FWCTL_CLOSE") or ctx.reply is None or not ctx.reply.out.get("uid"):
        return
    left = objects_of(ctx.world.device.state, ctx.reply.out["uid"])
    for family in sorted({key.partition(":")[0] for key in left}):
        keys = [k for k in left if k.partition(":")[0] == family]
        yield ctx.violation("ucontext-leak", f"uid {ctx.reply.out['uid']} was closed but {keys} remain",
                            field=family)


def _given_eq_is_usable(ctx: StepContext) -> Iterator[Violation]:
    """An EQ number DEVX QUERY_EQN gave a context is one that context's DEVX CQs may use.

    That is what MLX5_IB_METHOD_DEVX_QUERY_EQN is for (rdma-core mlx5dv_devx_query_eqn(),
    then CREATE_CQ with it); c191f93454bc ("net/mlx5: Set completion EQs as shared
    resources", 2019: "so that they can be used by CQs with uid != 0") made it true.  This
    invariant is functional: before the fix the firmware refused the CQ (its uid may not
    reference a uid-0 object), no kernel state went wrong, and the violation says just that.
    """
    if ctx.step.op != "OBJ_CREATE$cq" or not ctx.allowed or ctx.reply is None or ctx.reply.rc != ifc.BAD_PARAM:
        return
    eqn = ctx.step.args.get("eqn")
    if (ctx.step.args.get("ucontext"), eqn) not in ctx.world.kernel["eqns_given"]:
        return
    eq = ctx.world.device.state.get(f"eq:{eqn}")
    if eq is None or eq.uid == ifc.SHARED_UID:
        return
    yield ctx.violation("shared-eq", f"QUERY_EQN gave this context eqn {eqn} for its CQs, but firmware refused "
                        f"the CQ: eq:{eqn} has uid {eq.uid}, not MLX5_SHARED_RESOURCE_UID (a functional "
                        "failure, no kernel state is wrong)", field="eq")


def _uctx_caps_need_capabilities(ctx: StepContext) -> Iterator[Violation]:
    """A DEVX uid has RAW_TX only for CAP_NET_RAW, INTERNAL_DEV_RES only for CAP_SYS_RAWIO, TOOLS never."""
    if ctx.step.op != "ALLOC_UCONTEXT" or ctx.reply is None or not ctx.reply.out.get("uid"):
        return
    caps = uid_caps(ctx.world.device.state, ctx.reply.out["uid"]) or 0
    assert ctx.step.caller is not None
    allowed = (ifc.UCTX_CAP_RAW_TX if CAP_NET_RAW in ctx.step.caller.caps else 0) | (
        ifc.UCTX_CAP_INTERNAL_DEV_RES if fwctl.CAP_SYS_RAWIO in ctx.step.caller.caps else 0)
    if caps & ~allowed:
        yield ctx.violation("uctx-caps", f"uid {ctx.reply.out['uid']} got caps {caps:#x} but the caller "
                            f"({ctx.step.caller.describe()}) may have only {allowed:#x}", field="uctx",
                            severity="hole")


@hookimpl
def ptfuzz_subsystems() -> list[Subsystem]:
    return [SUBSYSTEM]


@hookimpl
def ptfuzz_policies() -> list[Policy]:
    return list(POLICIES)


@hookimpl
def ptfuzz_invariants() -> list[Invariant]:
    return [
        Invariant("ucontext-leak", _no_leak_on_close, subsystem="rdma",
                  doc="closing a ucontext destroys every firmware object of its uid"),
        Invariant("uctx-caps", _uctx_caps_need_capabilities, subsystem="rdma",
                  doc="uid capability bits follow the caller's capabilities"),
        Invariant("shared-eq", _given_eq_is_usable, subsystem="rdma",
                  doc="a DEVX CQ may use the EQ number QUERY_EQN gave its context (functional)"),
    ]
