"""CXL mailbox constants, as the Linux driver and the CXL spec spell them.

Opcodes: linux ``drivers/cxl/cxlmem.h`` ``enum cxl_opcode``.  Return codes:
``CMD_CMD_RC_TABLE`` in the same file ("CXL 3.0 8.2.8.4.5.1").  Feature UUIDs:
``include/cxl/features.h``.
"""

from __future__ import annotations

# --- opcodes (enum cxl_opcode) -------------------------------------------------
GET_EVENT_RECORD = 0x0100
CLEAR_EVENT_RECORD = 0x0101
GET_EVT_INT_POLICY = 0x0102
SET_EVT_INT_POLICY = 0x0103
GET_FW_INFO = 0x0200
TRANSFER_FW = 0x0201
ACTIVATE_FW = 0x0202
GET_TIMESTAMP = 0x0300
SET_TIMESTAMP = 0x0301
GET_SUPPORTED_LOGS = 0x0400
GET_LOG = 0x0401
GET_LOG_CAPS = 0x0402
CLEAR_LOG = 0x0403
GET_SUP_LOG_SUBLIST = 0x0405
GET_SUPPORTED_FEATURES = 0x0500
GET_FEATURE = 0x0501
SET_FEATURE = 0x0502
DO_MAINTENANCE = 0x0600
IDENTIFY = 0x4000
GET_PARTITION_INFO = 0x4100
SET_PARTITION_INFO = 0x4101
GET_LSA = 0x4102
SET_LSA = 0x4103
GET_HEALTH_INFO = 0x4200
GET_ALERT_CONFIG = 0x4201
SET_ALERT_CONFIG = 0x4202
GET_SHUTDOWN_STATE = 0x4203
SET_SHUTDOWN_STATE = 0x4204
GET_POISON = 0x4300
INJECT_POISON = 0x4301
CLEAR_POISON = 0x4302
GET_SCAN_MEDIA_CAPS = 0x4303
SCAN_MEDIA = 0x4304
GET_SCAN_MEDIA = 0x4305
#: Dynamic Capacity (CXL r3.1 Table 8-126, command set 0x48); 7.3.4's enum cxl_opcode has none of them
GET_DC_CONFIG = 0x4800
GET_DC_EXTENT_LIST = 0x4801
ADD_DC_RESPONSE = 0x4802
RELEASE_DC = 0x4803
SANITIZE = 0x4400
SECURE_ERASE = 0x4401
GET_SECURITY_STATE = 0x4500
SET_PASSPHRASE = 0x4501
DISABLE_PASSPHRASE = 0x4502
UNLOCK = 0x4503
FREEZE_SECURITY = 0x4504
PASSPHRASE_SECURE_ERASE = 0x4505

#: Vendor-specific opcodes live in 0xC000-0xFFFF (CXL spec "vendor specific"
#: command sets; see the 2021 RAW-command review on linux-nvdimm).
VENDOR_FIRST = 0xC000

# --- mailbox return codes (CMD_CMD_RC_TABLE) ------------------------------------
RC_SUCCESS = 0
RC_BACKGROUND = 1
RC_INPUT = 2
RC_UNSUPPORTED = 3
RC_INTERNAL = 4
RC_BUSY = 6
RC_MEDIADISABLED = 7
RC_FWINPROGRESS = 8
RC_FWSLOT = 11
RC_SECURITY = 19
RC_PASSPHRASE = 20
RC_PAYLOADLEN = 22
RC_LOG = 23
RC_FEATURETRANSFERIP = 27

RC_NAMES = {
    0: "SUCCESS", 1: "BACKGROUND", 2: "INPUT", 3: "UNSUPPORTED", 4: "INTERNAL", 6: "BUSY",
    7: "MEDIADISABLED", 8: "FWINPROGRESS", 11: "FWSLOT", 19: "SECURITY", 20: "PASSPHRASE",
    22: "PAYLOADLEN", 23: "LOG", 27: "FEATURETRANSFERIP",
}

# --- units and UUIDs ------------------------------------------------------------
CAPACITY_MULTIPLIER = 256 << 20  # CXL_CAPACITY_MULTIPLIER: partitions are in 256 MiB units
CEL_UUID = "0da9c0b5-bf41-4b78-8f79-96b1623b3f17"
VENDOR_DEBUG_LOG_UUID = "5e1819d9-11a9-400c-811f-d60719403d86"
#: CXL r3.1 "Log Identifier" UUIDs (Get Supported Logs); the kernel names only the first two.
COMPONENT_STATE_DUMP_UUID = "b3fab4cf-01b6-4332-943e-5e9962f23567"
ECS_LOG_UUID = "f1720d60-a7a9-4306-a003-11948f9e077c"
LOG_UUIDS = (CEL_UUID, VENDOR_DEBUG_LOG_UUID, COMPONENT_STATE_DUMP_UUID, ECS_LOG_UUID)

PATROL_SCRUB_UUID = "96dad7d6-fde8-482b-a733-75774e06db8a"
ECS_UUID = "e5b13f22-2328-4a14-b8ba-b9691e893386"
SPPR_UUID = "892ba475-fad8-474e-9d3e-692c917568bb"
HPPR_UUID = "80ea4521-786f-4127-afb1-ec7459fb0e24"
CACHELINE_SPARING_UUID = "96c33386-91dd-44c7-9ecb-fdaf6503bac4"
ROW_SPARING_UUID = "450ebf67-b135-4f97-a498-c2d57f279bed"
BANK_SPARING_UUID = "78b79636-90ac-4b64-a4ef-faac5d18a863"
RANK_SPARING_UUID = "34dbaff5-0552-4281-8f76-da0b5e7a76a7"

#: cxl_exclusive_feats[] in drivers/cxl/core/features.c: features EDAC drives.
EXCLUSIVE_FEATURES = frozenset({
    PATROL_SCRUB_UUID, ECS_UUID, SPPR_UUID, HPPR_UUID, CACHELINE_SPARING_UUID,
    ROW_SPARING_UUID, BANK_SPARING_UUID, RANK_SPARING_UUID,
})

#: tools/testing/cxl/test/mem.c's vendor test feature (the UUID ndctl's fwctl test uses).
TEST_FEATURE_UUID = "ffffffff-ffff-ffff-ffff-ffffffffffff"
#: Invented for the `vendor` device variant.
ACME_PERF_UUID = "a1c3e000-0000-4000-8000-00000000acfe"
ACME_THERMAL_UUID = "a1c3e000-0000-4000-8000-00000000ac7e"

#: CXL_CMD_EFFECTS_VALID (bit 9) as it appears in a Supported Features entry.
EFFECTS_VALID = 1 << 9

# --- security state bits (GET_SECURITY_STATE) -----------------------------------
SEC_USER_PASS_SET = 0x01
SEC_MASTER_PASS_SET = 0x02
SEC_LOCKED = 0x04
SEC_FROZEN = 0x08

# --- payload sizes ----------------------------------------------------------------
#: QEMU's mailbox payload (CXL_MAILBOX_MAX_PAYLOAD_SIZE, 1 << 11); the kernel reads it from the
#: mailbox capabilities register into cxl_mbox->payload_size and shows it as memN/payload_max.
PAYLOAD_SIZE = 2048
#: CXL_VARIABLE_PAYLOAD: the kernel table's "any size" marker (~0U).
VARIABLE = 0xFFFFFFFF
#: struct cxl_send_command's size fields are 32-bit (out.size is an __s32).
SIZE_MAX = 0xFFFFFFFF
#: include/uapi/linux/cxl_mem.h CXL_MEM_COMMAND_FLAG_MASK, GENMASK(1, 0): the only flag bits a table
#: command may carry (cxl_to_mem_cmd(), 7.3.4)
COMMAND_FLAG_MASK = 0x3

# --- model sizes (simplified: a small device keeps the state space small) ------
TOTAL_UNITS = 16  # 4 GiB
VOLATILE_ONLY_UNITS = 2
PERSISTENT_ONLY_UNITS = 2
LSA_SIZE = 128
FW_SLOTS = 2
POISON_DPAS = 8  # DPAs are drawn as one of 8 64-byte-aligned addresses
