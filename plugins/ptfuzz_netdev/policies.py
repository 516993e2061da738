"""Linux's netdev-side fwctl policies as rule tables, each rule citing the file and function it encodes.

Every Linux policy starts with the fwctl core (``drivers/fwctl/main.c``):
``struct fwctl_rpc``'s framing, then an unregistered device answers ``-ENODEV``,
then ``fwctl_cmd_rpc()``'s scope rules.  The drivers' input framing is modelled: bnxt's ``in_len`` between
``struct input`` and ``HWRM_MAX_REQ_LEN`` (its upper bound guards no buffer
the model has), pds's ``in_len`` check (e7537735028c, "fwctl: pds: Validate
RPC input size before parsing"; ``linux-fwctl-pds-unsized-input`` is pds before
it), pds's ``rpc->in.len``/``rpc->out.len`` against the firmware's
``max_req_sz``/``max_resp_sz``, bnxt's DMA commands (``in_len`` exactly the
request struct, every DMA length 1..``FWCTL_BNXT_MAX_DMABUF``, before the
scope) and mlx5's ``-EMSGSIZE``.

Sources as read: ``drivers/fwctl/bnxt/main.c`` of 7.3.4 (Debian's
linux-source-7.3; the review quoted 98f21c54, whose DMA checks 7.3.4 keeps),
``drivers/fwctl/pds/main.c`` of 7.3.4 (read at 479bec4c first; re-read whole in 7.3.4:
``pdsfc_fw_rpc()``, ``pdsfc_validate_rpc()``, ``pdsfc_get_operations()``, the endpoint list), ``drivers/fwctl/mlx5/main.c`` of 7.3.4
(``plugins/ptfuzz_mlx5/fwctl.py``, re-read for issue 17; before: at 52929c21); each policy's ``kernel`` says which.

Each policy promises what the uapi says of the scopes
(``include/uapi/fwctl/fwctl.h``, 7.3.4): ``@FWCTL_RPC_CONFIGURATION``: "Read/write
access to device configuration. When configuration is written to the device
it remains in a fully supported state.", and ``fwctl.rst`` lists "configuration,
FLASH, etc. that becomes live at a function reset" and "runtime configuration
that is transparent or non-disruptive to any driver or VM".  That a function
reset or a live configuration change under a bound driver is no such write,
so must have come at ``DEBUG_WRITE`` or above and tainted the kernel, is the
model's reading of those sentences, not a kernel check.
"""

from __future__ import annotations

import errno
from typing import Any, cast

from ptfuzz_mlx5 import fwctl as mlx5_fwctl

from fuzzer import Deny, Effect, Policy, Promise, Request, Rule, Verdict, fwctl

from . import hwrm, pds
from .state import BNXT, FUNC_RESET, MLX5, PDS

FWCTL_MAIN = "drivers/fwctl/main.c"
FWCTL_RST = "Documentation/userspace-api/fwctl/fwctl.rst"
FWCTL_UAPI = "include/uapi/fwctl/fwctl.h"
#: the uapi's words for the scope (7.3.4), quoted by every netdev promise
CONFIGURATION_UAPI = ("@FWCTL_RPC_CONFIGURATION: Device configuration access scope. Read/write access to device "
                      "configuration. When configuration is written to the device it remains in a fully supported "
                      "state.")
BNXTCTL = "drivers/fwctl/bnxt/main.c"
PDSFC = "drivers/fwctl/pds/main.c"

C, RO, W, FULL = fwctl.CONFIGURATION, fwctl.DEBUG_READ_ONLY, fwctl.DEBUG_WRITE, fwctl.DEBUG_WRITE_FULL


def _registered(r: Request) -> Verdict:
    return None if r.kernel["bound"] else Deny(errno.ENODEV, "the fwctl device was unregistered")


def fwctl_core(channel: str) -> tuple[Rule, ...]:
    return (
        *fwctl.framing_rules(channel),
        Rule("fwctl-registered", _registered, f"{FWCTL_MAIN} fwctl_fops_ioctl(): if (!fwctl->ops) -ENODEV, "
             "after copy_struct_from_user() (7.3.4)", channels=(channel,)),
        *fwctl.rpc_rules(channel),
    )


def configuration_promise(channel: str) -> Promise:
    """The uapi's CONFIGURATION scope, as the model reads it: no function reset, no live configuration change."""
    return Promise(channel, f'{FWCTL_UAPI} (7.3.4) enum fwctl_rpc_scope: "{CONFIGURATION_UAPI}" (the model '
                            "reads a function reset or a live configuration change as leaving that state; "
                            f'{FWCTL_RST}: "becomes live at a function reset", "transparent or non-disruptive")',
                   effects=FUNC_RESET | Effect.CONFIG_IMMEDIATE | Effect.DATA_IMMEDIATE | Effect.SECURITY,
                   min_scope=W, taint=frozenset({fwctl.TAINT_FWCTL}))


# --------------------------------------------------------------------------- bnxt

#: bnxtctl_dma_cmds[] (7.3.4): commands with DMA buffers, and their scope_min (the ones the model has)
BNXT_DMA_SCOPE = {
    "HWRM_NVM_SET_VARIABLE": C, "HWRM_NVM_GET_VARIABLE": C, "HWRM_NVM_READ": RO, "HWRM_NVM_GET_DIR_ENTRIES": RO,
    "HWRM_NVM_WRITE": W, "HWRM_NVM_MODIFY": W, "HWRM_NVM_RAW_WRITE_BLK": FULL, "HWRM_NVM_RAW_DUMP": RO,
    "HWRM_FW_SET_STRUCTURED_DATA": W, "HWRM_FW_LIVEPATCH": FULL, "HWRM_DBG_TOKEN_CFG": FULL,
    "HWRM_PORT_QSTATS": RO, "HWRM_SCH_GRP_CFG": W, "HWRM_DBG_PTRACE": W,
}
assert set(BNXT_DMA_SCOPE) == set(hwrm.DMA)
#: bnxtctl_validate_rpc()'s switch (the request types this model has)
BNXT_SCOPE = {
    **{op: C for op in ("HWRM_FUNC_RESET", "HWRM_PORT_CLR_STATS", "HWRM_FW_RESET", "HWRM_FW_SYNC",
                        "HWRM_FW_SET_TIME", "HWRM_DBG_LOG_BUFFER_FLUSH", "HWRM_DBG_ERASE_NVM", "HWRM_DBG_CFG",
                        "HWRM_NVM_DEFRAG", "HWRM_NVM_FACTORY_DEFAULTS", "HWRM_NVM_FLUSH",
                        "HWRM_NVM_VERIFY_UPDATE", "HWRM_NVM_ERASE_DIR_ENTRY", "HWRM_NVM_MOD_DIR_ENTRY",
                        "HWRM_NVM_FIND_DIR_ENTRY")},
    **{op: RO for op in ("HWRM_VER_GET", "HWRM_FUNC_QCFG", "HWRM_FUNC_QSTATS", "HWRM_PORT_PHY_QCFG",
                         "HWRM_PORT_MAC_QCFG", "HWRM_DBG_USEQ_FLUSH", "HWRM_DBG_SIM_CABLE_STATE",
                         "HWRM_NVM_GET_DEV_INFO", "HWRM_DBG_COREDUMP_INITIATE")},
    **{op: W for op in ("HWRM_PORT_PHY_I2C_WRITE", "HWRM_PORT_PHY_MDIO_WRITE")},
}


def _bnxt_sizes(r: Request) -> Verdict:
    if not hwrm.INPUT_SIZE <= r.size("in_len") <= hwrm.MAX_REQ_LEN:
        return Deny(errno.EINVAL, "in_len outside sizeof(struct input)..HWRM_MAX_REQ_LEN")
    if r.size("out_len") < hwrm.OUTPUT_SIZE:
        return Deny(errno.EINVAL, "out_len < sizeof(struct output)")
    return None


def _bnxt_req_type(r: Request) -> Verdict:
    """7.3.4's bnxtctl_fw_rpc() reads req_type first, to find the DMA descriptor (then timeout, validate)."""
    if r.payload is not None:
        r.payload.read(0, 2, by="bnxtctl_fw_rpc(): bnxtctl_find_dma_desc(le16_to_cpu(req->req_type))")
    return None


def _bnxt_dma_req_size(r: Request) -> Verdict:
    dma = hwrm.DMA.get(r.command.op)
    if dma is not None and r.size("in_len") != dma.req_size:
        return Deny(errno.EINVAL, f"in_len {r.size('in_len')} != sizeof(struct hwrm_xxx_input) {dma.req_size}")
    return None


def _bnxt_dma_lens(r: Request) -> Verdict:
    """bnxtctl_check_dma_lens(): each buffer's length, read from the request (or fixed), 1..MAX_DMABUF."""
    dma = hwrm.DMA.get(r.command.op)
    if dma is None:
        return None
    for f in dma.lens:
        if not f.field:
            n = f.fixed
        elif r.payload is not None:
            n = r.field(f.field, by="bnxtctl_read_len_field(): le16/32_to_cpup()") * f.unit
        else:
            n = int(r.args[f.field]) * f.unit
        if not 1 <= n <= hwrm.MAX_DMABUF:
            return Deny(errno.EINVAL, f"DMA length {n} outside 1..FWCTL_BNXT_MAX_DMABUF")
    return None


def _bnxt_ulp_stopped(r: Request) -> Verdict:
    if r.kernel["ulp_stopped"]:
        return Deny(errno.EPERM, "BNXT_EN_FLAG_ULP_STOPPED: the driver is resetting")
    return None


def _scope_at_least(table: dict[str, str]) -> Any:
    def check(r: Request) -> Verdict:
        need = table.get(r.command.op)
        if need is not None and fwctl.rank(r.caller.scope) < fwctl.rank(need):
            return Deny(errno.EPERM, f"{r.command.op} needs scope {need}")
        return None

    return check


def _bnxt_default_deny(r: Request) -> Verdict:
    if r.command.op in BNXT_DMA_SCOPE or r.command.op in BNXT_SCOPE:
        return None
    return Deny(errno.EPERM, "bnxtctl_validate_rpc(): default: return false")


_VALIDATE = f"{BNXTCTL} bnxtctl_validate_rpc()"
_FW_RPC = f"{BNXTCTL} bnxtctl_fw_rpc()"
LINUX_FWCTL_BNXT = Policy(
    "linux-fwctl-bnxt", "netdev", channels=(BNXT,),
    rules=(
        *fwctl_core(BNXT),
        Rule("bnxtctl-sizes", _bnxt_sizes, f"{BNXTCTL} bnxtctl_fw_rpc(): in_len < sizeof(struct input) || in_len > "
             "HWRM_MAX_REQ_LEN, *out_len < sizeof(struct output) -> -EINVAL", channels=(BNXT,)),
        Rule("bnxtctl-req-type", _bnxt_req_type,
             f"{_FW_RPC}: desc = bnxtctl_find_dma_desc(le16_to_cpu(req->req_type)) (7.3.4)", channels=(BNXT,)),
        Rule("bnxtctl-dma-req-size", _bnxt_dma_req_size,
             f"{_FW_RPC}: if (desc) {{ if (in_len != desc->req_size) return ERR_PTR(-EINVAL); (7.3.4), "
             "before bnxtctl_validate_rpc()", channels=(BNXT,)),
        Rule("bnxtctl-dma-lens", _bnxt_dma_lens,
             f"{_FW_RPC}: rc = bnxtctl_check_dma_lens(in, desc, dma_lens): if (!len || len > "
             "FWCTL_BNXT_MAX_DMABUF) return -EINVAL; (7.3.4)", channels=(BNXT,)),
        Rule("bnxtctl-ulp-stopped", _bnxt_ulp_stopped,
             f"{_VALIDATE}: if (edev->flags & BNXT_EN_FLAG_ULP_STOPPED) return false", channels=(BNXT,)),
        Rule("bnxtctl-dma-scope", _scope_at_least(BNXT_DMA_SCOPE),
             f"{_VALIDATE}: desc = bnxtctl_find_dma_desc(req_type); if (desc) return scope >= desc->scope_min; "
             "(7.3.4), after BNXT_EN_FLAG_ULP_STOPPED",
             channels=(BNXT,)),
        Rule("bnxtctl-scope", _scope_at_least(BNXT_SCOPE), f"{_VALIDATE}: switch (req_type) scope >= ... (7.3.4)",
             channels=(BNXT,)),
        Rule("bnxtctl-default-deny", _bnxt_default_deny, f"{_VALIDATE}: default: return false", channels=(BNXT,)),
    ),
    promises=(configuration_promise(BNXT),), kernel="7.3.4",
    doc="bnxt fwctl: FUNC_RESET, FW_RESET, PORT_CLR_STATS, NVM_FACTORY_DEFAULTS ... at CONFIGURATION",
)

# --------------------------------------------------------------------------- pds


def _pds_in_len(r: Request) -> Verdict:
    if r.size("in_len") < pds.RPC_PDS_SIZE:
        return Deny(errno.EINVAL, "in_len < sizeof(struct fwctl_rpc_pds)")
    return None


def _pds_max(length: str, offset: int, limit: str) -> Any:
    """pdsfc_validate_rpc(): ``rpc->in.len``/``rpc->out.len`` (read from the request) against pdsfc->ident."""
    def check(r: Request) -> Verdict:
        name = f"rpc->{length.removeprefix('rpc_').replace('_', '.')}"
        if r.payload is not None:
            n = int.from_bytes(r.payload.read(offset, 4, by=f"pdsfc_validate_rpc(): {name}"), "little")
        else:
            n = r.size(length)
        most = int(r.kernel["pds_ident"][limit])
        if n > most:
            return Deny(errno.EINVAL, f"{name} {n} > ident.{limit} {most}")
        return None

    return check


def _pds_endpoint(r: Request) -> Verdict:
    if r.payload is not None:  # rpc->in.ep, read from the request the core copied in
        r.payload.read(4, 4, by="pdsfc_validate_rpc(): rpc->in.ep")
    if r.args["ep"] in r.kernel["pds_endpoints"]:
        return None
    return Deny(errno.EINVAL, f"Invalid endpoint {r.args['ep']}")


def _pds_cache_operations(r: Request) -> Verdict:
    """The one rule with a side effect, because the kernel's check has it: the first use caches the list."""
    kernel = cast(dict[str, Any], r.kernel)
    ep = r.args["ep"]
    if ep in kernel["pds_ops"]:
        return None
    ops = pds.get_operations(r.device, ep)
    if ops is None:
        return Deny(errno.ENOMEM, "pdsfc_get_operations() failed")
    kernel["pds_ops"] = {**kernel["pds_ops"], ep: ops}
    return None


def _pds_operation(r: Request) -> Verdict:
    """PDS_FWCTL_RPC_OPCODE_CMP(rpc->in.op, id) over the cached list.

    Simplified, once: ``in.op`` is the command's id with version bits 0, and the modelled firmware
    lists every operation at version 0, so the macro's "same command, version at or below the
    firmware's" is equality here."""
    if r.payload is not None:  # rpc->in.op, read from the request the core copied in
        r.payload.read(0, 4, by="pdsfc_validate_rpc(): rpc->in.op")
    if r.command.opcode in r.kernel["pds_ops"][r.args["ep"]]:
        return None
    return Deny(errno.EINVAL, f"Invalid operation {r.command.opcode} for endpoint {r.args['ep']}")


def _pds_scope(r: Request) -> Verdict:
    need = r.kernel["pds_ops"][r.args["ep"]][r.command.opcode]
    if fwctl.rank(r.caller.scope) < fwctl.rank(need):
        return Deny(errno.EPERM, f"the cached operation list says {need}")
    return None


_PDS_VALIDATE = f"{PDSFC} pdsfc_validate_rpc()"
LINUX_FWCTL_PDS = Policy(
    "linux-fwctl-pds", "netdev", channels=(PDS,),
    rules=(
        *fwctl_core(PDS),
        Rule("pdsfc-in-len", _pds_in_len, f"{PDSFC} pdsfc_fw_rpc(): in_len < sizeof(*rpc) -> -EINVAL "
             "(e7537735028c; 7.3.4)", channels=(PDS,)),
        Rule("pdsfc-max-req-sz", _pds_max("rpc_in_len", 12, "max_req_sz"),
             f"{_PDS_VALIDATE}: if (rpc->in.len > le32_to_cpu(pdsfc->ident.max_req_sz)) return -EINVAL; (7.3.4)",
             channels=(PDS,)),
        Rule("pdsfc-max-resp-sz", _pds_max("rpc_out_len", 36, "max_resp_sz"),
             f"{_PDS_VALIDATE}: if (rpc->out.len > le32_to_cpu(pdsfc->ident.max_resp_sz)) return -EINVAL; "
             "(7.3.4)", channels=(PDS,)),
        Rule("pdsfc-endpoint", _pds_endpoint, f"{_PDS_VALIDATE}: endpoint_info[] lookup of rpc->in.ep, else -EINVAL (7.3.4)",
             channels=(PDS,)),
        Rule("pdsfc-cache-operations", _pds_cache_operations,
             f"{_PDS_VALIDATE}: if (!ep_info->operations) pdsfc_get_operations(), on failure -ENOMEM (7.3.4)",
             channels=(PDS,)),
        Rule("pdsfc-operation", _pds_operation,
             f"{_PDS_VALIDATE}: PDS_FWCTL_RPC_OPCODE_CMP() over the cached list, else -EINVAL (7.3.4)",
             channels=(PDS,)),
        Rule("pdsfc-scope", _pds_scope, f"{_PDS_VALIDATE}: if (scope < op_entry[i].scope) return -EPERM; (7.3.4)",
             channels=(PDS,)),
    ),
    promises=(configuration_promise(PDS),), kernel="7.3.4",
    doc="pds fwctl: scopes from the firmware's operation lists, cached per endpoint on first use",
)

LINUX_FWCTL_PDS_UNSIZED = Policy(
    "linux-fwctl-pds-unsized-input", "netdev", channels=(PDS,),
    rules=tuple(r for r in LINUX_FWCTL_PDS.rules if r.name != "pdsfc-in-len"),
    promises=LINUX_FWCTL_PDS.promises, predates="e7537735028c",
    doc="pds fwctl whose pdsfc_validate_rpc() parses struct fwctl_rpc_pds before checking in_len "
        "(92c66ee829b9 to the 2026 fix)",
)

# --------------------------------------------------------------------------- mlx5

LINUX_FWCTL_MLX5 = Policy(
    "linux-fwctl-mlx5", "netdev", channels=(MLX5,),
    rules=mlx5_fwctl.rules(MLX5, core=fwctl_core(MLX5)),
    promises=(mlx5_fwctl.promise(MLX5), configuration_promise(MLX5)), kernel=mlx5_fwctl.KERNEL,
    doc="mlx5 fwctl (the rdma plugin's table): ACCESS_REG writes pass at any scope; firmware must refuse",
)

PERMISSIVE = Policy("permissive", "netdev", channels=(BNXT, PDS, MLX5),
                    doc="a blank cheque: every RPC goes to the firmware as sent")

POLICIES = (LINUX_FWCTL_BNXT, LINUX_FWCTL_PDS, LINUX_FWCTL_MLX5, PERMISSIVE, LINUX_FWCTL_PDS_UNSIZED)
