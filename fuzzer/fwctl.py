"""The fwctl core, shared by every subsystem that has an fwctl channel.

linux ``drivers/fwctl/main.c`` ``fwctl_cmd_rpc()`` checks the requested scope
before the device driver sees the RPC: DEBUG_WRITE_FULL needs CAP_SYS_RAWIO,
and both write scopes taint the kernel (TAINT_FWCTL, letter 'J') even if the
driver then rejects the RPC.  A plugin puts ``core_rules(channel)`` in front
of its own driver rules, and gives the channel ``envelope(header)``: the
``in_len``/``out_len`` every RPC carries around the driver's own header, and
``struct fwctl_rpc``'s own framing (``fwctl_size``, ``fwctl_tail``), which
``fwctl_fops_ioctl()`` checks before ``fwctl_cmd_rpc()`` runs.

Scopes are drawn beyond the enum (``UNDEFINED``, the value 4): the kernel's
``switch (cmd->scope)`` refuses it with ``-EOPNOTSUPP``, and every driver
compares scopes with ``>=`` (``rank()`` keeps the number), so without that
``default:`` an undefined scope would pass every driver check untainted.

Its transport wraps the driver's ``fw_rpc`` in ``rpc()``, the core's allocation and
frees around it.
"""

from __future__ import annotations

import errno
from collections.abc import Callable, Iterable

from fuzzer.api import World
from fuzzer.sizes import Buffer, Envelope, Layout
from fuzzer.spec import Deny, Param, Reply, Request, Rule, Taint, Verdict

CONFIGURATION = "configuration"  # FWCTL_RPC_CONFIGURATION = 0
DEBUG_READ_ONLY = "debug_read_only"  # 1
DEBUG_WRITE = "debug_write"  # 2
DEBUG_WRITE_FULL = "debug_write_full"  # 3
#: enum fwctl_rpc_scope, least privileged first.
SCOPES = (CONFIGURATION, DEBUG_READ_ONLY, DEBUG_WRITE, DEBUG_WRITE_FULL)
#: FWCTL_RPC_DEBUG_WRITE_FULL + 1: a value userspace can put in ``struct fwctl_rpc.scope`` that the enum does not name
UNDEFINED = "undefined_4"
#: what a caller may put in ``scope``, by value: the enum, then one value past it (a channel's ``Channel.scopes``)
DRAWN_SCOPES = (*SCOPES, UNDEFINED)
TAINT_FWCTL = "FWCTL"
CAP_SYS_RAWIO = "CAP_SYS_RAWIO"


def rank(scope: str | None) -> int:
    """The scope's value in ``struct fwctl_rpc.scope`` (-1 for none): drivers compare it with ``>=``."""
    return DRAWN_SCOPES.index(scope) if scope in DRAWN_SCOPES else -1


def _scope_known(r: Request) -> Verdict:
    return None if r.caller.scope in SCOPES else Deny(errno.EOPNOTSUPP, "unknown scope")


def _rawio_for_full(r: Request) -> Verdict:
    if r.caller.scope == DEBUG_WRITE_FULL and CAP_SYS_RAWIO not in r.caller.caps:
        return Deny(errno.EPERM, "DEBUG_WRITE_FULL needs CAP_SYS_RAWIO")
    return None


def _taint_writes(r: Request) -> Verdict:
    """The two ``case``s that taint, not ``>= DEBUG_WRITE``: an undefined scope falls through the switch."""
    if r.caller.scope in (DEBUG_WRITE, DEBUG_WRITE_FULL):
        return Taint(TAINT_FWCTL, "write scope requested")
    return None


#: include/uapi/fwctl/fwctl.h (7.3.4) ``struct fwctl_rpc``: size, scope, in_len, out_len (u32), in, out (u64)
RPC_SIZE = 32
#: fwctl_ioctl_ops[]: ``IOCTL_OP(FWCTL_RPC, fwctl_cmd_rpc, struct fwctl_rpc, out)``, min_size = offsetofend(.., out):
#: the whole struct, so no shorter size is accepted and zero-filled
RPC_MIN_SIZE = 32
#: Simplification: a caller maps at most a page for the struct.  A larger ``size`` with a zero tail runs
#: off the mapping, and copy_struct_from_user()'s check_zeroed_user() answers -EFAULT, which no rule decides.
RPC_SIZE_MAX = 4096


def _rpc_min_size(r: Request) -> Verdict:
    """fwctl_fops_ioctl() (7.3.4): ``if (ucmd.user_size < op->min_size) return -EINVAL;``"""
    if r.args.get("fwctl_size", RPC_SIZE) < RPC_MIN_SIZE:
        return Deny(errno.EINVAL, "struct fwctl_rpc size below min_size")
    return None


def _rpc_tail_zero(r: Request) -> Verdict:
    """fwctl_fops_ioctl() (7.3.4) ``copy_struct_from_user(ucmd.cmd, op->size, ucmd.ubuffer, ucmd.user_size)``:
    a size past the kernel's struct is a newer userspace's, accepted only if the extension is all zero
    (include/linux/uaccess.h: "-E2BIG: (@usize > @ksize) and there are non-zero trailing bytes")."""
    if r.args.get("fwctl_size", RPC_SIZE) > RPC_SIZE and r.args.get("fwctl_tail", 0):
        return Deny(errno.E2BIG, "non-zero bytes past struct fwctl_rpc")
    return None


#: drivers/fwctl/main.c: MAX_RPC_LEN = SZ_2M, the most in_len or out_len may ask for
MAX_RPC_LEN = 2 << 20


def envelope(header: Layout, *, in_marks: Iterable[int] = (), out_marks: Iterable[int] = (),
             out_natural: str = "out", extra: Iterable[Param] = ()) -> Envelope:
    """``struct fwctl_rpc``'s lengths around one driver's request.

    ``fwctl_cmd_rpc()`` copies exactly ``in_len`` bytes and hands the driver
    ``out_len`` unchecked but for ``MAX_RPC_LEN``: every driver must compare
    them with its own ``header`` (its size and output size are boundaries
    worth drawing).  ``extra`` are size fields inside that header.  Before
    them come the struct's own ``size`` and what lies past it (``fwctl_size``,
    ``fwctl_tail``); 7.3.4's struct has no flags or reserved field, so the
    tail is the only content the core checks.

    Example (mlx5: ``mbox_in_hdr``, big-endian opcode and op_mod)::

        fwctl.envelope(Layout((Slot("opcode", 0, 2, "be"), Slot("op_mod", 6, 2, "be")), size=16, out=16))
    """
    return Envelope("in_len", "out_len", header=header, sizes=(
        Param("fwctl_size", "size", 0, RPC_SIZE_MAX, natural=RPC_SIZE, marks=(RPC_MIN_SIZE - 1, RPC_SIZE + 8),
              doc="struct fwctl_rpc size: the struct userspace says it passes (min_size, sizeof, a newer one's)"),
        Param("fwctl_tail", "size", 0, 0xFF, natural=0,
              doc="the byte userspace leaves in every byte past sizeof(struct fwctl_rpc) up to size "
                  "(0: a newer userspace's unused extension)"),
        Param("in_len", "size", 0, 0xFFFFFFFF, natural="in",
              marks=(MAX_RPC_LEN, header.natural({}), *in_marks),
              doc="struct fwctl_rpc in_len: the bytes fwctl_cmd_rpc() copies in and hands the driver"),
        Param("out_len", "size", 0, 0xFFFFFFFF, natural=out_natural,
              marks=(MAX_RPC_LEN, *((header.out,) if header.out else ()), *out_marks),
              doc="struct fwctl_rpc out_len: the room the driver may answer in"),
        *extra,
    ))


def _max_rpc_len(r: Request) -> Verdict:
    """Only on channels whose requests carry in_len/out_len (an ``Envelope``)."""
    if r.args.get("in_len", 0) > MAX_RPC_LEN or r.args.get("out_len", 0) > MAX_RPC_LEN:
        return Deny(errno.EMSGSIZE, "in_len or out_len above MAX_RPC_LEN")
    return None


_CITE = "drivers/fwctl/main.c fwctl_cmd_rpc() (7.3.4)"
_IOCTL = "drivers/fwctl/main.c fwctl_fops_ioctl() (7.3.4)"


def framing_rules(channel: str) -> tuple[Rule, ...]:
    """fwctl_fops_ioctl()'s checks of ``struct fwctl_rpc`` itself, before the device's registration and
    fwctl_cmd_rpc().  Their removal opens nothing in the model (a short struct is zero-filled, a tail
    ignored): they are ABI, tested by errno; the scope's ``default:`` is the one with a hole behind it."""
    return (
        Rule("fwctl-rpc-min-size", _rpc_min_size, f"{_IOCTL}: ucmd.user_size < op->min_size -> -EINVAL",
             channels=(channel,)),
        Rule("fwctl-rpc-tail", _rpc_tail_zero,
             f"{_IOCTL}: copy_struct_from_user() -> -E2BIG on non-zero bytes past sizeof(struct fwctl_rpc)",
             channels=(channel,)),
    )


def rpc_rules(channel: str) -> tuple[Rule, ...]:
    """The checks of fwctl_cmd_rpc() before the driver runs, in kernel order, for ``channel``.

    After them the core copies exactly ``in_len`` bytes in and hands the driver
    ``(in, in_len, &out_len)``: the driver must compare its own headers with
    ``in_len`` before it parses them (fwctl.rst).
    """
    return (
        Rule("fwctl-max-rpc-len", _max_rpc_len, _CITE, channels=(channel,)),
        Rule("fwctl-scope-known", _scope_known, f"{_CITE}: switch (cmd->scope) default: -EOPNOTSUPP",
             channels=(channel,)),
        Rule("fwctl-rawio-for-full", _rawio_for_full, _CITE, channels=(channel,)),
        Rule("fwctl-taint", _taint_writes, _CITE, channels=(channel,)),
    )


def core_rules(channel: str) -> tuple[Rule, ...]:
    """Everything the fwctl core checks before the driver, in kernel order: the framing, then fwctl_cmd_rpc().

    A plugin that models ``fwctl_fops_ioctl()``'s ``-ENODEV`` for an unregistered device puts it
    between ``framing_rules()`` and ``rpc_rules()``, where the kernel checks it.
    """
    return (*framing_rules(channel), *rpc_rules(channel))


#: A driver's ``fw_rpc`` as ``rpc()`` calls it: given ``inbuf``, its reply and the buffer it returns
#: (None for an ``ERR_PTR``, when the reply carries the errno).
FwRpc = Callable[[Buffer], tuple[Reply, "Buffer | None"]]


def rpc(world: World, request: Request, fw_rpc: FwRpc) -> Reply:
    """fwctl_cmd_rpc() (drivers/fwctl/main.c, 7.3.4) from its allocation on: the buffers' lifetimes.

    ``inbuf __free(kvfree) = kvzalloc(in_len)`` (the request the executor copied
    in), ``outbuf __free(kvfree) = fw_rpc(...)``; an ``ERR_PTR`` returns at once;
    ``if (outbuf == inbuf) inbuf = NULL`` (the driver may answer in place);
    ``copy_to_user(out, outbuf, min(cmd->out_len, out_len))``; then the
    cleanups run in reverse order of declaration, ``kvfree(outbuf)`` and
    ``kvfree(inbuf)`` (``DEFINE_FREE(kvfree, ...)`` skips NULL and ERR_PTR).
    Simplified: the driver's ``*out_len`` is taken to fit its buffer.
    """
    inbuf: Buffer | None = request.payload
    assert inbuf is not None, "an fwctl channel has an envelope, so a request payload"
    inbuf.allocated("kvzalloc", by="fwctl_cmd_rpc(): inbuf = kvzalloc(cmd->in_len)")
    reply, outbuf = fw_rpc(inbuf)
    if outbuf is not None:
        if outbuf is inbuf:
            inbuf = None
        outbuf.copied(0, min(request.size("out_len"), outbuf.size), by="fwctl_cmd_rpc(): copy_to_user(outbuf)")
        outbuf.free("kvfree", by="fwctl_cmd_rpc(): outbuf __free(kvfree)")
    if inbuf is not None:
        inbuf.free("kvfree", by="fwctl_cmd_rpc(): inbuf __free(kvfree)")
    return reply
