"""The device variants: each driver's honest firmware, and the firmware its policy silently relies on.

A variant carries its driver's fwctl commands (``DeviceVariant.commands``),
so a campaign draws only RPCs the device's fwctl driver would carry; run a
driver's policy on that driver's devices.
"""

from __future__ import annotations

from fuzzer import DeviceVariant

from . import bnxt, mlx5, pds
from .state import initial_state

#: struct pds_fwctl_ident's max_req_sz/max_resp_sz: the firmware's own, not in any kernel source (made up)
PDS_IDENT = {"max_req_sz": 4096, "max_resp_sz": 4096}

DEVICES = (
    DeviceVariant("bnxt", initial_state, bnxt.COMMANDS, {"driver": "bnxt", "func_reset_notifies": True},
                  doc="Broadcom NetXtreme-E; a function reset is followed by RESET_NOTIFY"),
    DeviceVariant("bnxt-ring-drop", initial_state, bnxt.COMMANDS, {"driver": "bnxt", "func_reset_notifies": False},
                  doc="HWRM_FUNC_RESET frees the netdev's rings and tells the driver nothing"),
    DeviceVariant("pds", initial_state, pds.COMMANDS, {"driver": "pds", "images": {1: pds.V1, 2: pds.V1}, **PDS_IDENT},
                  doc="AMD Pensando DSC; an update keeps every operation's scope"),
    DeviceVariant("pds-scope-update", initial_state, pds.COMMANDS,
                  {"driver": "pds", "images": {1: pds.V1, 2: pds.V2_RESCOPED}, **PDS_IDENT},
                  doc="the next image makes port.stage immediate and lists it as DEBUG_WRITE"),
    DeviceVariant("mlx5", initial_state, mlx5.COMMANDS, {"driver": "mlx5", "tools_port_writes": False},
                  doc="ConnectX; the tools uid may not write port registers"),
    DeviceVariant("mlx5-tools-writes", initial_state, mlx5.COMMANDS, {"driver": "mlx5", "tools_port_writes": True},
                  doc="the tools uid may write PMTU/PTYS/PAOS/PFCC/PPCNT"),
)
