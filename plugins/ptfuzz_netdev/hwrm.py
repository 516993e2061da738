"""bnxt HWRM request types, error codes, the fwctl driver's timeouts and its DMA commands.

``req_type`` values are ``HWRM_*`` from linux ``include/linux/bnxt/hsi.h``
(``struct cmd_nums``); error codes from ``struct ret_codes``; timeouts from
``bnxtctl_get_timeout()`` in ``drivers/fwctl/bnxt/main.c``.  Only the request
types this model has are listed: those ``bnxtctl_validate_rpc()`` lets through,
and the ones the bnxt_en driver itself sends to program the link, which fwctl
must refuse.  ``DMA`` is the part of ``bnxtctl_dma_cmds[]`` (7.3.4) whose
commands the model has: each request's ``sizeof(struct hwrm_xxx_input)`` and
its DMA length fields, as ``bnxtctl_fw_rpc()`` checks them before anything
else looks at the request.
"""

from __future__ import annotations

import attrs

REQ_TYPES: dict[str, int] = {
    # the kernel's own configuration commands (bnxt_en); bnxtctl_validate_rpc(): default: false
    "HWRM_FUNC_VF_CFG": 0x0F,
    "HWRM_FUNC_CFG": 0x17,
    "HWRM_PORT_PHY_CFG": 0x20,
    "HWRM_PORT_MAC_CFG": 0x21,
    "HWRM_RING_FREE": 0x51,
    "HWRM_FUNC_VF_RESOURCE_CFG": 0x191,
    # FWCTL_RPC_CONFIGURATION
    "HWRM_FUNC_RESET": 0x11,
    "HWRM_PORT_CLR_STATS": 0x25,
    "HWRM_FW_RESET": 0xC0,
    "HWRM_FW_SYNC": 0xC3,
    "HWRM_FW_SET_TIME": 0xC8,
    "HWRM_DBG_LOG_BUFFER_FLUSH": 0xFF0F,
    "HWRM_DBG_ERASE_NVM": 0xFF15,
    "HWRM_DBG_CFG": 0xFF16,
    "HWRM_NVM_DEFRAG": 0xFFEC,
    "HWRM_NVM_FACTORY_DEFAULTS": 0xFFEE,
    "HWRM_NVM_FLUSH": 0xFFF0,
    "HWRM_NVM_GET_VARIABLE": 0xFFF1,
    "HWRM_NVM_SET_VARIABLE": 0xFFF2,
    "HWRM_NVM_VERIFY_UPDATE": 0xFFF5,
    "HWRM_NVM_ERASE_DIR_ENTRY": 0xFFF7,
    "HWRM_NVM_MOD_DIR_ENTRY": 0xFFF8,
    "HWRM_NVM_FIND_DIR_ENTRY": 0xFFF9,
    # FWCTL_RPC_DEBUG_READ_ONLY
    "HWRM_VER_GET": 0x00,
    "HWRM_FUNC_QCFG": 0x16,
    "HWRM_FUNC_QSTATS": 0x18,
    "HWRM_PORT_QSTATS": 0x23,
    "HWRM_PORT_PHY_QCFG": 0x27,
    "HWRM_PORT_MAC_QCFG": 0x28,
    "HWRM_NVM_GET_DEV_INFO": 0xFFF6,
    "HWRM_NVM_READ": 0xFFFD,
    "HWRM_DBG_COREDUMP_INITIATE": 0xFF18,
    "HWRM_DBG_USEQ_FLUSH": 0xFF25,
    "HWRM_DBG_SIM_CABLE_STATE": 0xFF2E,
    "HWRM_NVM_GET_DIR_ENTRIES": 0xFFFA,
    "HWRM_NVM_RAW_DUMP": 0xFFFC,
    # FWCTL_RPC_DEBUG_WRITE
    "HWRM_PORT_PHY_I2C_WRITE": 0x2B,
    "HWRM_PORT_PHY_MDIO_WRITE": 0xB5,
    "HWRM_NVM_MODIFY": 0xFFF4,
    "HWRM_NVM_WRITE": 0xFFFE,
    "HWRM_SCH_GRP_CFG": 0x73,
    "HWRM_FW_SET_STRUCTURED_DATA": 0xCA,
    "HWRM_DBG_PTRACE": 0xFF2D,
    # FWCTL_RPC_DEBUG_WRITE_FULL
    "HWRM_NVM_RAW_WRITE_BLK": 0xFFFF,
    "HWRM_FW_LIVEPATCH": 0xBF,
    "HWRM_DBG_TOKEN_CFG": 0xFF30,
}

#: struct ret_codes
ERR_SUCCESS = 0x0
ERR_FAIL = 0x1
ERR_INVALID_PARAMS = 0x2
ERR_RESOURCE_ACCESS_DENIED = 0x3
ERR_HOT_RESET_PROGRESS = 0xA
STATUS_NAMES = {
    ERR_SUCCESS: "HWRM_ERR_CODE_SUCCESS",
    ERR_FAIL: "HWRM_ERR_CODE_FAIL",
    ERR_INVALID_PARAMS: "HWRM_ERR_CODE_INVALID_PARAMS",
    ERR_RESOURCE_ACCESS_DENIED: "HWRM_ERR_CODE_RESOURCE_ACCESS_DENIED",
    ERR_HOT_RESET_PROGRESS: "HWRM_ERR_CODE_HOT_RESET_PROGRESS",
}

#: bnxtctl_get_timeout(): BNXTCTL_HWRM_CMD_TIMEOUT_DFLT/MEDM/LONG, in ms
TIMEOUT_DEFAULT_MS = 500
TIMEOUT_MS: dict[str, int] = {
    **{op: 60_000 for op in ("HWRM_NVM_DEFRAG", "HWRM_NVM_FACTORY_DEFAULTS", "HWRM_NVM_FLUSH",
                             "HWRM_NVM_VERIFY_UPDATE", "HWRM_NVM_ERASE_DIR_ENTRY", "HWRM_NVM_MOD_DIR_ENTRY",
                             "HWRM_NVM_WRITE", "HWRM_FW_SYNC", "HWRM_DBG_COREDUMP_INITIATE",
                             "HWRM_NVM_RAW_WRITE_BLK")},
    "HWRM_FUNC_RESET": 2_000,
}


def timeout_ms(op: str) -> int:
    """How long bnxtctl_fw_rpc() lets bnxt_send_msg() wait for ``op``."""
    return TIMEOUT_MS.get(op, TIMEOUT_DEFAULT_MS)

# --- request framing (include/linux/bnxt/hsi.h) -----------------------------------------
#: sizeof(struct input): req_type, cmpl_ring, seq_id, target_id (le16), resp_addr (le64)
INPUT_SIZE = 16
#: sizeof(struct output): error_code, req_type, seq_id, resp_len (le16), then 8 more bytes
OUTPUT_SIZE = 16
#: HWRM_MAX_REQ_LEN (hwrm_func_buf_rgtr)
MAX_REQ_LEN = 128



# --- bnxtctl_dma_cmds[] (drivers/fwctl/bnxt/main.c, 7.3.4) ---------------------------------
#: include/uapi/fwctl/bnxt.h (7.3.4): the most one DMA buffer may be, in bytes
MAX_DMABUF = 0x10000


@attrs.frozen
class DmaLen:
    """One DMA buffer's length as ``bnxtctl_check_dma_lens()`` finds it.

    ``field`` is the request's length field (``CMD_DATA_SIMPLE``/``CMD_DATA_UNIT``):
    ``width`` bytes (2 or 4, little-endian) at ``offset`` in the request, counting
    ``unit`` bytes each.  Empty for ``CMD_DATA_FIXED``: the length is ``fixed``.
    """

    field: str = ""
    offset: int = 0
    width: int = 4
    unit: int = 1
    fixed: int = 0


@attrs.frozen
class DmaCmd:
    """One ``bnxtctl_dma_cmds[]`` entry: ``req_size`` is ``sizeof(struct hwrm_xxx_input)``."""

    req_size: int
    lens: tuple[DmaLen, ...]


def _len(field: str, offset: int, width: int = 4, unit: int = 1) -> DmaLen:
    return DmaLen(field, offset, width, unit)


#: req_type -> its DMA descriptor.  Sizes and offsets from hsi.h (7.3.4), checked with
#: sizeof()/offsetof() on the structs as declared there.
DMA: dict[str, DmaCmd] = {
    "HWRM_NVM_SET_VARIABLE": DmaCmd(40, (_len("data_len", 24, 2),)),
    "HWRM_NVM_GET_VARIABLE": DmaCmd(40, (_len("data_len", 24, 2),)),
    "HWRM_NVM_READ": DmaCmd(40, (_len("len", 32),)),
    "HWRM_NVM_GET_DIR_ENTRIES": DmaCmd(24, (DmaLen(fixed=MAX_DMABUF),)),
    "HWRM_NVM_WRITE": DmaCmd(56, (_len("dir_data_length", 32),)),
    "HWRM_NVM_MODIFY": DmaCmd(40, (_len("len", 32),)),
    "HWRM_NVM_RAW_WRITE_BLK": DmaCmd(40, (_len("len", 28),)),
    "HWRM_NVM_RAW_DUMP": DmaCmd(40, (_len("len", 28),)),
    "HWRM_FW_SET_STRUCTURED_DATA": DmaCmd(32, (_len("data_len", 24, 2),)),
    "HWRM_FW_LIVEPATCH": DmaCmd(32, (_len("patch_len", 20),)),
    "HWRM_DBG_TOKEN_CFG": DmaCmd(32, (_len("dbg_token_len", 20),)),
    # sizeof(struct tx_port_stats), sizeof(struct rx_port_stats)
    "HWRM_PORT_QSTATS": DmaCmd(40, (DmaLen(fixed=408), DmaLen(fixed=528))),
    # num_fids counts 16-bit FIDs
    "HWRM_SCH_GRP_CFG": DmaCmd(88, (_len("num_fids", 18, 2, unit=2),)),
    # one length for the command and the response buffer
    "HWRM_DBG_PTRACE": DmaCmd(40, (_len("pdi_req_buf_len", 32), _len("pdi_req_buf_len", 32))),
}
assert set(DMA) <= set(REQ_TYPES)


def dma_len_choices(f: DmaLen) -> tuple[int, ...]:
    """A length field's values worth drawing, in units: in range first (1, the most), then 0 and one past.

    A field too narrow to hold ``MAX_DMABUF + 1`` units offers its largest value instead.
    """
    top = (1 << (8 * f.width)) - 1
    most = min(MAX_DMABUF // f.unit, top)
    past = MAX_DMABUF // f.unit + 1
    return tuple(dict.fromkeys((1, most, 0, *((past,) if past <= top else ()))))
