"""The effect vocabulary: what a command may change.

ptfuzz borrows the CXL Command Effects Log because it is the one place where a
device standard already says, per command, what class of state it touches.
Other subsystems map their commands onto the same classes.  Bit values are the
CXL ones (linux ``include/uapi/cxl/features.h``, "CXL spec r3.2 Table 8-87"),
so a CXL plugin can put an ``Effect`` straight into a CEL entry.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping


class Effect(enum.IntFlag):
    NONE = 0
    CONFIG_COLD_RESET = 1 << 0  # CXL_CMD_CONFIG_CHANGE_COLD_RESET
    CONFIG_IMMEDIATE = 1 << 1  # CXL_CMD_CONFIG_CHANGE_IMMEDIATE
    DATA_IMMEDIATE = 1 << 2  # CXL_CMD_DATA_CHANGE_IMMEDIATE
    POLICY_IMMEDIATE = 1 << 3  # CXL_CMD_POLICY_CHANGE_IMMEDIATE
    LOG_IMMEDIATE = 1 << 4  # CXL_CMD_LOG_CHANGE_IMMEDIATE
    SECURITY = 1 << 5  # CXL_CMD_SECURITY_STATE_CHANGE
    BACKGROUND = 1 << 6  # CXL_CMD_BACKGROUND
    CONFIG_CONV_RESET = 1 << 10  # CXL_CMD_CONFIG_CHANGE_CONV_RESET
    CONFIG_CXL_RESET = 1 << 11  # CXL_CMD_CONFIG_CHANGE_CXL_RESET


#: Any of the four "immediate" bits (1..4): what fwctl CXL treats as needing
#: FWCTL_RPC_DEBUG_WRITE_FULL (linux drivers/cxl/core/features.c).
IMMEDIATE = (
    Effect.CONFIG_IMMEDIATE
    | Effect.DATA_IMMEDIATE
    | Effect.POLICY_IMMEDIATE
    | Effect.LOG_IMMEDIATE
)
#: Changes that only become live at some reset.
RESET_ONLY = Effect.CONFIG_COLD_RESET | Effect.CONFIG_CONV_RESET | Effect.CONFIG_CXL_RESET
#: Bits 15:12, reserved (CXL_CMD_EFFECTS_RESERVED).
RESERVED_BITS = 0xF000

_NAMES = {
    Effect.CONFIG_COLD_RESET: "config-after-cold-reset",
    Effect.CONFIG_IMMEDIATE: "immediate-config",
    Effect.DATA_IMMEDIATE: "immediate-data",
    Effect.POLICY_IMMEDIATE: "immediate-policy",
    Effect.LOG_IMMEDIATE: "immediate-log",
    Effect.SECURITY: "security-state",
    Effect.BACKGROUND: "background",
    Effect.CONFIG_CONV_RESET: "config-after-conventional-reset",
    Effect.CONFIG_CXL_RESET: "config-after-cxl-reset",
}


def describe(effect: int, extra: Mapping[int, str] | None = None) -> str:
    """Human names for a mask, e.g. ``immediate-config|background``; ``none`` for 0.

    ``extra`` names a subsystem's own bits (``Subsystem.effects``); a bit
    neither knows prints as ``bit17``, never silently as nothing.
    """
    table: dict[int, str] = {int(bit): name for bit, name in _NAMES.items()}
    table.update(extra or {})
    names = [name for bit, name in table.items() if effect & bit]
    known = 0
    for bit in table:
        known |= bit
    names += [f"bit{i}" for i in range(max(effect.bit_length(), 0)) if effect & ~known & (1 << i)]
    return "|".join(names) if names else "none"
