"""How the kernel carries an allowed command to the device: the buffers it allocates and copies.

The policy rules decide; these functions are the code between the decision
and the device, where a trusted length turns into an out-of-bounds access.
Every copy goes through a ``Buffer`` (``world.buffer``), so the
``out-of-bounds`` invariant sees it.

* ``mailbox``: ``CXL_MEM_SEND_COMMAND`` (``drivers/cxl/core/mbox.c``
  ``cxl_mbox_cmd_ctor()``, ``handle_mailbox_cmd_from_user()``) and the PCI
  mailbox (``drivers/cxl/pci.c`` ``__cxl_pci_mbox_send_cmd()``);
* ``features_rpc``: ``FWCTL_RPC`` to the CXL fwctl driver
  (``drivers/fwctl/main.c`` ``fwctl_cmd_rpc()``, ``drivers/cxl/core/features.c``
  ``cxlctl_get_feature()``, ``cxlctl_set_feature()``, ``cxl_get_feature()``,
  ``cxl_set_feature()``, read from 7.3.4).  The size checks are policy rules
  (``cxlctl-in-len``, ``get-feature-out-len``, ``set-feature-out-len``), so
  this code trusts the sizes as the kernel before them did.

Accesses happen in the kernel's code order, because the ``out-of-bounds``
oracle names the first bad one, as the kernel's first fault or KASAN report
does: in ``cxlctl_get_feature()`` the mailbox copy into ``rpc_out->payload``
comes before ``rpc_out->size`` is written.  Reads the kernel makes between
two rules (``feat_in->offset``, ``->flags`` after ``is_cxl_feature_exclusive()``)
are made here, after the last rule: the rules in between read no payload, so
no access is reordered against another.
"""

from __future__ import annotations

import errno

import attrs

from fuzzer import Buffer, Envelope, Forward, Layout, Param, Reply, Request, Slot, World, fwctl

from . import mailbox as mb
from .kernel import exclusive_features

FWCTL_RPC_CXL_HDR = 16  # struct fwctl_rpc_cxl: opcode, flags, op_size, reserved1 (u32 each)
FWCTL_RPC_CXL_OUT = 8  # struct fwctl_rpc_cxl_out: size, retval (u32 each)
SET_FEAT_HDR = 32  # struct cxl_mbox_set_feat_hdr: uuid, flags, offset, version, rsvd[9]

#: struct cxl_send_command around the payload (a table id).  ``flags`` and ``rsvd`` are not lengths, but they are
#: what sizes are to the engine: fields a correct caller sets to a known value (0), drawn mostly at
#: it, left out of a step when they have it, shrunk back to it.  Simplification, once: ``rsvd`` is
#: one reserved field, the upper 16 bits of the id union (``raw.rsvd``; on a table id it makes the
#: u32 ``rsvd`` nonzero); ``in.rsvd`` and ``out.rsvd``, which cxl_to_mem_cmd() refuses at the same
#: point with the same -EINVAL, are not drawn apart from it.
MAILBOX_ENVELOPE = Envelope("in_size", "out_size", sizes=(
    Param("in_size", "size", 0, mb.SIZE_MAX, natural="in", marks=("payload_size",),
          doc="struct cxl_send_command in.size: bytes the kernel copies from in.payload"),
    Param("out_size", "size", 0, mb.SIZE_MAX, natural="out", marks=("payload_size", mb.VARIABLE),
          doc="out.size: room in out.payload (~0: the device's payload size)"),
    Param("flags", "size", 0, mb.SIZE_MAX, natural=0, marks=(mb.COMMAND_FLAG_MASK, mb.COMMAND_FLAG_MASK + 1),
          doc="struct cxl_send_command flags: a table id refuses bits above CXL_MEM_COMMAND_FLAG_MASK"),
    Param("rsvd", "size", 0, 0xFFFF, natural=0,
          doc="raw.rsvd, the upper half of the id union (send_cmd->rsvd on a table id): must be 0"),
))
#: the same for CXL_MEM_COMMAND_ID_RAW, less ``flags``: cxl_to_mem_cmd_raw() (7.3.4) never looks at
#: it, so drawing it would only cost steps
RAW_ENVELOPE = attrs.evolve(MAILBOX_ENVELOPE, sizes=tuple(p for p in MAILBOX_ENVELOPE.sizes if p.name != "flags"))

#: the handler that allocates each command's rpc_out (its allocation site, as kmemleak would name it)
_HANDLER = {"GET_FEATURE": "cxlctl_get_feature", "SET_FEATURE": "cxlctl_set_feature"}

FWCTL_ENVELOPE = fwctl.envelope(Layout(
    (Slot("opcode", 0, 4), Slot("op_size", 8, 4)), size=FWCTL_RPC_CXL_HDR, out=FWCTL_RPC_CXL_OUT,
), extra=(
    Param("op_size", "size", 0, mb.SIZE_MAX, natural="payload", marks=(SET_FEAT_HDR,),
          doc="struct fwctl_rpc_cxl op_size: length of the command's own input"),
))


def _payload_len_ok(world: World, request: Request, in_size: int, payload_size: int) -> bool:
    """QEMU cxl_process_cci_message(): a fixed-size command gets exactly its size, a variable one its minimum.

    A device whose ``info`` has ``payload_in`` (op -> exact input length, None for a variable
    one) checks that table instead; an op it lacks is not checked here (its handler answers).
    """
    lengths = world.device.info.get("payload_in")
    if lengths is not None:
        want = lengths.get(request.command.op)
        return want is None or in_size == want
    layout = request.command.layout
    if layout is None:
        return True
    if in_size > payload_size:
        return False
    return in_size == layout.size if layout.size is not None else in_size >= layout.min


def _sanitize_gate(world: World, opcode: int) -> Reply | None:
    """pci.c __cxl_pci_mbox_send_cmd() (7.3.4): while the sanitize poller runs (``poll_tmo_secs``),
    every command but Get Health Info is -EBUSY before it reaches the device."""
    if world.kernel.get("sanitize_active") and opcode != mb.GET_HEALTH_INFO:
        return Reply(errno=errno.EBUSY, why="sanitize in flight: only Get Health Info goes through")
    return None


def _background(world: World, opcode: int, reply: Reply) -> Reply:
    """pci.c __cxl_pci_mbox_send_cmd() (7.3.4) on a BACKGROUND return code.

    Sanitize starts the poller (the gate above).  Any other background command waits
    ``poll_count`` times, and a command from userspace has none (cxl_mbox_cmd_ctor() sets none):
    the device has started it, the ioctl says -ETIMEDOUT.
    """
    if reply.rc != mb.RC_BACKGROUND:
        return reply
    if opcode == mb.SANITIZE:
        world.kernel["sanitize_active"] = True
        return reply
    return attrs.evolve(reply, errno=errno.ETIMEDOUT, why="timeout waiting for background (0 ms)")


def security_sysfs(world: World, request: Request, forward: Forward) -> Reply:
    """security/{sanitize,erase}: mbox.c cxl_mem_sanitize() -> __cxl_mem_sanitize() (7.3.4).

    The policy's rules check decoders and the security state; here the mailbox's own answers:
    the busy gate, the background start, and a device error as cxl_mbox_cmd_rc2errno() says (-ENXIO).
    """
    opcode = request.command.opcode
    gate = _sanitize_gate(world, mb.GET_SECURITY_STATE)  # the first command it sends
    if gate is not None:
        return gate
    reply = _background(world, opcode, forward(request.args))
    if reply.rc not in (0, mb.RC_BACKGROUND):
        return attrs.evolve(reply, errno=errno.ENXIO)
    return reply


def mailbox(world: World, request: Request, forward: Forward) -> Reply:
    """cxl_send_cmd() after validation: copy in, run the mailbox, copy out."""
    payload_size = int(world.device.info.get("payload_size", mb.PAYLOAD_SIZE))
    in_size, out_size = request.size("in_size"), request.size("out_size")
    gate = _sanitize_gate(world, request.command.opcode)
    if gate is not None:
        return gate
    # cxl_mbox_cmd_ctor() (7.3.4): the output bounce buffer (allocated below, where it is written) is
    # min_t(size_t, out_size, cxl_mbox->payload_size); the mainline copies the review read had no clamp
    # but for ~0, and the copy back is clamped by min3() either way, so no finding depends on it
    size_out = min(out_size, payload_size)
    # __cxl_pci_mbox_send_cmd(): memcpy_toio(payload, payload_in, size_in) into the mailbox registers
    if in_size:
        registers = world.buffer("mailbox.payload", payload_size, kind="device")
        registers.write(0, in_size, by="__cxl_pci_mbox_send_cmd() memcpy_toio()")
    if not _payload_len_ok(world, request, in_size, payload_size):
        reply = Reply(rc=mb.RC_PAYLOADLEN, why="payload length does not fit the command")
    else:
        reply = _background(world, request.command.opcode, forward(request.args))
    # "#8": n = min3(size_out, payload_size, out_len): the copy back is clamped
    n = min(size_out, payload_size, len(reply.data))
    if n:
        bounce = world.buffer("payload_out", size_out)
        bounce.write(0, reply.data[:n], by="__cxl_pci_mbox_send_cmd() memcpy_fromio()")
        # handle_mailbox_cmd_from_user(): copy_to_user(out.payload, payload_out, size_out)
        world.buffer("user.out", out_size, kind="user").write(0, n, by="handle_mailbox_cmd_from_user()")
    return reply


def features_rpc(world: World, request: Request, forward: Forward) -> Reply:
    """FWCTL_RPC to CXL: the fwctl core's buffers (``fwctl.rpc``) around cxlctl_fw_rpc()."""
    return fwctl.rpc(world, request, lambda payload: _fw_rpc(world, request, forward, payload))


def _fw_rpc(world: World, request: Request, forward: Forward, payload: Buffer) -> tuple[Reply, Buffer | None]:
    """cxlctl_handle_commands() for the command the rules let through.

    Each handler (7.3.4) answers in ``rpc_out __free(kvfree) = kvzalloc(...)`` and hands it to the
    core with ``no_free_ptr(rpc_out)`` on every path after the allocation, the core kvfree()s it."""
    op = request.command.op
    out_len = request.size("out_len")
    payload_size = int(world.device.info.get("payload_size", mb.PAYLOAD_SIZE))
    # cxlctl_fw_rpc(): ``u16 opcode = rpc_in->opcode;`` is the dispatch, unconditional: a policy
    # without the header check (permissive, or a kernel before it) faults here on a short request
    payload.read(0, 4, by="cxlctl_fw_rpc(): rpc_in->opcode")
    if op == "GET_SUPPORTED_FEATURES":
        # cxlctl_get_supported_features(): reads count and start_idx, sizes its own answer
        payload.read(FWCTL_RPC_CXL_HDR, 6, by="cxlctl_get_supported_features()")
        # 7.3.4 answers from cxlfs->entries, read once at probe, not from the device, and reports an
        # exclusive feature (is_cxl_feature_exclusive()) with CHANGEABLE cleared and set_feat_size 0
        exclusive = exclusive_features(world)
        feats = tuple((uuid, changeable and uuid not in exclusive, effects)
                      for uuid, (changeable, effects) in world.kernel["features"].items())
        # out_size = sizeof(struct fwctl_rpc_cxl_out) + struct_size(feat_out, ents, requested): an 8-byte
        # cxl_mbox_get_sup_feats_out header and 48 bytes per struct cxl_feat_entry
        return Reply(out={"features": feats}), world.buffer(
            "rpc_out", FWCTL_RPC_CXL_OUT + 8 + 48 * len(feats), allocator="kvzalloc",
            by="cxlctl_get_supported_features(): rpc_out = kvzalloc(out_size)")
    # the driver's answer is kvzalloc(*out_len): the caller's out_len
    rpc_out = world.buffer("rpc_out", out_len, allocator="kvzalloc", by=f"{_HANDLER.get(op, 'cxlctl_fw_rpc')}(): "
                           "rpc_out = kvzalloc(out_size)")
    if op == "GET_FEATURE":
        count = int(request.field("count", by="cxlctl_get_feature()"))
        # cxl_get_feature(..., feat_in->selection, rpc_out->payload, count, ...): its arguments
        payload.read(FWCTL_RPC_CXL_HDR + 20, 1, by="cxlctl_get_feature(): feat_in->selection")
        # cxl_get_feature(): the mailbox writes up to min(count, payload_size) at rpc_out->payload, the
        # first write into rpc_out (out_len 0: kvzalloc(0) is ZERO_SIZE_PTR, and this faults).  Past a
        # real allocation stock KASAN on x86 does not see it: pci.c's memcpy_fromio() is rep movs, not
        # instrumented, so the next slab object is overwritten silently (slub_debug redzones or KFENCE
        # notice at free); the live target's test-kasan-mailbox-copies.patch adds kasan_check_write()
        reply = forward({**request.args, "count": count})
        n = min(count, payload_size, len(reply.data))
        if n:
            rpc_out.write(FWCTL_RPC_CXL_OUT, reply.data[:n], by="cxl_get_feature() -> __cxl_pci_mbox_send_cmd()")
        rpc_out.write(0, 8, by="cxlctl_get_feature(): rpc_out->size, ->retval")
        return reply, rpc_out
    if op == "SET_FEATURE":
        payload.read(FWCTL_RPC_CXL_HDR + 16, 6, by="cxlctl_set_feature(): feat_in->offset, ->flags")
        rpc_out.write(0, 4, by="cxlctl_set_feature(): rpc_out->size = 0")
        op_size = request.size("op_size")
        data_size = (op_size - SET_FEAT_HDR) % (1 << 64)  # size_t: an op_size below the header wraps
        payload.read(FWCTL_RPC_CXL_HDR + 22, 1, by="cxlctl_set_feature(): feat_in->version")
        # cxl_set_feature(): memcpy(pi->feat_data, feat_data, data_in_size) from the request buffer
        payload.read(FWCTL_RPC_CXL_HDR + SET_FEAT_HDR, data_size, by="cxl_set_feature() memcpy()")
        reply = forward(request.args)
        rpc_out.write(4, 4, by="cxlctl_set_feature(): rpc_out->retval")
        return reply, rpc_out
    return forward(request.args), rpc_out
