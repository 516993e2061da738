"""The fwctl core, shared by every subsystem that has an fwctl channel.

linux ``drivers/fwctl/main.c`` ``fwctl_cmd_rpc()`` checks the requested scope
before the device driver sees the RPC: DEBUG_WRITE_FULL needs CAP_SYS_RAWIO,
and both write scopes taint the kernel (TAINT_FWCTL, letter 'J') even if the
driver then rejects the RPC.  A plugin puts ``core_rules(channel)`` in front
of its own driver rules, and gives the channel ``envelope(header)``: the
``in_len``/``out_len`` every RPC carries around the driver's own header.  Its
transport wraps the driver's ``fw_rpc`` in ``rpc()``, the core's allocation and
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
TAINT_FWCTL = "FWCTL"
CAP_SYS_RAWIO = "CAP_SYS_RAWIO"


def rank(scope: str | None) -> int:
    return SCOPES.index(scope) if scope in SCOPES else -1


def _scope_known(r: Request) -> Verdict:
    return None if r.caller.scope in SCOPES else Deny(errno.EOPNOTSUPP, "unknown scope")


def _rawio_for_full(r: Request) -> Verdict:
    if r.caller.scope == DEBUG_WRITE_FULL and CAP_SYS_RAWIO not in r.caller.caps:
        return Deny(errno.EPERM, "DEBUG_WRITE_FULL needs CAP_SYS_RAWIO")
    return None


def _taint_writes(r: Request) -> Verdict:
    if rank(r.caller.scope) >= rank(DEBUG_WRITE):
        return Taint(TAINT_FWCTL, "write scope requested")
    return None


#: drivers/fwctl/main.c: MAX_RPC_LEN = SZ_2M, the most in_len or out_len may ask for
MAX_RPC_LEN = 2 << 20


def envelope(header: Layout, *, in_marks: Iterable[int] = (), out_marks: Iterable[int] = (),
             out_natural: str = "out", extra: Iterable[Param] = ()) -> Envelope:
    """``struct fwctl_rpc``'s lengths around one driver's request.

    ``fwctl_cmd_rpc()`` copies exactly ``in_len`` bytes and hands the driver
    ``out_len`` unchecked but for ``MAX_RPC_LEN``: every driver must compare
    them with its own ``header`` (its size and output size are boundaries
    worth drawing).  ``extra`` are size fields inside that header.

    Example (mlx5: ``mbox_in_hdr``, big-endian opcode and op_mod)::

        fwctl.envelope(Layout((Slot("opcode", 0, 2, "be"), Slot("op_mod", 6, 2, "be")), size=16, out=16))
    """
    return Envelope("in_len", "out_len", header=header, sizes=(
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


_CITE = "drivers/fwctl/main.c fwctl_cmd_rpc()"


def core_rules(channel: str) -> tuple[Rule, ...]:
    """The checks of fwctl_cmd_rpc() before the driver runs, in kernel order, for ``channel``.

    After them the core copies exactly ``in_len`` bytes in and hands the driver
    ``(in, in_len, &out_len)``: the driver must compare its own headers with
    ``in_len`` before it parses them (fwctl.rst).
    """
    return (
        Rule("fwctl-max-rpc-len", _max_rpc_len, _CITE, channels=(channel,)),
        Rule("fwctl-scope-known", _scope_known, _CITE, channels=(channel,)),
        Rule("fwctl-rawio-for-full", _rawio_for_full, _CITE, channels=(channel,)),
        Rule("fwctl-taint", _taint_writes, _CITE, channels=(channel,)),
    )


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
