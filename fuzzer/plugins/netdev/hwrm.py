"""bnxt HWRM request types, error codes and the fwctl driver's timeouts.

``req_type`` values are ``HWRM_*`` from linux ``include/linux/bnxt/hsi.h``
(``struct cmd_nums``); error codes from ``struct ret_codes``; timeouts from
``bnxtctl_get_timeout()`` in ``drivers/fwctl/bnxt/main.c``.  Only the request
types this model has are listed: those ``bnxtctl_validate_rpc()`` lets through,
and the ones the bnxt_en driver itself sends to program the link, which fwctl
must refuse.
"""

from __future__ import annotations

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
    # FWCTL_RPC_DEBUG_WRITE
    "HWRM_PORT_PHY_I2C_WRITE": 0x2B,
    "HWRM_PORT_PHY_MDIO_WRITE": 0xB5,
    "HWRM_NVM_MODIFY": 0xFFF4,
    "HWRM_NVM_WRITE": 0xFFFE,
    # FWCTL_RPC_DEBUG_WRITE_FULL
    "HWRM_NVM_RAW_WRITE_BLK": 0xFFFF,
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
                             "HWRM_NVM_WRITE", "HWRM_FW_SYNC", "HWRM_NVM_RAW_WRITE_BLK")},
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

