"""The fwctl core, shared by every subsystem that has an fwctl channel.

linux ``drivers/fwctl/main.c`` ``fwctl_cmd_rpc()`` checks the requested scope
before the device driver sees the RPC: DEBUG_WRITE_FULL needs CAP_SYS_RAWIO,
and both write scopes taint the kernel (TAINT_FWCTL, letter 'J') even if the
driver then rejects the RPC.  A plugin puts ``core_rules(channel)`` in front
of its own driver rules.
"""

from __future__ import annotations

import errno

from fuzzer.spec import Deny, Request, Rule, Taint, Verdict

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


_CITE = "drivers/fwctl/main.c fwctl_cmd_rpc()"


def core_rules(channel: str) -> tuple[Rule, ...]:
    """The scope checks of fwctl_cmd_rpc(), in kernel order, for ``channel``."""
    return (
        Rule("fwctl-scope-known", _scope_known, _CITE, channels=(channel,)),
        Rule("fwctl-rawio-for-full", _rawio_for_full, _CITE, channels=(channel,)),
        Rule("fwctl-taint", _taint_writes, _CITE, channels=(channel,)),
    )
