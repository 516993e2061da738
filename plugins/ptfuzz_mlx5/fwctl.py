"""The mlx5 fwctl driver's checks, shared by every plugin with an mlx5 fwctl channel.

linux ``drivers/fwctl/mlx5/main.c``: ``mlx5ctl_validate_rpc()`` decides by
opcode (and, for ACCESS_REG / ACCESS_REGISTER_USER, by ``op_mod``) which
scope an RPC needs; ``mlx5ctl_fw_rpc()`` writes the FD's uid (a uctx created
with ``MLX5_UCTX_OBJECT_CAP_TOOLS_RESOURCES``) into the command header.  A
rejected opcode is ``-EBADMSG``.  Register *writes* (op_mod 0) pass at any
scope: their safety rests on the firmware refusing the tools uid, which no
kernel code checks.  ``rules(channel)`` is that table for one channel, in
kernel order behind the fwctl core's scope rules; the kernel dict of the
plugin must hold the FD's uid under ``"fwctl_uid"`` (``mlx5ctl_open_uctx()``, 7.3.4: one
per open file; None when the plugin's FDs are all closed).
"""

from __future__ import annotations

import errno

from fuzzer import (
    Buffer,
    Deny,
    Effect,
    Forward,
    Knob,
    Layout,
    Promise,
    Reply,
    Request,
    Rewrite,
    Rule,
    Slot,
    Verdict,
    World,
    fwctl,
)

MLX5CTL = "drivers/fwctl/mlx5/main.c"
#: the tree this table was read from: Debian's linux-source-7.3 (issue 17; before: at 52929c21)
KERNEL = "7.3.4"
#: MLX5_ST_SZ_BYTES(mbox_in_hdr), MLX5_ST_SZ_BYTES(mbox_out_hdr) (include/linux/mlx5/mlx5_ifc.h)
MBOX_HDR = 16

#: FWCTL_RPC's lengths around one mlx5 command.  The header is mbox_in_hdr (big-endian:
#: opcode at 0, op_mod at 6); simplified, once: command bodies are not laid out, so a
#: command's natural in_len is its 16-byte header.
ENVELOPE = fwctl.envelope(Layout(
    (Slot("opcode", 0, 2, "be"), Slot("op_mod", 6, 2, "be")), size=MBOX_HDR, out=MBOX_HDR,
))

#: mlx5ctl_validate_rpc() (7.3.4): allowed at any scope ("scope >= FWCTL_RPC_CONFIGURATION").
#: DELEGATE_VHCA_MANAGEMENT's opcode is main.c's own (0x731); 7.3.4's mlx5_ifc.h lacks it.
FWCTL_ANY = frozenset({
    "POSTPONE_CONNECTED_QP_TIMEOUT", "QUERY_ADAPTER", "QUERY_ESW_FUNCTIONS", "QUERY_HCA_CAP",
    "QUERY_HCA_VPORT_CONTEXT", "QUERY_OTHER_HCA_CAP", "QUERY_ROCE_ADDRESS", "QUERY_VUID", "SET_HCA_CAP",
    "MODIFY_CONG_STATUS", "DELEGATE_VHCA_MANAGEMENT",
})
#: ... at DEBUG_READ_ONLY or above (the ~70 QUERY_* opcodes and NOP; those the models have)
FWCTL_READ = frozenset({
    "NOP", "QUERY_CQ", "QUERY_EQ", "QUERY_ESW_VPORT_CONTEXT", "QUERY_FLOW_GROUP", "QUERY_FLOW_TABLE",
    "QUERY_FLOW_TABLE_ENTRY", "QUERY_GENERAL_OBJECT", "QUERY_LAG", "QUERY_MKEY", "QUERY_NIC_VPORT_CONTEXT",
    "QUERY_QP", "QUERY_RQ", "QUERY_RQT", "QUERY_SQ", "QUERY_SRQ", "QUERY_TIR", "QUERY_TIS", "QUERY_UCTX",
    "QUERY_DIAGNOSTIC_PARAMS", "QUERY_VPORT_STATE",
})
FWCTL_WRITE = frozenset({"SET_DIAGNOSTIC_PARAMS"})
FWCTL_REG = frozenset({"ACCESS_REG", "ACCESS_REGISTER_USER"})


def _needs(r: Request, scope: str) -> Verdict:
    if fwctl.rank(r.caller.scope) < fwctl.rank(scope):
        return Deny(errno.EBADMSG, f"{r.command.op} needs scope {scope}")
    return None


def _read_scope(r: Request) -> Verdict:
    op = r.command.op
    if op in FWCTL_READ or (op in FWCTL_REG and r.args.get("op_mod", 1) != 0):
        return _needs(r, fwctl.DEBUG_READ_ONLY)
    return None


def _write_scope(r: Request) -> Verdict:
    return _needs(r, fwctl.DEBUG_WRITE) if r.command.op in FWCTL_WRITE else None


def _msgsize(r: Request) -> Verdict:
    if r.size("in_len") < MBOX_HDR or r.size("out_len") < MBOX_HDR:
        return Deny(errno.EMSGSIZE, "in_len or out_len below the mailbox header")
    return None


def _default_deny(r: Request) -> Verdict:
    if r.payload is not None:  # MLX5_GET(mbox_in_hdr, rpc_in, opcode): the read the size check guards
        r.payload.read(0, 2, by="mlx5ctl_fw_rpc(): MLX5_GET(mbox_in_hdr, rpc_in, opcode)")
    if r.command.op in FWCTL_ANY | FWCTL_READ | FWCTL_WRITE | FWCTL_REG:
        return None
    return Deny(errno.EBADMSG, "mlx5ctl_validate_rpc(): default: return false")


#: the knob a policy sets to what mlx5ctl_fw_rpc()'s error path frees ``rpc_out`` with: ``kvfree`` since
#: 7f059e473267 ("fwctl/mlx5: Fix memory alloc/free in mlx5ctl_fw_rpc()", 2025-08), ``kfree`` in 52929c2142041
ERROR_FREE = "mlx5ctl_error_free"
#: its declaration, in every subsystem whose channels use ``transport``
ERROR_FREE_KNOB = Knob(ERROR_FREE, "kvfree", choices=("kvfree", "kfree"),
                       cite="drivers/fwctl/mlx5/main.c mlx5ctl_fw_rpc() error path (7f059e473267)",
                       doc="what the error path frees rpc_out with; kfree of a kvzalloc'd buffer is the 2025 bug")
#: mlx5_cmd_is_down() (cmd.c, 7.3.4): the kernel dict key the rdma plugin's ``fw_fatal_error`` sets
CMD_DOWN = "cmd_down"


def fw_rpc(world: World, request: Request, forward: Forward, rpc_in: Buffer) -> tuple[Reply, Buffer | None]:
    """mlx5ctl_fw_rpc() (drivers/fwctl/mlx5/main.c, 7.3.4) after mlx5ctl_validate_rpc(): where it answers.

    In place when ``*out_len <= in_len``, else in ``kvzalloc(*out_len)``; the
    firmware's output header (status, syndrome) lands there (mlx5_cmd_do()).
    When mlx5_cmd_do() fails with anything but -EREMOTEIO ("the RPC did not make
    it to the device": cmd_exec() answers -ENXIO while the command interface is
    down) it frees ``rpc_out`` unless it is ``rpc_in`` and returns ``ERR_PTR(ret)``.
    """
    in_len, out_len = request.size("in_len"), request.size("out_len")
    if out_len <= in_len:
        rpc_out = rpc_in
    else:
        rpc_out = world.buffer("rpc_out", out_len, allocator="kvzalloc",
                               by="mlx5ctl_fw_rpc(): rpc_out = kvzalloc(*out_len)")
    if request.kernel.get(CMD_DOWN):
        if rpc_out is not rpc_in:
            freer = request.knobs[ERROR_FREE]
            rpc_out.free(freer, by=f"mlx5ctl_fw_rpc(): {freer}(rpc_out) on mlx5_cmd_do()'s error")
        return Reply(errno=errno.ENXIO, why="mlx5_cmd_do(): the command interface is down (mlx5_cmd_is_down())"), None
    reply = forward(request.args)
    rpc_out.write(0, MBOX_HDR, by="mlx5_cmd_do(): the firmware's mbox_out_hdr")
    return reply, rpc_out


def transport(world: World, request: Request, forward: Forward) -> Reply:
    """FWCTL_RPC to mlx5: the fwctl core's buffers (``fwctl.rpc``) around mlx5ctl_fw_rpc() (``fw_rpc``)."""
    return fwctl.rpc(world, request, lambda rpc_in: fw_rpc(world, request, forward, rpc_in))


def _fwctl_uid(r: Request) -> Verdict:
    if r.kernel["fwctl_uid"] is None:  # the rdma model's FDs are all closed
        return Deny(errno.EBADF, "no open fwctl FD")
    return Rewrite({"uid": r.kernel["fwctl_uid"]}, "MLX5_SET(mbox_in_hdr, rpc_in, uid, mfd->uctx_uid)")


def rules(channel: str, core: tuple[Rule, ...] | None = None) -> tuple[Rule, ...]:
    """The fwctl core's rules (``core``: a plugin's own, e.g. with the -ENODEV of an unregistered
    device), then mlx5ctl_validate_rpc() and the uid of mlx5ctl_fw_rpc()."""
    return (
        *(fwctl.core_rules(channel) if core is None else core),
        Rule("mlx5ctl-msgsize", _msgsize, f"{MLX5CTL} mlx5ctl_fw_rpc() (7.3.4): in_len/out_len < mbox header -> -EMSGSIZE",
             channels=(channel,)),
        Rule("mlx5ctl-read-scope", _read_scope,
             f"{MLX5CTL} mlx5ctl_validate_rpc() (7.3.4): queries and ACCESS_REG reads need DEBUG_READ_ONLY",
             channels=(channel,)),
        Rule("mlx5ctl-write-scope", _write_scope,
             f"{MLX5CTL} mlx5ctl_validate_rpc() (7.3.4): SET_DIAGNOSTIC_PARAMS needs DEBUG_WRITE", channels=(channel,)),
        Rule("mlx5ctl-default-deny", _default_deny, f"{MLX5CTL} mlx5ctl_validate_rpc() (7.3.4): default: false",
             channels=(channel,)),
        Rule("mlx5ctl-force-uid", _fwctl_uid, f"{MLX5CTL} mlx5ctl_fw_rpc() (7.3.4)", channels=(channel,)),
    )


def promise(channel: str) -> Promise:
    """What the rdma plugin's policy promises: immediate log, data and security changes need a write scope."""
    return Promise(channel, f"{MLX5CTL} mlx5ctl_validate_rpc(); Documentation/userspace-api/fwctl/fwctl.rst",
                   effects=Effect.LOG_IMMEDIATE | Effect.DATA_IMMEDIATE | Effect.SECURITY,
                   min_scope=fwctl.DEBUG_WRITE, taint=frozenset({fwctl.TAINT_FWCTL}))
