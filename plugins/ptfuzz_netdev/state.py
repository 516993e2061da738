"""The NIC state a netdev stack owns, and the state only the firmware keeps.

One field set for every driver: each driver maps its own registers and
commands onto it (mlx5's PMTU register and bnxt's HWRM_FUNC_CFG mtu both
land in ``link.mtu``), so one invariant and one policy vocabulary cover all
three.  While the driver is bound (``kernel["bound"]``) the kernel owns every
field of ``NETDEV_OWNED``: it programmed the value and caches it (``ip link``,
``ethtool``, ``devlink`` answer from the cache, not from the firmware).

Simplification, once: each value is a small integer or string standing for
the register or context it names (``link.speed`` is PTYS's admin protocol
mask, ``stats`` one port counter), and a driver has one port and one PF.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fuzzer import Effect, Field

E = Effect

BNXT = "netdev.bnxt"
PDS = "netdev.pds"
MLX5 = "netdev.mlx5"

#: A subsystem effect bit: the command reset the PCI function (or the whole
#: firmware) under the bound driver.  fwctl.rst puts such disruptive changes
#: above FWCTL_RPC_CONFIGURATION; the CXL Effects Log has no bit for it.
FUNC_RESET = Effect(1 << 16)
EFFECT_NAMES = {int(FUNC_RESET): "function-reset"}


def bound(kernel: Mapping[str, Any]) -> bool:
    """The netdev driver is bound: it owns the link, ring and VF state it programmed."""
    return bool(kernel["bound"])


def _owned(name: str, effect: int, doc: str) -> Field:
    return Field(name, effect, bound, doc)


NETDEV_OWNED = (
    _owned("link.mtu", E.CONFIG_IMMEDIATE, "dev->mtu: ip link set mtu (mlx5 PMTU + NIC vport, bnxt FUNC_CFG)"),
    _owned("link.admin", E.CONFIG_IMMEDIATE, "IFF_UP: ip link set up/down (mlx5 PAOS admin_status)"),
    _owned("link.oper", E.CONFIG_IMMEDIATE, "the carrier the netdev reports (mlx5 PAOS oper_status)"),
    _owned("link.speed", E.CONFIG_IMMEDIATE, "ethtool -s speed/autoneg (mlx5 PTYS, bnxt PORT_PHY_CFG)"),
    _owned("link.pause", E.CONFIG_IMMEDIATE, "ethtool -A pause/PFC (mlx5 PFCC, bnxt PORT_MAC_CFG)"),
    _owned("vport.mac", E.CONFIG_IMMEDIATE, "dev->dev_addr (mlx5 NIC vport context, bnxt FUNC_CFG)"),
    _owned("vf.count", E.CONFIG_IMMEDIATE, "sriov_numvfs: the VFs the PF driver created"),
    _owned("vf.state", E.CONFIG_IMMEDIATE, "ip link set vf N mac/vlan/trust (mlx5 eswitch, bnxt FUNC_VF_CFG)"),
    _owned("rings", E.CONFIG_IMMEDIATE, "ethtool -L channels: the rings the driver allocated in firmware"),
    _owned("stats", E.LOG_IMMEDIATE, "ethtool -S port counters, which the driver reports as monotonic"),
    _owned("func.resets", FUNC_RESET, "resets of the function the driver has seen (its reset/recovery state)"),
    _owned("fw.running", E.CONFIG_IMMEDIATE, "devlink dev info: the running firmware version the driver cached"),
)

FIRMWARE_OWNED = (
    Field("fw.pending", E.CONFIG_COLD_RESET, None, "a staged firmware image, live after activation or reset"),
    Field("nvm.config", E.CONFIG_COLD_RESET, None, "NVM options (link defaults), read by firmware at reset"),
    Field("vf.caps", E.CONFIG_COLD_RESET, None, "mlx5 SET_HCA_CAP in other-function mode: live at the VF's reset"),
    Field("phy.regs", E.CONFIG_IMMEDIATE, None, "PHY/transceiver registers behind I2C/MDIO debug writes"),
    Field("dbg.config", E.LOG_IMMEDIATE, None, "firmware debug and diagnostic-counter settings"),
    Field("fw.time", E.NONE, None, "the firmware's clock (bnxt FW_SET_TIME)"),
    Field("fw.events", E.NONE, None, "async events the firmware posted and the driver has not yet handled"),
    Field("fw.uctx", E.NONE, None, "mlx5 user contexts: (uid, capability bits) pairs"),
)
FIELDS = (*NETDEV_OWNED, *FIRMWARE_OWNED)
OWNED = tuple(f.name for f in NETDEV_OWNED)

#: What probe finds: the firmware's defaults, before the driver programs its own settings.
DEFAULTS: dict[str, Any] = {
    "link.mtu": 1500, "link.admin": 0, "link.oper": 0, "link.speed": 1, "link.pause": 0, "vport.mac": 1,
    "vf.count": 0, "vf.state": 0, "rings": 0, "stats": 1000, "func.resets": 0, "fw.running": 1,
    "fw.pending": 0, "nvm.config": 1, "vf.caps": 0, "phy.regs": 0, "dbg.config": 0, "fw.time": 0,
    "fw.events": (), "fw.uctx": (),
}


def initial_state() -> dict[str, Any]:
    return dict(DEFAULTS)
