"""NVMe constants, spelled once: opcodes, effects-log bits, feature ids, status codes.

Values are the specification's, as ``include/linux/nvme.h`` names them
(``enum nvme_admin_opcode``, ``enum nvme_opcode``, ``NVME_CMD_EFFECTS_*``,
``NVME_FEAT_*``, ``NVME_SC_*``).  An effects-log word is kept in the real
encoding everywhere the kernel model reads it (the rules and reactions test
the same bits the kernel does); ``flags()`` turns it into the model's own
effect flags, which the engine compares with the fields a command changed.
"""

from __future__ import annotations

import enum

# --------------------------------------------------------------------------- opcodes

# enum nvme_admin_opcode (include/linux/nvme.h)
GET_LOG_PAGE = 0x02
IDENTIFY = 0x06
SET_FEATURES = 0x09
GET_FEATURES = 0x0A
NS_MGMT = 0x0D
FW_COMMIT = 0x10  # nvme_admin_activate_fw
NS_ATTACH = 0x15
FORMAT_NVM = 0x80
SANITIZE_NVM = 0x84
CREATE_IO_SQ = 0x01  # the driver's own queue setup
CREATE_IO_CQ = 0x05
#: a vendor-specific admin opcode (0xC0..0xFF): ACME's "grow a namespace"
ACME_NS_GROW = 0xC1

# enum nvme_opcode (I/O command set)
FLUSH = 0x00
WRITE = 0x01
READ = 0x02
WRITE_UNCOR = 0x04
WRITE_ZEROES = 0x08

#: nvme_cmd_vendor_start and nvme_fabrics_command
VENDOR_START = 0x80
FABRICS = 0x7F


def is_write(opcode: int) -> bool:
    """nvme_is_write(): the data-transfer direction is bit 0 of the opcode (host to controller)."""
    return bool(opcode & 1)


# Identify CNS values (NVME_ID_CNS_*)
CNS_NS = 0x00
CNS_CTRL = 0x01
CNS_NS_ACTIVE_LIST = 0x02
CNS_CS_NS = 0x05
CNS_CS_CTRL = 0x06
CNS_NS_CS_INDEP = 0x08
#: the Identify CNS values nvme_cmd_allowed() lets an unprivileged caller send
UNPRIVILEGED_CNS = frozenset({CNS_NS, CNS_CS_NS, CNS_NS_CS_INDEP, CNS_CS_CTRL, CNS_CTRL})

# Log page identifiers (NVME_LOG_*)
LOG_SMART = 0x02
LOG_FW_SLOT = 0x03
LOG_CMD_EFFECTS = 0x05

# Feature identifiers (NVME_FEAT_*)
FEAT_TEMP_THRESH = 0x04
FEAT_NUM_QUEUES = 0x07
FEAT_KATO = 0x0F

# Firmware Commit actions (NVME_FWACT_*)
FWACT_ACTV = 2  # activate the slot at the next reset
FWACT_ACTIVATE_NOW = 3  # replace and activate immediately

# --------------------------------------------------------------------------- status codes

SC_SUCCESS = 0x0
SC_INVALID_OPCODE = 0x1
SC_INVALID_FIELD = 0x2
SC_INVALID_NS = 0xB
SC_CMD_SEQ_ERROR = 0xC
SC_INVALID_FORMAT = 0x10A
SC_NS_INSUFFICIENT_CAP = 0x115
SC_NS_ID_UNAVAILABLE = 0x116
SC_NS_ALREADY_ATTACHED = 0x118
SC_NS_NOT_ATTACHED = 0x11A

STATUS_NAMES = {
    SC_SUCCESS: "SUCCESS",
    SC_INVALID_OPCODE: "INVALID_OPCODE",
    SC_INVALID_FIELD: "INVALID_FIELD",
    SC_INVALID_NS: "INVALID_NS",
    SC_CMD_SEQ_ERROR: "CMD_SEQ_ERROR",
    SC_INVALID_FORMAT: "INVALID_FORMAT",
    SC_NS_INSUFFICIENT_CAP: "NS_INSUFFICIENT_CAPACITY",
    SC_NS_ID_UNAVAILABLE: "NS_ID_UNAVAILABLE",
    SC_NS_ALREADY_ATTACHED: "NS_ALREADY_ATTACHED",
    SC_NS_NOT_ATTACHED: "NS_NOT_ATTACHED",
}

# --------------------------------------------------------------------------- effects log

# NVME_CMD_EFFECTS_* (include/linux/nvme.h): the bits of one Commands Supported
# and Effects log entry, as the device reports them and the kernel caches them.
CSUPP = 1 << 0
LBCC = 1 << 1
NCC = 1 << 2
NIC = 1 << 3
CCC = 1 << 4
CSER_MASK = 0b11 << 14  # GENMASK(15, 14)
CSE_MASK = 0b111 << 16  # GENMASK(18, 16)
CSE_SINGLE_NS = 1 << 16  # the CSE value "no other command to the same namespace"
UUID_SEL = 1 << 19
SCOPE_MASK = 0xFFF << 20  # GENMASK(31, 20)


class NvmeEffect(enum.IntFlag):
    """The model's effect flags, one per effects-log bit, above the engine's own bits.

    The engine compares them with the effect class of every field a command
    changed.  Bits 16 and up never meet the CXL-derived ``Effect`` flags;
    the CSE field (three bits in the log) is one flag here, because all the
    kernel asks of it is "non-zero: freeze the I/O queues".
    """

    CSUPP = 1 << 16
    LBCC = 1 << 17
    NCC = 1 << 18
    NIC = 1 << 19
    CCC = 1 << 20
    CSE = 1 << 21


#: Subsystem.effects: what traces and messages call each flag
EFFECT_NAMES: dict[int, str] = {
    NvmeEffect.CSUPP: "CSUPP",
    NvmeEffect.LBCC: "LBCC(logical-block-content)",
    NvmeEffect.NCC: "NCC(namespace-capability)",
    NvmeEffect.NIC: "NIC(namespace-inventory)",
    NvmeEffect.CCC: "CCC(controller-capability)",
    NvmeEffect.CSE: "CSE(exclusive-execution)",
}

_BIT_TO_FLAG = (
    (CSUPP, NvmeEffect.CSUPP),
    (LBCC, NvmeEffect.LBCC),
    (NCC, NvmeEffect.NCC),
    (NIC, NvmeEffect.NIC),
    (CCC, NvmeEffect.CCC),
    (CSE_MASK, NvmeEffect.CSE),
)


def flags(word: int) -> int:
    """The model's effect flags for one effects-log word (``CSUPP|LBCC`` -> ``NvmeEffect.CSUPP|LBCC``)."""
    out = 0
    for bits, flag in _BIT_TO_FLAG:
        if word & bits:
            out |= flag
    return out
